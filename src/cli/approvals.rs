//! `sluice approvals list | show ID | approve ID | deny ID [--reason TEXT] | list --watch`:
//! the approvals REST API from a terminal.
//!
//! Everything an agent chose (names, namespaces, paths, bodies) is printed through
//! [`escape_for_terminal`], so a resource named with escape sequences cannot redraw the
//! approver's screen or disguise what they are approving. Exit 0 on success, 1 when the
//! server refused (its message is printed), 2 when it could not be reached or understood.

mod escape;
mod render;

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use clap::{Args, Subcommand};
use http::{Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

pub use escape::escape_for_terminal;

/// `sluice approvals ...`
#[derive(Debug, Args)]
pub struct ApprovalsArgs {
    /// The admin listener, e.g. https://sluice.example:9443
    #[arg(
        long,
        global = true,
        env = "SLUICE_ADMIN_URL",
        default_value = "http://127.0.0.1:9443"
    )]
    pub server: String,
    /// An approver token from credentials.yaml `approvers:`.
    #[arg(
        long,
        global = true,
        env = "SLUICE_APPROVER_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// The CA that signed an https admin listener's certificate (default: system roots).
    #[arg(long, global = true)]
    pub ca: Option<PathBuf>,
    #[command(subcommand)]
    pub command: ApprovalsCommand,
}

#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// Pending requests as a table; --watch follows new, decided and expired ones.
    List {
        #[arg(long)]
        watch: bool,
    },
    /// One request, pending or decided, with the start of its body.
    Show { id: String },
    /// Approve a held request (one of several approvals when a quorum is required).
    Approve {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Deny a held request; the agent is told who denied it and why.
    Deny {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
}

/// Why a command failed, and so its exit code.
#[derive(Debug, thiserror::Error)]
enum CliError {
    /// The server answered with an error status (its message is shown).
    #[error("{status}: {message}")]
    Refused { status: StatusCode, message: String },
    /// No usable answer: bad URL or CA, connection failure, a body that is not JSON.
    #[error("{0}")]
    Unreachable(String),
}

/// How long a single call may take (not `--watch`, which runs until interrupted).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs one approvals command; returns the exit code.
pub fn run(args: ApprovalsArgs) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("sluice approvals: cannot start the runtime: {err}");
            return 2;
        }
    };
    match runtime.block_on(dispatch(args)) {
        Ok(()) => 0,
        Err(err) => {
            eprintln!(
                "sluice approvals: {}",
                escape_for_terminal(&err.to_string())
            );
            match err {
                CliError::Refused { .. } => 1,
                CliError::Unreachable(_) => 2,
            }
        }
    }
}

async fn dispatch(args: ApprovalsArgs) -> Result<(), CliError> {
    let api = Api::new(&args)?;
    match args.command {
        ApprovalsCommand::List { watch: false } => {
            let list = api.call(Method::GET, "/v1/approvals", None).await?;
            let items = list["items"].as_array().cloned().unwrap_or_default();
            print!("{}", render::table(&items, std::time::SystemTime::now()));
        }
        ApprovalsCommand::List { watch: true } => api.watch().await?,
        ApprovalsCommand::Show { id } => {
            let view = api.call(Method::GET, &approval_path(&id, ""), None).await?;
            print!("{}", render::details(&view, std::time::SystemTime::now()));
        }
        ApprovalsCommand::Approve { id, reason } => {
            let body = serde_json::json!({ "reason": reason });
            let view = api
                .call(Method::POST, &approval_path(&id, "/approve"), Some(body))
                .await?;
            println!("{}", render::outcome(&view));
        }
        ApprovalsCommand::Deny { id, reason } => {
            let body = serde_json::json!({ "reason": reason });
            let view = api
                .call(Method::POST, &approval_path(&id, "/deny"), Some(body))
                .await?;
            println!("{}", render::outcome(&view));
        }
    }
    Ok(())
}

/// `/v1/approvals/{id}{action}`, the id percent-encoded so it stays one path segment.
fn approval_path(id: &str, action: &str) -> String {
    let id = percent_encoding::utf8_percent_encode(id, ID_UNRESERVED);
    format!("/v1/approvals/{id}{action}")
}

