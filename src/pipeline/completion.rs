//! The [`Completion`] guard that writes a request's `complete` event on every outcome: when
//! the response body ends, when the agent goes away mid-stream, or when a spliced upgrade
//! closes; and [`CountingBody`], the response body that carries it.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

use super::Record;
use crate::audit::AuditLog;
use crate::metrics::Metrics;

/// Writes the request's `complete` event exactly once, when dropped.
#[derive(Debug)]
pub struct Completion {
    audit: AuditLog,
    metrics: Arc<Metrics>,
    record: Option<Record>,
    status: u16,
    bytes: u64,
}

impl Completion {
    /// A guard that writes `record`'s `complete` event (and counts the request) when dropped.
    pub fn new(record: Record, audit: AuditLog, metrics: Arc<Metrics>, status: u16) -> Completion {
        Completion {
            audit,
            metrics,
            record: Some(record),
            status,
            bytes: 0,
        }
    }

    pub fn add_bytes(&mut self, n: u64) {
        self.bytes = self.bytes.saturating_add(n);
    }

    /// Notes why the exchange ended early (an upstream reset mid-stream, say).
    pub fn set_reason(&mut self, reason: String) {
        if let Some(record) = self.record.as_mut() {
            record.set_reason(reason);
        }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        if let Some(record) = self.record.take() {
            let (tier, decision, agent) = record.labels();
            let seconds = record.started.elapsed().as_secs_f64();
            self.metrics.record_request(tier, decision, agent, seconds);
            self.audit
                .append_detached(record.complete_event(self.status, self.bytes));
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
