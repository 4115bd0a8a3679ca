//! The one place where a refusal becomes a response. Every refusal is a Kubernetes `Status`
//! object (kubectl prints its message); its code comes from who caused it (the agent, the
//! upstream, or sluice), and internal details never reach the agent.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};

use crate::Body;

/// Why sluice answered a request itself instead of forwarding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No credential, or one that matches no agent.
    Unauthenticated,
    /// The request carried `Impersonate-*` headers.
    Impersonation,
    /// The request line or headers are malformed or ambiguous.
    BadRequest(String),
    /// Policy refused, or an approver denied, or the approval expired.
    Forbidden(String),
    /// The request target is longer than `limits.max_uri_bytes`.
    UriTooLong(usize),
    /// A body sluice must read exceeds its limit (`approvals.max_body_bytes` for a held
    /// request, `limits.max_body_bytes` for one whose tier depends on it).
    PayloadTooLarge(String),
    /// A body sluice must read did not arrive in time (a slow-body client holding a task).
    BodyTimeout(String),
    /// A body sluice must read is of a type it does not read (it is never rated unread).
    UnsupportedMediaType(String),
    /// Too many requests are already held for approval.
    TooManyPending { retry_after_secs: u64 },
    /// The audit log cannot be written: nothing may be forwarded (fail closed).
    AuditUnavailable,
    /// The upstream could not be reached; names the upstream, nothing more.
    UpstreamUnreachable(String),
    /// The upstream did not answer in time.
    UpstreamTimeout(String),
    /// Something in sluice failed; details go to the operator's log, not the agent.
    Internal,
}

impl Refusal {
    /// The HTTP status this refusal is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::Unauthenticated => StatusCode::UNAUTHORIZED,
            Refusal::Impersonation | Refusal::Forbidden(_) => StatusCode::FORBIDDEN,
            Refusal::BadRequest(_) => StatusCode::BAD_REQUEST,
            Refusal::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            Refusal::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Refusal::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Refusal::TooManyPending { .. } => StatusCode::TOO_MANY_REQUESTS,
            Refusal::AuditUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::UpstreamUnreachable(_) => StatusCode::BAD_GATEWAY,
            Refusal::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Refusal::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `reason` of the `Status` object, as kube-apiserver spells it.
    fn k8s_reason(&self) -> &'static str {
        match self {
            Refusal::Unauthenticated => "Unauthorized",
            Refusal::Impersonation | Refusal::Forbidden(_) => "Forbidden",
            Refusal::BadRequest(_) | Refusal::UriTooLong(_) => "BadRequest",
            Refusal::PayloadTooLarge(_) => "RequestEntityTooLarge",
            Refusal::BodyTimeout(_) => "Timeout",
            Refusal::UnsupportedMediaType(_) => "UnsupportedMediaType",
            Refusal::TooManyPending { .. } => "TooManyRequests",
            Refusal::AuditUnavailable => "ServiceUnavailable",
            Refusal::UpstreamUnreachable(_) => "ServiceUnavailable",
            Refusal::UpstreamTimeout(_) => "Timeout",
            Refusal::Internal => "InternalError",
        }
    }

    /// The sentence the agent reads.
    pub fn message(&self) -> String {
        match self {
            Refusal::Unauthenticated => "Unauthorized".into(),
            Refusal::Impersonation => {
                "sluice: Impersonate-* headers are not allowed; sluice decides who the request runs as"
                    .into()
            }
            Refusal::BadRequest(m)
            | Refusal::Forbidden(m)
            | Refusal::PayloadTooLarge(m)
            | Refusal::BodyTimeout(m)
            | Refusal::UnsupportedMediaType(m) => m.clone(),
            Refusal::UriTooLong(limit) => {
                format!("sluice: the request URI is longer than {limit} bytes")
            }
            Refusal::TooManyPending { .. } => {
                "sluice: too many requests are waiting for approval; retry later".into()
            }
            Refusal::AuditUnavailable => {
                "sluice: the audit log cannot be written, so no request is forwarded".into()
            }
            Refusal::UpstreamUnreachable(up) => format!("sluice: upstream {up} is unreachable"),
            Refusal::UpstreamTimeout(up) => {
                format!("sluice: upstream {up} did not answer in time")
            }
            Refusal::Internal => "sluice: internal error".into(),
        }
    }

    /// The response sent to the agent.
    pub fn to_response(&self, request_id: Option<&str>) -> Response<Body> {
        let code = self.status();
        let body = status_json(code, self.k8s_reason(), &self.message());
        let mut response = Response::new(full(body));
        *response.status_mut() = code;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(id) = request_id.and_then(|id| HeaderValue::from_str(id).ok()) {
            headers.insert("x-request-id", id);
        }
        if let Refusal::TooManyPending { retry_after_secs } = self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        response
    }
}

/// A `Status` object as kube-apiserver writes it.
pub fn status_json(code: StatusCode, reason: &str, message: &str) -> Bytes {
    let status = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    Bytes::from(status.to_string())
}

/// A complete body of `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refusals_are_kubernetes_status_objects() {
        let response = Refusal::Unauthenticated.to_response(Some("sl_x"));
        assert_eq!(response.status(), 401);
        assert_eq!(response.headers()["x-request-id"], "sl_x");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["reason"], "Unauthorized");
        assert_eq!(status["code"], 401);
    }

    #[test]
    fn upstream_errors_name_the_upstream_and_nothing_else() {
        let message = Refusal::UpstreamUnreachable("https://10.0.0.1:6443".into()).message();
        assert_eq!(
            message,
            "sluice: upstream https://10.0.0.1:6443 is unreachable"
        );
    }
}
