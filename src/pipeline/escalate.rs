//! The escalate branch: buffer the body (bounded), record the escalation durably, hold the
//! request until its approvers decide, record the outcome, and hand back the permit the
//! approval grants and the request to forward exactly as it was received — or the refusal
//! the agent reads.

use bytes::Bytes;
use http::Request;
use http::request::Parts;

use tokio::time::Instant;

use super::body::read_within;
use super::{Proxy, Record};
use crate::Body;
use crate::approval::{ApprovalView, Outcome, body_preview};
use crate::classify::Classification;
use crate::error::Refusal;
use crate::policy::{Escalation, Permit};
use crate::request_info::RequestInfo;

/// Holds an escalated request; on approval returns the permit and the rebuilt request.
pub async fn hold(
    proxy: &Proxy,
    request: Request<Body>,
    escalation: Escalation,
    record: &mut Record,
) -> Result<(Permit, Request<Body>), Refusal> {
    // run() hands the classification to the record before anything is escalated; a held
    // request is rare, so its copy is made here rather than on every request.
    let class = record.class().cloned().ok_or(Refusal::Internal)?;
    let (parts, body) = request.into_parts();
    // The body must arrive within the time the request could be held at all: a client that
    // stops sending mid-body would otherwise hold this task and its connection forever. A
    // refusal here is recorded as deny: the request was never held.
    let (max, within) = {
        let config = proxy.approvals.config();
        (config.max_body_bytes, config.timeout_for(class.tier))
    };
    let body = read_within(body, max, within, "approvals.max_body_bytes")
        .await
        .inspect_err(|refusal| record.set_refused(refusal.message()))?;
    proxy.record_durably(record).await?;
    let outcome = wait_for_approvers(proxy, record, &class, &body, escalation.message()).await?;
    match outcome {
        Outcome::Approved(approved) => {
            let permit = approved.permit(escalation);
            record.decision = Some("approved");
            record.approved_by = Some(permit.approvers().to_vec());
            proxy.record_durably(record).await?;
            Ok((permit, rebuild(parts, body)))
        }
        Outcome::Rejected { by, reason } => {
            record.decision = Some("rejected");
            record.approved_by = Some(vec![by.clone()]);
            let why = reason.map(|r| format!(": {r}")).unwrap_or_default();
            Err(Refusal::Forbidden(format!(
                "sluice: approver {by} denied this request (tier {} {}){why}",
                class.tier, class.reason
            )))
        }
        Outcome::Expired { after } => {
            record.decision = Some("expired");
            Err(Refusal::Forbidden(format!(
                "sluice: approval for tier {} ({}) expired after {} seconds without a decision",
                class.tier,
                class.reason,
                after.as_secs()
            )))
        }
    }
}

/// Puts the request up for approval and waits for its outcome.
async fn wait_for_approvers(
    proxy: &Proxy,
    record: &mut Record,
    class: &Classification,
    body: &[u8],
    escalation_message: &str,
) -> Result<Outcome, Refusal> {
    // run() hands the parsed request to the record before anything is escalated.
    let view = match record.info() {
        Some(info) => approval_view(record, info, class, body),
        None => return Err(Refusal::Internal),
    };
    let mut abandoned = record.to_event();
    abandoned.decision = Some("abandoned");
    let (held, view) = proxy.approvals.hold(view, abandoned).map_err(|max_pending| {
        tracing::warn!(request.id = %record.request_id, max_pending, "approval queue full; refusing");
        // The escalate event is written; this one says it ended there, not held.
        record.set_refused(format!(
            "approval queue full (approvals.max_pending {max_pending})"
        ));
        Refusal::TooManyPending {
            retry_after_secs: 30,
        }
    })?;
    tracing::info!(
        request.id = %record.request_id, approval.id = %view.id,
        "held for approval: {escalation_message}"
    );
    let started = Instant::now();
    let outcome = held.wait().await;
    let waited = started.elapsed();
    proxy.metrics.approval_wait(waited.as_secs_f64());
    record.approval_latency_ms = Some(u64::try_from(waited.as_millis()).unwrap_or(u64::MAX));
    Ok(outcome)
}

/// The request as it was received, with the body read for the approvers.
fn rebuild(parts: Parts, body: Bytes) -> Request<Body> {
    Request::from_parts(parts, crate::error::full(body))
}
fn approval_view(
    record: &Record,
    info: &RequestInfo,
    class: &Classification,
    body: &[u8],
) -> ApprovalView {
    let (preview, truncated) = if body.is_empty() {
        (None, false)
    } else {
        let (text, cut) = body_preview(body, info.resource());
        (Some(text), cut)
    };
    ApprovalView {
        id: String::new(),
        request_id: record.request_id.clone(),
        agent: record.agent().unwrap_or_default().to_owned(),
        tier: class.tier.as_u8(),
        reason: class.reason.to_string(),
        method: record.method().to_owned(),
        path: record.path().to_owned(),
        verb: info.verb().to_owned(),
        api_group: info.api_group().to_owned(),
        resource: info.resource().map(str::to_owned),
        subresource: info.subresource().map(str::to_owned),
        namespace: info.namespace().map(str::to_owned),
        name: info.name().map(str::to_owned),
        created_at: String::new(),
        expires_at: String::new(),
        body: preview,
        body_truncated: truncated,
        required: 1,
        approvals: Vec::new(),
        state: "pending",
        decided_by: None,
        decision_reason: None,
    }
}
