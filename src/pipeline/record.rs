//! The audit record of one request, built up as it moves through the pipeline, and the
//! [`Completion`] guard that writes its `complete` event on every outcome: when the response
//! body ends, when the agent goes away mid-stream, or when a spliced upgrade closes.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::Request;
use http_body::{Body as HttpBody, Frame, SizeHint};

use crate::audit::{AuditEvent, AuditLog, Stage};
use crate::authn::AgentIdentity;
use crate::classify::Classification;
use crate::listener::Peer;
use crate::metrics::Metrics;
use crate::policy::Decision;
use crate::request_info::RequestInfo;

/// The fields shared by a request's `decision` and `complete` events.
#[derive(Debug, Clone)]
pub struct Record {
    pub event: AuditEvent,
    pub started: Instant,
}

impl Record {
    /// Starts the record of a request as it arrives.
    pub fn new<B>(request_id: &str, peer: &Peer, request: &Request<B>) -> Record {
        let mut event = AuditEvent::new(Stage::Decision);
        event.request_id = Some(request_id.to_owned());
        event.source_ip = Some(peer.addr.ip().to_string());
        event.user_agent = request
            .headers()
            .get(http::header::USER_AGENT)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        event.method = Some(request.method().as_str().to_owned());
        let path_and_query = request
            .uri()
            .path_and_query()
            .map_or_else(|| request.uri().path(), |p| p.as_str());
        event.path = Some(redact_tokens(path_and_query));
        Record {
            event,
            started: Instant::now(),
        }
    }

    pub fn set_agent(&mut self, agent: &AgentIdentity) {
        self.event.agent = Some(agent.name.to_string());
        self.event.auth = Some(agent.auth.as_str());
    }

    pub fn set_info(&mut self, info: &RequestInfo) {
        let e = &mut self.event;
        e.verb = Some(info.verb().to_owned());
        e.api_group = (info.is_resource_request).then(|| info.api_group().to_owned());
        e.api_version = (!info.api_version().is_empty()).then(|| info.api_version().to_owned());
        e.namespace = info.namespace().map(str::to_owned);
        e.resource = info.resource().map(str::to_owned);
        e.subresource = info.subresource().map(str::to_owned);
        e.name = info.name().map(str::to_owned);
    }

    pub fn set_decision(&mut self, class: &Classification, decision: &Decision) {
        self.event.tier = Some(class.tier.as_u8());
        self.event.decision = Some(decision.action().as_str());
        self.event.reason = Some(class.reason.to_string());
        self.event.rule = Some(decision.rule().to_owned());
    }

    /// A refusal before policy ran (authentication, a malformed request): decision deny.
    pub fn set_refused(&mut self, reason: String) {
        self.event.decision = Some("deny");
        self.event.reason = Some(reason);
    }

    /// Moves the record out, leaving an empty one behind (no allocation).
    pub fn take(&mut self) -> Record {
        std::mem::replace(
            self,
            Record {
                event: AuditEvent::new(Stage::Decision),
                started: self.started,
            },
        )
    }

    /// The event recording what was decided.
    pub fn decision_event(&self) -> AuditEvent {
        let mut event = self.event.clone();
        event.stage = Stage::Decision;
        event
    }

    /// A guard that writes the `complete` event (and counts the request) when dropped.
    pub fn completion(self, audit: AuditLog, metrics: Arc<Metrics>, status: u16) -> Completion {
        let mut event = self.event;
        event.stage = Stage::Complete;
        event.status = Some(status);
        Completion {
            audit,
            metrics,
            event: Some(event),
            started: self.started,
            bytes: 0,
        }
    }
}

/// The query parameter some clients use to carry a bearer token.
pub const TOKEN_PARAM: &str = "access_token";

/// `path_and_query` with the value of any `access_token` parameter replaced, so no token
/// is ever stored in the audit log (the request itself is refused).
pub fn redact_tokens(path_and_query: &str) -> String {
    let Some((path, query)) = path_and_query.split_once('?') else {
        return path_and_query.to_owned();
    };
    if !query.split('&').any(|pair| is_token_param(key_of(pair))) {
        return path_and_query.to_owned();
    }
    let query: Vec<String> = query
        .split('&')
        .map(|pair| {
            let key = key_of(pair);
            if is_token_param(key) {
                format!("{key}=<redacted>")
            } else {
                pair.to_owned()
            }
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

/// The key of one `key=value` query pair.
pub fn key_of(pair: &str) -> &str {
    pair.split_once('=').map_or(pair, |(key, _)| key)
}

/// Whether a (possibly percent-encoded) query key names the token parameter.
pub fn is_token_param(key: &str) -> bool {
    key.len() >= TOKEN_PARAM.len()
        && percent_encoding::percent_decode_str(key)
            .decode_utf8_lossy()
            .eq_ignore_ascii_case(TOKEN_PARAM)
}

/// Writes the request's `complete` event exactly once, when dropped.
#[derive(Debug)]
pub struct Completion {
    audit: AuditLog,
    metrics: Arc<Metrics>,
    event: Option<AuditEvent>,
    started: Instant,
    bytes: u64,
}

impl Completion {
    pub fn add_bytes(&mut self, n: u64) {
        self.bytes = self.bytes.saturating_add(n);
    }

    /// Notes why the exchange ended early (an upstream reset mid-stream, say).
    pub fn set_reason(&mut self, reason: String) {
        if let Some(event) = self.event.as_mut() {
            event.reason = Some(reason);
        }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        if let Some(mut event) = self.event.take() {
            let elapsed = self.started.elapsed();
            event.latency_us = Some(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
            event.bytes = Some(self.bytes);
            self.metrics.record_request(
                event.tier,
                event.decision.unwrap_or("deny"),
                event.agent.as_deref(),
                elapsed.as_secs_f64(),
            );
            self.audit.append_detached(event);
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that counts the bytes it passes on and completes the record when it
    /// ends or is dropped (the agent went away).
    pub struct CountingBody<B> {
        #[pin]
        inner: B,
        completion: Option<Completion>,
    }
}

impl<B> CountingBody<B> {
    pub fn new(inner: B, completion: Completion) -> Self {
        CountingBody {
            inner,
            completion: Some(completion),
        }
    }
}

impl<B> HttpBody for CountingBody<B>
where
    B: HttpBody<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(c)) = (frame.data_ref(), this.completion.as_mut()) {
                    c.add_bytes(data.len() as u64);
                }
            }
            Poll::Ready(Some(Err(err))) => {
                if let Some(mut c) = this.completion.take() {
                    c.set_reason(format!("upstream stream failed: {err}"));
                }
            }
            Poll::Ready(None) => {
                this.completion.take();
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_in_the_query_never_reach_the_record() {
        assert_eq!(
            redact_tokens("/api/v1/pods?watch=1&access_token=s3cret&x=y"),
            "/api/v1/pods?watch=1&access_token=<redacted>&x=y"
        );
        assert_eq!(
            redact_tokens("/api?Access%5Ftoken=s3cret"),
            "/api?Access%5Ftoken=<redacted>"
        );
        assert_eq!(
            redact_tokens("/api/v1/pods?limit=5"),
            "/api/v1/pods?limit=5"
        );
    }
}
