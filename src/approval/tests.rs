//! The queue's state machine: expiry (paused time), quorum, separation of duties, the
//! queue limit, and what an agent going away leaves in the audit log.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::audit::Stage;
use crate::config::{AuditConfig, SyncMode};

fn view(tier: u8) -> ApprovalView {
    ApprovalView {
        id: String::new(),
        request_id: "sl_test".into(),
        agent: "claude-code".into(),
        tier,
        reason: "test".into(),
        method: "POST".into(),
        path: "/api/v1/namespaces/default/configmaps".into(),
        verb: "create".into(),
        api_group: String::new(),
        resource: Some("configmaps".into()),
        subresource: None,
        namespace: Some("default".into()),
        name: None,
        created_at: String::new(),
        expires_at: String::new(),
        body: None,
        body_truncated: false,
        required: 1,
        approvals: Vec::new(),
        state: "pending",
        decided_by: None,
        decision_reason: None,
    }
}

fn abandoned_event() -> AuditEvent<'static> {
    let mut event = AuditEvent::new(Stage::Decision);
    event.request_id = Some("sl_test".into());
    event
}

async fn queue(config: ApprovalsConfig) -> (Arc<Approvals>, AuditLog, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let audit = AuditConfig {
        path: dir.path().join("audit.jsonl"),
        sync: SyncMode::Flush,
        rotate_bytes: 1 << 20,
    };
    let (log, _task) = AuditLog::open(&audit).await.unwrap();
    (Approvals::new(config, log.clone()), log, dir)
}

/// The audit log's lines once everything appended so far is written.
async fn audit_lines(log: &AuditLog, dir: &tempfile::TempDir) -> Vec<serde_json::Value> {
    // One writer fixes the order: once this is durable, every earlier event is too.
    log.append(AuditEvent::new(Stage::Decision)).await.unwrap();
    std::fs::read_to_string(dir.path().join("audit.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn an_undecided_request_expires_after_its_tiers_timeout() {
    // Real time, kept short: the audit writer is a blocking task, and paused tokio time
    // neither auto-advances nor reliably fires around one.
    let config = ApprovalsConfig {
        timeouts: BTreeMap::from([(Tier::T4, Duration::from_millis(300))]),
        ..ApprovalsConfig::default()
    };
    let (approvals, _log, _dir) = queue(config).await;
    let (hold, held) = approvals.hold(view(4), abandoned_event()).unwrap();
    let started = tokio::time::Instant::now();
    match hold.wait().await {
        Outcome::Expired { after } => assert_eq!(after, Duration::from_millis(300)),
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(approvals.get(&held.id).unwrap().state, "expired");
    assert_eq!(
        approvals.approve(&held.id, "alice", None).err(),
        Some(DecideError::AlreadyDecided {
            id: held.id.clone(),
            state: "expired",
            by: None
        })
    );
}

#[tokio::test]
async fn a_quorum_needs_distinct_approvers_other_than_the_agent() {
    let config = ApprovalsConfig {
        required: BTreeMap::from([(Tier::T4, std::num::NonZeroU8::new(2).unwrap())]),
        ..ApprovalsConfig::default()
    };
    let (approvals, _log, _dir) = queue(config).await;
    let (hold, held) = approvals.hold(view(4), abandoned_event()).unwrap();
    let id = held.id.as_str();
    assert_eq!(held.required, 2);
    assert_eq!(
        approvals.approve(id, "alice", None).unwrap().state,
        "pending"
    );
    assert_eq!(
        approvals.approve(id, "alice", None).err(),
        Some(DecideError::AlreadyApproved("alice".into()))
    );
    assert_eq!(
        approvals.approve(id, "claude-code", None).err(),
        Some(DecideError::SelfApproval("claude-code".into()))
    );
    assert_eq!(
        approvals.approve(id, "bob", None).unwrap().state,
        "approved"
    );
    match hold.wait().await {
        Outcome::Approved(approved) => assert_eq!(approved.approvers(), ["alice", "bob"]),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        approvals.deny(id, "carol", None).err(),
        Some(DecideError::AlreadyDecided {
            state: "approved",
            ..
        })
    ));
}

#[tokio::test]
async fn the_queue_refuses_beyond_max_pending() {
    let config = ApprovalsConfig {
        max_pending: 1,
        ..ApprovalsConfig::default()
    };
    let (approvals, _log, _dir) = queue(config).await;
    let _first = approvals.hold(view(2), abandoned_event()).unwrap();
    assert!(matches!(approvals.hold(view(2), abandoned_event()), Err(1)));
}

#[tokio::test]
async fn an_agent_that_goes_away_while_held_is_recorded_abandoned() {
    let (approvals, log, dir) = queue(ApprovalsConfig::default()).await;
    let (hold, held) = approvals.hold(view(2), abandoned_event()).unwrap();
    drop(hold);
    assert_eq!(approvals.pending_count(), 0);
    assert_eq!(approvals.get(&held.id).unwrap().state, "abandoned");
    let lines = audit_lines(&log, &dir).await;
    assert_eq!(lines[0]["decision"], "abandoned");
    assert!(lines[0]["approved_by"].is_null());
}

#[tokio::test]
async fn an_agent_that_goes_away_just_after_approval_is_still_recorded() {
    let (approvals, log, dir) = queue(ApprovalsConfig::default()).await;
    let (hold, held) = approvals.hold(view(2), abandoned_event()).unwrap();
    approvals.approve(&held.id, "alice", None).unwrap();
    // The verdict is sent, but the waiter is dropped before it acts on it.
    drop(hold);
    let lines = audit_lines(&log, &dir).await;
    assert_eq!(lines[0]["decision"], "abandoned", "{lines:?}");
    assert_eq!(lines[0]["approved_by"], serde_json::json!(["alice"]));
}
