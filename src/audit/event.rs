//! One audit event: the fields of DESIGN.md "Audit log", absent values as null. The writer
//! adds `seq`, `timestamp`, `prev_hash` and `hash`.
//!
//! Events are written to JSON by whoever makes them, on their own thread ([`Encoded`]), from
//! a borrowed view of the fields ([`EventFields`]): a request's record fills that view from
//! the values the pipeline already holds, so a request's events cost no string copies, and
//! the one writer thread only frames, hashes and writes.

/// Which moment an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Decision => "decision",
            Stage::Complete => "complete",
            Stage::Start => "start",
            Stage::Policy => "policy",
            Stage::Recovery => "recovery",
        }
    }
}

/// Everything an event may carry. `Default` is all-null; set what applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub stage: Stage,
    pub request_id: Option<String>,
    pub agent: Option<String>,
    /// `token` or `mtls`.
    pub auth: Option<&'static str>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub method: Option<String>,
    pub path: Option<String>,
    pub verb: Option<String>,
    pub api_group: Option<String>,
    pub api_version: Option<String>,
    pub namespace: Option<String>,
    pub resource: Option<String>,
    pub subresource: Option<String>,
    pub name: Option<String>,
    pub tier: Option<u8>,
    /// allow | deny | escalate | approved | rejected | expired | abandoned
    pub decision: Option<&'static str>,
    pub reason: Option<String>,
    pub rule: Option<String>,
    /// Every approver, in the order they approved.
    pub approved_by: Option<Vec<String>>,
    pub approval_latency_ms: Option<u64>,
    pub status: Option<u16>,
    pub latency_us: Option<u64>,
    pub bytes: Option<u64>,
    /// For sluice's own events (`start`, `policy`, `recovery`): what they need to carry,
    /// e.g. version, config path and file hashes, bytes cut from a torn tail.
    pub details: Vec<(&'static str, String)>,
}

impl AuditEvent {
    pub fn new(stage: Stage) -> AuditEvent {
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
}

/// The fields of an event (everything between `stage` and `prev_hash`), borrowed from
/// wherever they live. [`super::line::write_fields`] writes them in the contract's order.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventFields<'a> {
    pub request_id: Option<&'a str>,
    pub agent: Option<&'a str>,
    pub auth: Option<&'a str>,
    pub source_ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub method: Option<&'a str>,
    pub path: Option<&'a str>,
    pub verb: Option<&'a str>,
    pub api_group: Option<&'a str>,
    pub api_version: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub resource: Option<&'a str>,
    pub subresource: Option<&'a str>,
    pub name: Option<&'a str>,
    pub tier: Option<u8>,
    pub decision: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub rule: Option<&'a str>,
    pub approved_by: Option<&'a [String]>,
    pub approval_latency_ms: Option<u64>,
    pub status: Option<u16>,
    pub latency_us: Option<u64>,
    pub bytes: Option<u64>,
    pub details: &'a [(&'static str, String)],
}

/// An event ready for the writer: its stage and its fields already written as JSON
/// (`,"request_id":…` up to and including the last detail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub(super) stage: Stage,
    pub(super) fields: Vec<u8>,
}

impl Encoded {
    /// Writes `fields` as JSON now, on the caller's thread.
    pub fn new(stage: Stage, fields: &EventFields<'_>) -> Encoded {
        // Typical request events are 450-650 bytes of fields.
        let mut out = Vec::with_capacity(768);
        super::line::write_fields(fields, &mut out);
        Encoded { stage, fields: out }
    }
}

impl AuditEvent {
    /// This event's fields, borrowed.
    pub fn fields(&self) -> EventFields<'_> {
        EventFields {
            request_id: self.request_id.as_deref(),
            agent: self.agent.as_deref(),
            auth: self.auth,
            source_ip: self.source_ip.as_deref(),
            user_agent: self.user_agent.as_deref(),
            method: self.method.as_deref(),
            path: self.path.as_deref(),
            verb: self.verb.as_deref(),
            api_group: self.api_group.as_deref(),
            api_version: self.api_version.as_deref(),
            namespace: self.namespace.as_deref(),
            resource: self.resource.as_deref(),
            subresource: self.subresource.as_deref(),
            name: self.name.as_deref(),
            tier: self.tier,
            decision: self.decision,
            reason: self.reason.as_deref(),
            rule: self.rule.as_deref(),
            approved_by: self.approved_by.as_deref(),
            approval_latency_ms: self.approval_latency_ms,
            status: self.status,
            latency_us: self.latency_us,
            bytes: self.bytes,
            details: &self.details,
        }
    }
}

impl From<&AuditEvent> for Encoded {
    fn from(event: &AuditEvent) -> Encoded {
        Encoded::new(event.stage, &event.fields())
    }
}

impl From<AuditEvent> for Encoded {
    fn from(event: AuditEvent) -> Encoded {
        Encoded::from(&event)
    }
}
