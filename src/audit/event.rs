//! One audit event: the fields of DESIGN.md "Audit log", absent values as null. The writer
//! adds `seq`, `timestamp`, `prev_hash` and `hash`.

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
