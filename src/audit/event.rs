//! One audit event: the fields of DESIGN.md "Audit log", in its order, absent values as
//! null. The writer frames it with `seq`, `timestamp`, `prev_hash` and `hash` (`line.rs`).
//!
//! The text fields are `Cow`s: a request's events borrow what the pipeline already holds
//! (no string copies on the request path), while an event that must outlive its request
//! (the approval queue's `abandoned` event) owns its text. Either way the event is written
//! to JSON by serde on the caller's thread, so the one writer thread only frames, hashes
//! and writes.

use std::borrow::Cow;

use serde::{Serialize, Serializer};

/// Which moment an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// A request's decision, written before anything is forwarded.
    Decision,
    /// A request's end: status, latency, bytes.
    Complete,
    /// sluice started: version and the hashes of the files in force.
    Start,
    /// The policy was reloaded.
    Policy,
    /// A torn tail was cut off on start.
    Recovery,
}

/// Everything an event may carry. [`AuditEvent::new`] is all-null; set what applies.
///
/// The field order is the contract's: serde writes members in declaration order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEvent<'a> {
    pub stage: Stage,
    pub request_id: Option<Cow<'a, str>>,
    pub agent: Option<Cow<'a, str>>,
    /// `token` or `mtls`.
    pub auth: Option<&'static str>,
    pub source_ip: Option<Cow<'a, str>>,
    pub user_agent: Option<Cow<'a, str>>,
    pub method: Option<Cow<'a, str>>,
    pub path: Option<Cow<'a, str>>,
    pub verb: Option<Cow<'a, str>>,
    pub api_group: Option<Cow<'a, str>>,
    pub api_version: Option<Cow<'a, str>>,
    pub namespace: Option<Cow<'a, str>>,
    pub resource: Option<Cow<'a, str>>,
    pub subresource: Option<Cow<'a, str>>,
    pub name: Option<Cow<'a, str>>,
    pub tier: Option<u8>,
    /// allow | deny | escalate | approved | rejected | expired | abandoned
    pub decision: Option<&'static str>,
    pub reason: Option<Cow<'a, str>>,
    pub rule: Option<Cow<'a, str>>,
    /// Every approver, in the order they approved.
    pub approved_by: Option<Cow<'a, [String]>>,
    pub approval_latency_ms: Option<u64>,
    pub status: Option<u16>,
    pub latency_us: Option<u64>,
    pub bytes: Option<u64>,
    /// For sluice's own events (`start`, `policy`, `recovery`): what they need to carry,
    /// e.g. version, config path and file hashes, bytes cut from a torn tail. Written as
    /// members of their own after `bytes`.
    #[serde(flatten, serialize_with = "members")]
    pub details: Vec<(&'static str, String)>,
}

impl<'a> AuditEvent<'a> {
    pub fn new(stage: Stage) -> AuditEvent<'a> {
        AuditEvent {
            stage,
            request_id: None,
            agent: None,
            auth: None,
            source_ip: None,
            user_agent: None,
            method: None,
            path: None,
            verb: None,
            api_group: None,
            api_version: None,
            namespace: None,
            resource: None,
            subresource: None,
            name: None,
            tier: None,
            decision: None,
            reason: None,
            rule: None,
            approved_by: None,
            approval_latency_ms: None,
            status: None,
            latency_us: None,
            bytes: None,
            details: Vec::new(),
        }
    }

    /// This event as one JSON object, `{"stage":…}`, members in the contract's order.
    pub fn to_json(&self) -> Vec<u8> {
        // Typical request events are 450-650 bytes.
        let mut out = Vec::with_capacity(768);
        // Cannot fail: every key is a string and a `Vec` takes every write.
        serde_json::to_writer(&mut out, self).expect("an audit event always serialises");
        out
    }

    /// The same event owning its text, to be kept past what it borrows from.
    pub fn into_owned(self) -> AuditEvent<'static> {
        fn own(text: Option<Cow<'_, str>>) -> Option<Cow<'static, str>> {
            text.map(|text| Cow::Owned(text.into_owned()))
        }
        AuditEvent {
            stage: self.stage,
            request_id: own(self.request_id),
            agent: own(self.agent),
            auth: self.auth,
            source_ip: own(self.source_ip),
            user_agent: own(self.user_agent),
            method: own(self.method),
            path: own(self.path),
            verb: own(self.verb),
            api_group: own(self.api_group),
            api_version: own(self.api_version),
            namespace: own(self.namespace),
            resource: own(self.resource),
            subresource: own(self.subresource),
            name: own(self.name),
            tier: self.tier,
            decision: self.decision,
            reason: own(self.reason),
            rule: own(self.rule),
            approved_by: self.approved_by.map(|names| Cow::Owned(names.into_owned())),
            approval_latency_ms: self.approval_latency_ms,
            status: self.status,
            latency_us: self.latency_us,
            bytes: self.bytes,
            details: self.details,
        }
    }
}

/// `details` as members of the event itself, in their order.
fn members<S: Serializer>(
    details: &[(&'static str, String)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(details.iter().map(|(key, value)| (key, value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owned_copy_writes_the_same_json() {
        let path = String::from("/api/v1/pods");
        let mut event = AuditEvent::new(Stage::Decision);
        event.path = Some(Cow::Borrowed(&path));
        event.approved_by = Some(Cow::Owned(vec!["alice".into()]));
        event.details = vec![("result", "loaded".into())];
        let json = event.to_json();
        let owned = event.into_owned();
        drop(path);
        assert_eq!(owned.to_json(), json);
        assert!(json.starts_with(b"{\"stage\":\"decision\",\"request_id\":null,"));
        assert!(json.ends_with(b",\"bytes\":null,\"result\":\"loaded\"}"));
    }
}
