//! Forwarding to kube-apiserver under sluice's own credentials.
//!
//! Only a request that holds a [`Permit`] can be forwarded, and the permit says all that
//! forwarding needs: the request id, the agent and the lane. On the way out the agent's
//! credentials, hop-by-hop headers and any client-chosen `X-Request-ID` / `Audit-ID` are
//! stripped (`Impersonate-*` never gets this far: the pipeline refuses it), then the
//! upstream credential, `X-Request-ID` and `Audit-ID` are set. Bodies stream both ways;
//! upgrades (exec, attach, port-forward) go over HTTP/1.1 and are spliced by the pipeline.
//! Nothing is retried: a retried write could run twice.

mod auth;
mod headers;
mod lane;

use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderName, HeaderValue};
use http::uri::{self, PathAndQuery};
use http::{Request, Response, Uri, Version};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::Body;
use crate::config::{self, UpstreamConfig};
use crate::policy::{self, Permit};

pub use auth::UpstreamAuth;
use headers::{rewrite_request_headers, strip_hop_by_hop};
pub use lane::UpstreamBody;
use lane::{Dialer, Lane};

/// Why a permitted request got no response from the upstream.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// Connecting, the TLS handshake, or the exchange failed.
    #[error("upstream {upstream}: {}", error_chain(.source.as_ref()))]
    Unreachable {
        upstream: String,
        #[source]
        source: crate::BoxError,
    },
    /// No response headers within `upstream.timeout`.
    #[error("upstream {upstream}: no response within {timeout:?}")]
    Timeout { upstream: String, timeout: Duration },
    /// The upstream credential could not be obtained (token file unreadable, exec failed).
    #[error("upstream credential: {0}")]
    Credential(String),
}

/// `err` and each of its sources, joined by ": " (hyper-util's "client error (SendRequest)"
/// alone does not say whether the connection closed or the stream was refused).
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some errors repeat their source's text in their own; say it once.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The upstream could not be set up at start.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream: {0}")]
    Config(String),
}

type HttpsClient = Client<HttpsConnector<HttpConnector>, Body>;

/// The apiserver sluice forwards to, with connections of its own.
pub struct Upstream {
    target: Arc<Target>,
    /// HTTP/2 where the upstream speaks it (ALPN), else HTTP/1.1 (pooled). Requests that
    /// end go over a lane of their own, where they share as few connections as their number
    /// allows and are framed and flushed together, and streams that stay open (watches,
    /// logs) over another, so that open watches never crowd out ordinary requests. Each lane
    /// dials more connections as its streams need.
    lane: Lane,
    stream_lane: Lane,
    /// HTTP/1.1 only: upgrades (SPDY, WebSocket) need it.
    upgrade_client: HttpsClient,
}

/// Where the upstream is, how to reach it and under which credential.
struct Target {
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    /// A path prefix of the server URL (e.g. Rancher's `/k8s/clusters/c-1`), without a
    /// trailing slash; usually empty.
    base_path: String,
    display: String,
    auth: UpstreamAuth,
    impersonate: bool,
    timeout: Duration,
    tls: Arc<rustls::ClientConfig>,
    connect_timeout: Duration,
    /// `None` for a plain `http://` upstream.
    dialer: Option<Arc<Dialer>>,
}

impl Target {
    /// A lane to the upstream, with no connection yet.
    fn lane(&self) -> Lane {
        Lane::new(self.dialer.clone(), self.client(true))
    }

    /// hyper-util's pooled client: HTTP/1.1 (and HTTP/2 if `http2`, for an upstream that
    /// answers ALPN without a dial of the lane's own).
    fn client(&self, http2: bool) -> HttpsClient {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(self.connect_timeout));
        http.set_nodelay(true);
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*self.tls).clone())
            .https_or_http();
        let connector = if http2 {
            builder.enable_http1().enable_http2().wrap_connector(http)
        } else {
            builder.enable_http1().wrap_connector(http)
        };
        Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .http2_keep_alive_interval(KEEP_ALIVE)
            .http2_keep_alive_while_idle(true)
            .build(connector)
    }
}