/// RFC 3986 unreserved characters stay as they are (ids are `ap_` + URL-safe base64).
const ID_UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The admin API at one base URL, with one approver token.
struct Api {
    base: String,
    token: Option<String>,
    client: HttpsClient,
}

impl Api {
    fn new(args: &ApprovalsArgs) -> Result<Api, CliError> {
        let base = args.server.trim_end_matches('/').to_owned();
        base.parse::<Uri>()
            .map_err(|e| CliError::Unreachable(format!("--server {base:?}: {e}")))?;
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = match &args.ca {
            Some(path) => builder.with_tls_config(tls_config(path)?),
            None => builder
                .with_native_roots()
                .map_err(|e| CliError::Unreachable(format!("no TLS root certificates: {e}")))?,
        };
        let connector = builder.https_or_http().enable_http1().build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Api {
            base,
            token: args.token.clone(),
            client,
        })
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, CliError> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(header::ACCEPT, "application/json");
        if let Some(token) = &self.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if !body.is_empty() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        request
            .body(Full::new(body))
            .map_err(|e| CliError::Unreachable(format!("cannot build the request: {e}")))
    }

    /// One JSON call; an error status becomes [`CliError::Refused`] with the server's message.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, CliError> {
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let request = self.request(method, path, body)?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| self.unreachable(e))?;
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| self.unreachable(e))?
                .to_bytes();
            Ok::<_, CliError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(CALL_TIMEOUT, exchange)
            .await
            .map_err(|_| {
                CliError::Unreachable(format!(
                    "{} did not answer within {CALL_TIMEOUT:?}",
                    self.base
                ))
            })??;
        let value: Option<Value> = serde_json::from_slice(&bytes).ok();
        if status.is_success() {
            return value.ok_or_else(|| {
                CliError::Unreachable(format!(
                    "{} answered {status} with a body that is not JSON",
                    self.base
                ))
            });
        }
        let message = value
            .as_ref()
            .and_then(|v| v["error"].as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_owned());
        Err(CliError::Refused { status, message })
    }

    /// Follows the SSE stream, printing one line per event, until the server closes it.
    async fn watch(&self) -> Result<(), CliError> {
        let request = self.request(Method::GET, "/v1/approvals/events", Bytes::new())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = response.status();
        let mut body = response.into_body();
        if !status.is_success() {
            let bytes = body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let message = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_owned());
            return Err(CliError::Refused { status, message });
        }
        let mut buffer = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| self.unreachable(e))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            buffer.extend_from_slice(&data);
            while let Some(end) = find_event_end(&buffer) {
                let event: Vec<u8> = buffer.drain(..end).collect();
                if let Some(line) = render::sse_event(&String::from_utf8_lossy(&event)) {
                    println!("{line}");
                }
            }
        }
        Ok(())
    }

    fn unreachable(&self, err: impl std::fmt::Display) -> CliError {
        CliError::Unreachable(format!("{}: {err}", self.base))
    }
}

/// The end (past the blank line) of the first complete SSE event in `buffer`.
fn find_event_end(buffer: &[u8]) -> Option<usize> {
    buffer
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|at| at + 2)
}

fn tls_config(ca: &std::path::Path) -> Result<rustls::ClientConfig, CliError> {
    let pem = std::fs::read(ca)
        .map_err(|e| CliError::Unreachable(format!("--ca {}: {e}", ca.display())))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert =
            cert.map_err(|e| CliError::Unreachable(format!("--ca {}: {e}", ca.display())))?;
        roots
            .add(cert)
            .map_err(|e| CliError::Unreachable(format!("--ca {}: {e}", ca.display())))?;
    }
    if roots.is_empty() {
        return Err(CliError::Unreachable(format!(
            "--ca {}: no certificates in it",
            ca.display()
        )));
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CliError::Unreachable(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_stay_one_path_segment() {
        assert_eq!(
            approval_path("ap_x-Y", "/approve"),
            "/v1/approvals/ap_x-Y/approve"
        );
        assert_eq!(
            approval_path("../metrics", ""),
            "/v1/approvals/..%2Fmetrics"
        );
    }

    #[test]
    fn sse_events_end_at_a_blank_line() {
        assert_eq!(find_event_end(b"event: new\ndata: {}\n\nevent"), Some(21));
        assert_eq!(find_event_end(b"event: new\ndata: {}\n"), None);
    }
}
