//! [`Hold`]: the agent's side of a held request, waiting for its outcome; dropped early (the
//! agent went away), it withdraws the entry and records the request as abandoned.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{Approvals, Outcome};
use crate::audit::AuditEvent;

/// A request held for approval. Dropping it before it is settled (the agent went away)
/// withdraws the entry and records it as abandoned.
pub struct Hold {
    approvals: Arc<Approvals>,
    id: String,
    verdict: oneshot::Receiver<Outcome>,
    started: Instant,
    timeout: Duration,
    abandoned_event: Option<AuditEvent<'static>>,
}

impl Hold {
    pub(super) fn new(
        approvals: Arc<Approvals>,
        id: String,
        verdict: oneshot::Receiver<Outcome>,
        timeout: Duration,
        abandoned_event: AuditEvent<'static>,
    ) -> Hold {
        Hold {
            approvals,
            id,
            verdict,
            started: Instant::now(),
            timeout,
            abandoned_event: Some(abandoned_event),
        }
    }

    /// Waits for the verdict or the timeout.
    pub async fn wait(mut self) -> Outcome {
        let outcome = match tokio::time::timeout(self.timeout, &mut self.verdict).await {
            Ok(Ok(outcome)) => outcome,
            // Timed out (or the sender vanished): expire, unless a decision just raced in.
            _ => match self.approvals.withdraw(&self.id, "expired") {
                Some(_) => Outcome::Expired {
                    after: self.timeout,
                },
                None => self.verdict.try_recv().unwrap_or(Outcome::Expired {
                    after: self.timeout,
                }),
            },
        };
        self.abandoned_event = None;
        outcome
    }

    /// How long this request has been held.
    pub fn waited(&self) -> Duration {
        self.started.elapsed()
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let Some(mut event) = self.abandoned_event.take() else {
            return;
        };
        if self.approvals.withdraw(&self.id, "abandoned").is_none() {
            // Decided in the moment before the agent went away: the decision was never acted
            // on, and without this event the log would show the escalation and nothing after.
            match self.verdict.try_recv() {
                Ok(Outcome::Approved(approved)) => {
                    event.approved_by = Some(approved.by.into());
                    event.reason = Some("approved, but the agent went away first".into());
                }
                Ok(Outcome::Rejected { by, .. }) => {
                    event.approved_by = Some(vec![by].into());
                    event.reason = Some("rejected, but the agent went away first".into());
                }
                Ok(Outcome::Expired { .. }) | Err(_) => return,
            }
        }
        event.decision = Some("abandoned");
        event.approval_latency_ms = Some(self.started.elapsed().as_millis() as u64);
        self.approvals.audit.append_detached(event);
    }
}
