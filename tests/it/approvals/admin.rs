//! Helpers for the approval tests: a client for the admin API, an SSE reader, a webhook
//! receiver, raw agent requests and the `sluice approvals` CLI.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::support::sluice::{AGENT_TOKEN, Sluice};

pub const ALICE: &str = "approver-token-alice";
pub const BOB: &str = "approver-token-bob";
/// The token of an approver named `claude-code`, like the agent.
pub const SELF: &str = "approver-token-claude-code";

/// The admin listener of one sluice.
pub struct Admin {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Admin {
    pub fn new(sluice: &Sluice) -> Admin {
        Admin {
            base: format!("http://{}", sluice.admin),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// One call; the body parsed as JSON (Null when it is not).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        let response = self.client.request(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.request("GET", path, Some(token), "").await
    }

    /// POST /v1/approvals/{id}/{action} for the approval `held`.
    pub async fn post(
        &self,
        held: &Value,
        action: &str,
        token: &str,
        body: &str,
    ) -> (StatusCode, Value) {
        let path = format!("/v1/approvals/{}/{action}", held["id"].as_str().unwrap());
        self.request("POST", &path, Some(token), body).await
    }

    pub async fn pending(&self) -> Vec<Value> {
        let (status, list) = self.get("/v1/approvals", ALICE).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        list["items"].as_array().unwrap().clone()
    }

    /// Polls until exactly `n` requests are pending (10 s deadline).
    pub async fn wait_for_pending(&self, n: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let items = self.pending().await;
            if items.len() == n {
                return items;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} pending, not {n}: {items:?}",
                items.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Subscribes to the SSE stream (the response headers have arrived when this returns).
    pub async fn events(&self, token: &str) -> Events {
        let request = Request::get(format!("{}/v1/approvals/events", self.base))
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = self.client.request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Events {
            body: response.into_body(),
            buffer: String::new(),
        }
    }
}

/// An open `text/event-stream`.
pub struct Events {
    body: Incoming,
    buffer: String,
}

impl Events {
    /// The next event's kind and data, skipping keep-alives (10 s deadline).
    pub async fn next(&mut self) -> (String, Value) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                let kind = event.lines().find_map(|l| l.strip_prefix("event: "));
                let data = event.lines().find_map(|l| l.strip_prefix("data: "));
                if let (Some(kind), Some(data)) = (kind, data) {
                    return (kind.to_owned(), serde_json::from_str(data).unwrap());
                }
                continue;
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .expect("an SSE event within 10 s")
                .expect("the stream stays open")
                .unwrap();
            if let Ok(data) = frame.into_data() {
                self.buffer += std::str::from_utf8(&data).unwrap();
            }
        }
    }
}

/// A webhook receiver: each POST's `X-Sluice-Signature` and body.
pub struct Webhook {
    pub addr: SocketAddr,
    pub received: mpsc::UnboundedReceiver<(Option<String>, Bytes)>,
}

impl Webhook {
    pub async fn start() -> Webhook {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, received) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let tx = tx.clone();
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let tx = tx.clone();
                    async move {
                        let signature = request
                            .headers()
                            .get("x-sluice-signature")
                            .map(|v| v.to_str().unwrap().to_owned());
                        let body = request.into_body().collect().await?.to_bytes();
                        let _ = tx.send((signature, body));
                        Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::new())))
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        Webhook { addr, received }
    }
}

/// `sha256=<hex HMAC-SHA256 of body>`, computed here rather than by sluice.
pub fn hmac_sha256_hex(secret: &[u8], body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A configmap create in `default` from the agent, its value padded to `pad` bytes.
pub fn agent_create(sluice: &Sluice, name: &str, pad: usize) -> Request<Full<Bytes>> {
    let body = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": {"a": "x".repeat(pad)},
    });
    Request::post(format!(
        "{}/api/v1/namespaces/default/configmaps",
        sluice.url()
    ))
    .header("authorization", format!("Bearer {AGENT_TOKEN}"))
    .header("content-type", "application/json")
    .body(Full::new(Bytes::from(body.to_string())))
    .unwrap()
}

/// Runs `sluice approvals ARGS` against `sluice`'s admin listener with `token`.
pub async fn cli(sluice: &Sluice, token: &str, args: &[&str]) -> std::process::Output {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("approvals")
        .args(args)
        .env("SLUICE_ADMIN_URL", format!("http://{}", sluice.admin))
        .env("SLUICE_APPROVER_TOKEN", token)
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("the CLI finished within 20 s")
        .unwrap()
}
