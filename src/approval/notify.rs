//! `approvals.notify`: each new escalation is POSTed as JSON to a webhook (Slack-style
//! integrations), signed with HMAC-SHA256 of the body in `X-Sluice-Signature: sha256=<hex>`.
//! Failures are logged and retried a few times, and never block the held request.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{HeaderValue, Request, header};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sha2::Sha256;
use tokio::sync::broadcast;

use super::{ApprovalEvent, Approvals};
use crate::config::NotifyConfig;

/// Attempts per event, with 1 s, 2 s, 4 s between them.
const ATTEMPTS: u32 = 4;

/// Starts the notifier task; errors in the config (an unreadable secret file) are returned.
pub fn spawn(
    approvals: &Arc<Approvals>,
    config: &NotifyConfig,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let secret = match (&config.secret, &config.secret_file) {
        (Some(secret), _) => secret.clone().into_bytes(),
        (None, Some(path)) => std::fs::read(path)
            .map(|b| String::from_utf8_lossy(&b).trim().as_bytes().to_vec())
            .map_err(|e| format!("approvals.notify.secret_file {}: {e}", path.display()))?,
        (None, None) => Vec::new(),
    };
    let url = config.url.clone();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| format!("approvals.notify: no TLS roots: {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let mut events = approvals.subscribe();
    Ok(tokio::spawn(async move {
        loop {
            let event = match events.recv().await {
                Ok(event) => event,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "approval webhook fell behind; events skipped");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if event.kind != "new" {
                continue;
            }
            // Each delivery runs on its own so a slow webhook never delays the next.
            tokio::spawn(deliver(client.clone(), url.clone(), secret.clone(), event));
        }
    }))
}

/// The signature header value for `body`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length; new_from_slice cannot fail for Hmac<Sha256>.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn deliver<C>(
    client: Client<C, Full<Bytes>>,
    url: http::Uri,
    secret: Vec<u8>,
    event: ApprovalEvent,
) where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let body = Bytes::from(serde_json::to_vec(&event).unwrap_or_default());
    let signature = signature(&secret, &body);
    let mut delay = Duration::from_secs(1);
    for attempt in 1..=ATTEMPTS {
        let request = Request::post(url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                "x-sluice-signature",
                HeaderValue::from_str(&signature).unwrap_or(HeaderValue::from_static("")),
            )
            .body(Full::new(body.clone()));
        let outcome = match request {
            Ok(request) => {
                tokio::time::timeout(Duration::from_secs(10), client.request(request)).await
            }
            Err(err) => {
                tracing::error!(error = %err, "approval webhook request could not be built");
                return;
            }
        };
        match outcome {
            Ok(Ok(response)) if response.status().is_success() => return,
            Ok(Ok(response)) => {
                tracing::warn!(attempt, status = %response.status(), "approval webhook refused")
            }
            Ok(Err(err)) => tracing::warn!(attempt, error = %err, "approval webhook failed"),
            Err(_) => tracing::warn!(attempt, "approval webhook timed out"),
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }
    tracing::error!(approval.id = %event.approval.id, "approval webhook gave up");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        let sig = signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
