//! [`Permit`]: the only key to [`crate::forward`], and everything forwarding needs to know.
//!
//! Its fields are private and only this module's parent makes one: policy, when it allows
//! a request (or observe mode lets it through), or, for an escalated request, inside the
//! [`Escalation`] that an approval turns into a permit once its quorum has agreed. A code
//! path that skips policy has no permit, so it cannot forward.

use std::sync::Arc;

use http::HeaderValue;

use crate::request_info::RequestInfo;

/// Permission to forward one request, and what forwarding needs to know about it.
#[derive(Debug)]
pub struct Permit {
    /// Sent upstream as `X-Request-ID` and `Audit-ID`.
    request_id: HeaderValue,
    agent: Arc<str>,
    lane: Lane,
    /// Who approved it; empty when policy allowed it outright.
    approvers: Vec<String>,
}

/// Which way a request goes upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// A request that ends: shares connections with the others like it.
    Short,
    /// A response that streams for as long as the agent wants (a watch, a log), kept apart
    /// so that open streams never make short requests wait.
    Stream,
    /// A connection upgrade (exec, attach, port-forward): HTTP/1.1, spliced once accepted.
    Upgrade,
}

/// A request policy escalated: the permit it gets once approved, sealed until then, and the
/// sentence the agent's log line gets while it waits.
#[derive(Debug)]
pub struct Escalation {
    permit: Permit,
    message: String,
}

impl Permit {
    pub(super) fn new(request_id: HeaderValue, agent: Arc<str>, info: &RequestInfo) -> Permit {
        let lane = if info.upgrade {
            Lane::Upgrade
        } else if info.is_long_lived() {
            Lane::Stream
        } else {
            Lane::Short
        };
        Permit {
            request_id,
            agent,
            lane,
            approvers: Vec::new(),
        }
    }

    pub fn request_id(&self) -> &HeaderValue {
        &self.request_id
    }

    pub fn agent(&self) -> &str {
        &self.agent
    }

    pub fn lane(&self) -> Lane {
        self.lane
    }

    /// Everyone who approved this request, in order; empty if policy allowed it.
    pub fn approvers(&self) -> &[String] {
        &self.approvers
    }
}

impl Escalation {
    pub(super) fn new(permit: Permit, message: String) -> Escalation {
        Escalation { permit, message }
    }

    /// "sluice: tier 2 (patch of deployments) requires human approval for agent …"
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The permit, granted by `approvers`. Only [`crate::approval`] calls this, once the
    /// request's quorum has approved it.
    pub fn grant(self, approvers: Vec<String>) -> Permit {
        Permit {
            approvers,
            ..self.permit
        }
    }
}
