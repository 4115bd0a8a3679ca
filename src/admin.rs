//! The admin listener: the approvals REST API (approver tokens only — agent tokens get 401
//! here), a Server-Sent Events stream of approval changes, health and metrics. It never
//! forwards anything to the apiserver.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use serde::Deserialize;
use tokio::sync::broadcast;

use crate::Body;
use crate::approval::{ApprovalEvent, Approvals, DecideError};
use crate::authn::Credentials;
use crate::error::full;
use crate::health::{self, Check};
use crate::metrics::{self, Metrics};

/// What the admin listener serves.
pub struct Admin {
    pub approvals: Arc<Approvals>,
    pub credentials: Arc<ArcSwap<Credentials>>,
    pub metrics: Arc<Metrics>,
    pub ready_checks: Vec<Check>,
}

/// How long `/readyz` waits for its checks.
const READY_TIMEOUT: Duration = Duration::from_secs(3);

/// How often an idle SSE stream sends a comment, so proxies keep it open.
const SSE_KEEPALIVE: Duration = Duration::from_secs(15);

/// The largest body an approve / deny call may send.
const MAX_DECISION_BODY: usize = 16 * 1024;

impl Admin {
    /// Handles one admin request. Never fails: every outcome is a response.
    pub async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
    ) -> Result<Response<Body>, Infallible> {
        let path = request.uri().path().to_owned();
        let method = request.method().clone();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let response = match (&method, segments.as_slice()) {
            (&Method::GET, ["healthz"]) => {
                let (code, body) = health::healthz();
                text(code, body)
            }
            (&Method::GET, ["readyz"]) => {
                let (code, body) = health::readyz(&self.ready_checks, READY_TIMEOUT).await;
                let mut response = text(code, body);
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                response
            }
            (&Method::GET, ["metrics"]) => {
                self.metrics
                    .set_approvals_pending(self.approvals.pending_count());
                let mut response = text(StatusCode::OK, self.metrics.encode());
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(metrics::CONTENT_TYPE),
                );
                response
            }
            (_, ["v1", "approvals", ..]) => match self
                .credentials
                .load()
                .authenticate_approver(request.headers())
            {
                Err(_) => error(StatusCode::UNAUTHORIZED, "approver token required", None),
                Ok(approver) => {
                    self.approvals_api(&method, &segments[2..], &approver, request)
                        .await
                }
            },
            _ => error(
                StatusCode::NOT_FOUND,
                &format!("no such endpoint: {method} {path}"),
                None,
            ),
        };
        Ok(response)
    }

    async fn approvals_api(
        &self,
        method: &Method,
        rest: &[&str],
        approver: &str,
        request: Request<Incoming>,
    ) -> Response<Body> {
        match (method, rest) {
            (&Method::GET, []) => json(
                StatusCode::OK,
                &serde_json::json!({ "items": self.approvals.list() }),
            ),
            (&Method::GET, ["events"]) => sse(self.approvals.subscribe()),
            (&Method::GET, [id]) => match self.approvals.get(id) {
                Some(view) => json(StatusCode::OK, &view),
                None => error(
                    StatusCode::NOT_FOUND,
                    &format!("no approval with id {id}"),
                    None,
                ),
            },
            (&Method::POST, [id, action @ ("approve" | "deny")]) => {
                let reason = match read_reason(request).await {
                    Ok(reason) => reason,
                    Err(message) => return error(StatusCode::BAD_REQUEST, &message, None),
                };
                let result = if *action == "approve" {
                    self.approvals.approve(id, approver, reason)
                } else {
                    self.approvals.deny(id, approver, reason)
                };
                tracing::info!(approval.id = %id, approver, action, ok = result.is_ok(), "approval decision");
                match result {
                    Ok(view) => json(StatusCode::OK, &view),
                    Err(err) => self.decide_error(id, err),
                }
            }
            _ => error(StatusCode::NOT_FOUND, "no such approvals endpoint", None),
        }
    }

    fn decide_error(&self, id: &str, err: DecideError) -> Response<Body> {
        let code = match &err {
            DecideError::NotFound(_) => StatusCode::NOT_FOUND,
            DecideError::AlreadyDecided { .. } | DecideError::AlreadyApproved(_) => {
                StatusCode::CONFLICT
            }
            DecideError::SelfApproval(_) => StatusCode::FORBIDDEN,
        };
        error(code, &err.to_string(), self.approvals.get(id))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    #[serde(default)]
    reason: Option<String>,
}

/// The optional `{"reason": "..."}` of an approve / deny call.
async fn read_reason(request: Request<Incoming>) -> Result<Option<String>, String> {
    let bytes = Limited::new(request.into_body(), MAX_DECISION_BODY)
        .collect()
        .await
        .map_err(|e| format!("cannot read the body: {e}"))?
        .to_bytes();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let body: DecisionBody = serde_json::from_slice(&bytes)
        .map_err(|e| format!("the body must be JSON like {{\"reason\": \"...\"}}: {e}"))?;
    Ok(body.reason.filter(|r| !r.trim().is_empty()))
}

/// A `text/event-stream` of approval events: `event: <kind>` and `data: <json>`.
fn sse(receiver: broadcast::Receiver<ApprovalEvent>) -> Response<Body> {
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let frame = match tokio::time::timeout(SSE_KEEPALIVE, receiver.recv()).await {
            Err(_) => Bytes::from_static(b": keep-alive\n\n"),
            Ok(Ok(event)) => {
                let data = serde_json::to_string(&event).unwrap_or_default();
                Bytes::from(format!("event: {}\ndata: {data}\n\n", event.kind))
            }
            Ok(Err(broadcast::error::RecvError::Lagged(missed))) => {
                Bytes::from(format!("event: lagged\ndata: {{\"missed\":{missed}}}\n\n"))
            }
            Ok(Err(broadcast::error::RecvError::Closed)) => return None,
        };
        Some((Ok::<_, crate::BoxError>(Frame::data(frame)), receiver))
    });
    let mut response = Response::new(BodyExt::boxed_unsync(StreamBody::new(stream)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn json(code: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut response = Response::new(full(body));
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn error(
    code: StatusCode,
    message: &str,
    approval: Option<crate::approval::ApprovalView>,
) -> Response<Body> {
    json(
        code,
        &serde_json::json!({ "error": message, "code": code.as_u16(), "approval": approval }),
    )
}

fn text(code: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(full(body.into()));
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
