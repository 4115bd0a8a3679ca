//! Response bodies: whole JSON documents, and streams fed through a channel
//! (watch, `logs -f`) whose every chunk is sent to the client as soon as it is produced.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tokio::sync::mpsc;

pub type Body = BoxBody<Bytes, Infallible>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

pub fn empty() -> Body {
    full(Bytes::new())
}

pub fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(full(serde_json::to_vec(value).unwrap()))
        .unwrap()
}

/// A `Status` failure, shaped as kube-apiserver writes it.
pub fn status_response(
    code: u16,
    reason: &str,
    message: &str,
    details: Option<Value>,
) -> Response<Body> {
    let mut status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(details) = details {
        status["details"] = details;
    }
    json_response(StatusCode::from_u16(code).unwrap(), &status)
}

pub fn not_found(resource: &str, name: &str) -> Response<Body> {
    status_response(
        404,
        "NotFound",
        &format!("{resource} \"{name}\" not found"),
        Some(json!({"name": name, "kind": resource})),
    )
}

pub fn page_not_found() -> Response<Body> {
    status_response(
        404,
        "NotFound",
        "the server could not find the requested resource",
        None,
    )
}

/// A streaming body fed by `rx`; `guard` is dropped when the client goes away.
pub fn channel<G: Send + Sync + Unpin + 'static>(rx: mpsc::Receiver<Bytes>, guard: G) -> Body {
    ChannelBody { rx, _guard: guard }.boxed()
}

struct ChannelBody<G> {
    rx: mpsc::Receiver<Bytes>,
    _guard: G,
}

impl<G: Unpin> http_body::Body for ChannelBody<G> {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}
