//! [`RequestInfo`] → [`Classification`]: a risk tier T0..T4 with a human-readable reason.
//! (Skeleton: the classify/policy work replaces this.)

use std::fmt;

use crate::policy::Policy;
use crate::request_info::RequestInfo;

/// Risk tiers, lowest first; the highest that applies wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Tier {
    T0 = 0,
    T1 = 1,
    T2 = 2,
    T3 = 3,
    T4 = 4,
}

impl Tier {
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_u8())
    }
}

/// A tier and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    pub tier: Tier,
    /// Short and human: "delete of pods", "read of secrets", "exec into a pod".
    pub reason: String,
}

/// Classifies `info` for `agent` (runbooks in `policy` may lower T2 to T1 for that agent).
pub fn classify(info: &RequestInfo, _policy: &Policy, _agent: &str) -> Classification {
    let _ = info;
    Classification {
        tier: Tier::T4,
        reason: "unclassified".into(),
    }
}
