//! Escalated requests, held open until humans decide.
//!
//! LIFECYCLE of a held request:
//!
//! ```text
//! hold() ──▶ pending ──approve × required──▶ approved  ─▶ forwarded (Approved::permit)
//!               │ ──deny────────────────────▶ rejected  ─▶ 403 naming the approver and reason
//!               │ ──timeout─────────────────▶ expired   ─▶ 403 saying how long it waited
//!               └ ──agent disconnects───────▶ abandoned    (Hold dropped: entry withdrawn)
//! ```
//!
//! Every transition is broadcast to subscribers (the SSE stream, the webhook) and recorded
//! in the audit log by the pipeline (abandoned by [`Hold`]'s drop, as nothing else runs).

mod hold;
mod notify;
#[cfg(test)]
mod tests;
mod view;

pub use hold::Hold;
pub use notify::{signature, spawn as spawn_notifier};

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokio::sync::{broadcast, oneshot};

use crate::audit::{AuditEvent, AuditLog};
use crate::classify::Tier;
use crate::config::ApprovalsConfig;
use crate::policy::{Escalation, Permit};

pub use view::{ApprovalView, PREVIEW_BYTES, body_preview};

/// Proof that a held request was granted by its quorum; only this module makes one.
#[derive(Debug)]
pub struct Approved {
    by: Vec<String>,
}

impl Approved {
    /// Everyone who approved, in order.
    pub fn approvers(&self) -> &[String] {
        &self.by
    }

    /// The permit policy sealed in `escalation`, granted by these approvers.
    pub fn permit(self, escalation: Escalation) -> Permit {
        escalation.grant(self.by)
    }
}

/// How a held request ended, for the pipeline.
#[derive(Debug)]
pub enum Outcome {
    Approved(Approved),
    Rejected { by: String, reason: Option<String> },
    Expired { after: Duration },
}

/// Why an approver's decision was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecideError {
    #[error("no approval with id {0}")]
    NotFound(String),
    #[error("approval {id} is already {state}{}", by.as_ref().map(|b| format!(" by {b}")).unwrap_or_default())]
    AlreadyDecided {
        id: String,
        state: &'static str,
        by: Option<String>,
    },
    #[error("{0} may not approve a request made by an agent of the same name")]
    SelfApproval(String),
    #[error("{0} has already approved this request; it needs another approver")]
    AlreadyApproved(String),
}

/// A change to the queue, as broadcast to subscribers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ApprovalEvent {
    /// new | approval (one of several needed) | approved | rejected | expired | abandoned
    pub kind: &'static str,
    pub approval: ApprovalView,
}

/// The queue of held requests.
pub struct Approvals {
    state: Mutex<State>,
    config: ApprovalsConfig,
    events: broadcast::Sender<ApprovalEvent>,
    audit: AuditLog,
}

#[derive(Default)]
struct State {
    pending: HashMap<String, Pending>,
    /// Recently decided entries, newest last, so `GET /v1/approvals/{id}` and 409s can say
    /// how a request was decided.
    decided: VecDeque<ApprovalView>,
}

struct Pending {
    view: ApprovalView,
    verdict: Option<oneshot::Sender<Outcome>>,
}

/// How many decided entries are remembered.
const DECIDED_KEPT: usize = 1000;

impl Approvals {
    pub fn new(config: ApprovalsConfig, audit: AuditLog) -> Arc<Approvals> {
        let (events, _) = broadcast::channel(1024);
        Arc::new(Approvals {
            state: Mutex::new(State::default()),
            config,
            events,
            audit,
        })
    }

    pub fn config(&self) -> &ApprovalsConfig {
        &self.config
    }