impl Upstream {
    /// Resolves `upstream:` (explicit server, a kubeconfig, in-cluster, or the current
    /// kubeconfig) using the kube crate's loading, and sets up the lanes to it.
    pub async fn from_config(config: &UpstreamConfig) -> Result<Upstream, UpstreamError> {
        let kube_config = load_kube_config(config).await?;
        let url = kube_config.cluster_url.clone();
        let scheme = url.scheme().cloned().unwrap_or(http::uri::Scheme::HTTPS);
        let authority = url
            .authority()
            .cloned()
            .ok_or_else(|| UpstreamError::Config(format!("server {url} has no host")))?;
        let base_path = url.path().trim_end_matches('/').to_owned();
        let display = format!("{scheme}://{authority}{base_path}");
        let tls = {
            use kube::client::ConfigExt;
            kube_config
                .rustls_client_config()
                .map_err(|e| UpstreamError::Config(format!("TLS for {display}: {e}")))?
        };
        let auth = UpstreamAuth::from_kube_config(&kube_config)?;
        let dialer = if scheme == http::uri::Scheme::HTTPS {
            let port = authority.port_u16().unwrap_or(443);
            let dialer = Dialer::new(
                authority.host(),
                port,
                &tls,
                config.connect_timeout,
                KEEP_ALIVE,
            )
            .map_err(|e| UpstreamError::Config(format!("{display}: {e}")))?;
            Some(Arc::new(dialer))
        } else {
            None
        };
        Ok(Upstream::new(Arc::new(Target {
            scheme,
            authority,
            base_path,
            display,
            auth,
            impersonate: config.impersonate,
            timeout: config.timeout,
            tls: Arc::new(tls),
            connect_timeout: config.connect_timeout,
            dialer,
        })))
    }

    fn new(target: Arc<Target>) -> Upstream {
        Upstream {
            lane: target.lane(),
            stream_lane: target.lane(),
            upgrade_client: target.client(false),
            target,
        }
    }

    /// `host:port` of the upstream, for reachability probes.
    pub fn authority(&self) -> String {
        match self.target.authority.port_u16() {
            Some(_) => self.target.authority.to_string(),
            None if self.target.scheme == http::uri::Scheme::HTTP => {
                format!("{}:80", self.target.authority)
            }
            None => format!("{}:443", self.target.authority),
        }
    }

    /// The upstream's URL as shown in messages and logs (no credentials).
    pub fn display(&self) -> &str {
        &self.target.display
    }