    /// Holds a request. `view` is filled in with id, timestamps and quorum here;
    /// `abandoned_event` is written if the agent goes away first. Err when the queue is full.
    pub fn hold(
        self: &Arc<Self>,
        mut view: ApprovalView,
        abandoned_event: AuditEvent<'static>,
    ) -> Result<(Hold, ApprovalView), usize> {
        // `view.tier` is a `Tier`'s number (pipeline/escalate.rs): the fallback is never taken.
        let tier = Tier::from_u8(view.tier).unwrap_or(Tier::T4);
        let timeout = self.config.timeout_for(tier);
        let now = SystemTime::now();
        view.id = new_approval_id();
        view.created_at = rfc3339(now);
        view.expires_at = rfc3339(now + timeout);
        view.required = self.config.required_for(tier);
        view.state = "pending";
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.lock();
            if state.pending.len() >= self.config.max_pending {
                return Err(self.config.max_pending);
            }
            state.pending.insert(
                view.id.clone(),
                Pending {
                    view: view.clone(),
                    verdict: Some(tx),
                },
            );
        }
        self.publish("new", view.clone());
        let hold = Hold::new(self.clone(), view.id.clone(), rx, timeout, abandoned_event);
        Ok((hold, view))
    }

    /// Pending requests, oldest first.
    pub fn list(&self) -> Vec<ApprovalView> {
        let mut views: Vec<_> = self
            .lock()
            .pending
            .values()
            .map(|p| p.view.clone())
            .collect();
        views.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        views
    }

    pub fn pending_count(&self) -> usize {
        self.lock().pending.len()
    }

    /// One request, pending or recently decided.
    pub fn get(&self, id: &str) -> Option<ApprovalView> {
        let state = self.lock();
        state
            .pending
            .get(id)
            .map(|p| p.view.clone())
            .or_else(|| state.decided.iter().rev().find(|v| v.id == id).cloned())
    }

    /// Records `approver`'s approval; once `required` distinct approvers agree, the request
    /// is released. Returns the entry as it now stands.
    pub fn approve(
        &self,
        id: &str,
        approver: &str,
        reason: Option<String>,
    ) -> Result<ApprovalView, DecideError> {
        let mut state = self.lock();
        let pending = decidable(&mut state, id, approver)?;
        if pending.view.approvals.iter().any(|a| a == approver) {
            return Err(DecideError::AlreadyApproved(approver.to_owned()));
        }
        pending.view.approvals.push(approver.to_owned());
        if pending.view.approvals.len() < usize::from(pending.view.required) {
            let view = pending.view.clone();
            drop(state);
            self.publish("approval", view.clone());
            return Ok(view);
        }
        let by = pending.view.approvals.clone();
        let decided_by = by.join(",");
        Ok(self.finish(
            state,
            id,
            "approved",
            decided_by,
            reason,
            Outcome::Approved(Approved { by }),
        ))
    }

    /// Rejects a request; the agent gets a 403 naming `approver` and `reason`.
    pub fn deny(
        &self,
        id: &str,
        approver: &str,
        reason: Option<String>,
    ) -> Result<ApprovalView, DecideError> {
        let mut state = self.lock();
        decidable(&mut state, id, approver)?;
        let outcome = Outcome::Rejected {
            by: approver.to_owned(),
            reason: reason.clone(),
        };
        Ok(self.finish(state, id, "rejected", approver.to_owned(), reason, outcome))
    }

    /// Settles a pending entry under the lock, then tells subscribers once it is released.
    fn finish(
        &self,
        mut state: MutexGuard<'_, State>,
        id: &str,
        state_name: &'static str,
        by: String,
        reason: Option<String>,
        outcome: Outcome,
    ) -> ApprovalView {
        let view = settle(&mut state, id, state_name, by, reason, outcome);
        drop(state);
        self.publish(state_name, view.clone());
        view
    }

    /// New, decided and expired approvals as they happen.
    pub fn subscribe(&self) -> broadcast::Receiver<ApprovalEvent> {
        self.events.subscribe()
    }

    /// Removes a still-pending entry (expired or abandoned); None if it was decided first.
    fn withdraw(&self, id: &str, state_name: &'static str) -> Option<ApprovalView> {
        let mut state = self.lock();
        let mut pending = state.pending.remove(id)?;
        pending.view.state = state_name;
        remember(&mut state, pending.view.clone());
        drop(state);
        self.publish(state_name, pending.view.clone());
        Some(pending.view)
    }

    fn publish(&self, kind: &'static str, approval: ApprovalView) {
        // No subscribers is fine: nobody is watching.
        let _ = self.events.send(ApprovalEvent { kind, approval });
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave State half-updated in a way that
        // matters more than refusing every approval afterwards would.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The pending entry `approver` may decide: it exists, is undecided, and is not a request
/// of an agent with the approver's own name (separation of duties).
fn decidable<'s>(
    state: &'s mut State,
    id: &str,
    approver: &str,
) -> Result<&'s mut Pending, DecideError> {
    let pending = pending_entry(state, id)?;
    if pending.view.agent == approver {
        return Err(DecideError::SelfApproval(approver.to_owned()));
    }
    Ok(pending)
}

fn pending_entry<'s>(state: &'s mut State, id: &str) -> Result<&'s mut Pending, DecideError> {
    if state.pending.contains_key(id) {
        // Checked just above, under the same lock.
        return state
            .pending
            .get_mut(id)
            .ok_or_else(|| DecideError::NotFound(id.to_owned()));
    }
    match state.decided.iter().rev().find(|v| v.id == id) {
        Some(view) => Err(DecideError::AlreadyDecided {
            id: id.to_owned(),
            state: view.state,
            by: view.decided_by.clone(),
        }),
        None => Err(DecideError::NotFound(id.to_owned())),
    }
}

fn settle(
    state: &mut State,
    id: &str,
    state_name: &'static str,
    by: String,
    reason: Option<String>,
    outcome: Outcome,
) -> ApprovalView {
    let Some(mut pending) = state.pending.remove(id) else {
        unreachable!("settle is called with an id pending_entry found under the same lock")
    };
    pending.view.state = state_name;
    pending.view.decided_by = Some(by);
    pending.view.decision_reason = reason;
    if let Some(tx) = pending.verdict.take() {
        // The waiter may have just gone away; then Hold's drop finds nothing to withdraw.
        let _ = tx.send(outcome);
    }
    remember(state, pending.view.clone());
    pending.view
}

fn remember(state: &mut State, view: ApprovalView) {
    if state.decided.len() >= DECIDED_KEPT {
        state.decided.pop_front();
    }
    state.decided.push_back(view);
}

/// `ap_` + 22 URL-safe characters: 128 random bits, unguessable.
fn new_approval_id() -> String {
    let bytes: [u8; 16] = rand::random();
    format!("ap_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// RFC 3339 UTC with seconds.
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}