    /// Sends a permitted request upstream, on the permit's lane, and returns the response
    /// head with its streaming body. An upgrade keeps its `Connection: Upgrade` and goes
    /// over HTTP/1.1.
    pub async fn send(
        &self,
        permit: Permit,
        mut request: Request<Body>,
    ) -> Result<Response<UpstreamBody>, ForwardError> {
        *request.uri_mut() = self.upstream_uri(request.uri())?;
        // ALPN picks HTTP/2 or HTTP/1.1; a request must not insist on the agent's version.
        *request.version_mut() = Version::HTTP_11;
        let credential = self.target.auth.header().await?;
        self.set_headers(&permit, request.headers_mut(), credential)?;
        let sent = async {
            match permit.lane() {
                policy::Lane::Upgrade => {
                    let response = self.upgrade_client.request(request).await?;
                    Ok(response.map(UpstreamBody::unslotted))
                }
                policy::Lane::Stream => self.stream_lane.send(request).await,
                policy::Lane::Short => self.lane.send(request).await,
            }
        };
        match tokio::time::timeout(self.target.timeout, sent).await {
            Err(_) => Err(ForwardError::Timeout {
                upstream: self.target.display.clone(),
                timeout: self.target.timeout,
            }),
            Ok(Err(err)) => Err(ForwardError::Unreachable {
                upstream: self.target.display.clone(),
                source: err,
            }),
            Ok(Ok(mut response)) => {
                if response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
                    strip_hop_by_hop(response.headers_mut());
                }
                // kube-apiserver echoes our Audit-ID, unique to the request.
                if let Some(audit_id) = response.headers_mut().get_mut(AUDIT_ID) {
                    audit_id.set_sensitive(true);
                }
                Ok(response)
            }
        }
    }

    /// The agent's credentials and ids out; ours, the request id and (if configured) the
    /// agent to impersonate in.
    fn set_headers(
        &self,
        permit: &Permit,
        headers: &mut http::HeaderMap,
        credential: Option<HeaderValue>,
    ) -> Result<(), ForwardError> {
        rewrite_request_headers(headers, permit.lane() == policy::Lane::Upgrade);
        if let Some(value) = credential {
            headers.insert(header::AUTHORIZATION, value);
        }
        headers.insert(X_REQUEST_ID, permit.request_id().clone());
        headers.insert(AUDIT_ID, permit.request_id().clone());
        if self.target.impersonate {
            let user = HeaderValue::from_str(&format!("sluice:agent:{}", permit.agent()))
                .map_err(|_| ForwardError::Credential("agent name is not a header value".into()))?;
            headers.insert("impersonate-user", user);
            headers.insert(
                "impersonate-group",
                HeaderValue::from_static("sluice:agents"),
            );
        }
        Ok(())
    }

    fn upstream_uri(&self, uri: &Uri) -> Result<Uri, ForwardError> {
        let unreachable = |e: http::Error| ForwardError::Unreachable {
            upstream: self.target.display.clone(),
            source: Box::new(e),
        };
        let path_and_query = match uri.path_and_query() {
            // The agent's own, already parsed: shared, not parsed again.
            Some(path_and_query) if self.target.base_path.is_empty() => path_and_query.clone(),
            path_and_query => {
                let path_and_query = path_and_query.map_or("/", |p| p.as_str());
                PathAndQuery::try_from(format!("{}{path_and_query}", self.target.base_path))
                    .map_err(|e| unreachable(e.into()))?
            }
        };
        let mut parts = uri::Parts::default();
        parts.scheme = Some(self.target.scheme.clone());
        parts.authority = Some(self.target.authority.clone());
        parts.path_and_query = Some(path_and_query);
        Uri::from_parts(parts).map_err(|e| unreachable(e.into()))
    }
}

/// How often an idle upstream connection is pinged (HTTP/2), so a dead one is noticed.
const KEEP_ALIVE: Duration = Duration::from_secs(30);

/// `X-Request-ID`: the id the agent, the apiserver and the audit log share.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `Audit-ID`: kube-apiserver adopts it as its audit event's auditID.
pub const AUDIT_ID: HeaderName = HeaderName::from_static("audit-id");

async fn load_kube_config(config: &UpstreamConfig) -> Result<kube::Config, UpstreamError> {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let fail = |what: String| UpstreamError::Config(what);
    match &config.target {
        config::Upstream::Explicit {
            server,
            ca,
            token_file,
        } => {
            let mut kube_config = kube::Config::new(server.clone());
            if let Some(ca) = ca {
                let certs = crate::tls::load_certs(ca).map_err(|e| fail(e.to_string()))?;
                kube_config.root_cert = Some(certs.into_iter().map(|c| c.to_vec()).collect());
            }
            kube_config.auth_info.token_file = token_file
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned());
            Ok(kube_config)
        }
        config::Upstream::Kubeconfig { path, context } => {
            let file = Kubeconfig::read_from(path)
                .map_err(|e| fail(format!("kubeconfig {}: {e}", path.display())))?;
            let options = KubeConfigOptions {
                context: context.clone(),
                ..KubeConfigOptions::default()
            };
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| fail(format!("kubeconfig {}: {e}", path.display())))
        }
        config::Upstream::InCluster => in_cluster_or_current_kubeconfig().await,
    }
}

async fn in_cluster_or_current_kubeconfig() -> Result<kube::Config, UpstreamError> {
    use kube::config::KubeConfigOptions;
    let fail = |what: String| UpstreamError::Config(what);
    match kube::Config::incluster() {
        Ok(in_cluster) => Ok(in_cluster),
        Err(in_cluster_err) => kube::Config::from_kubeconfig(&KubeConfigOptions::default())
            .await
            .map_err(|e| {
                fail(format!(
                    "no upstream configured: not in a cluster ({in_cluster_err}) and no usable kubeconfig ({e})"
                ))
            }),
    }
}
