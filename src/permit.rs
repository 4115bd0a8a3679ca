//! [`Permit`]: the only key to [`crate::forward`]. It has private fields and no public
//! constructor; it is made only from a policy [`Decision`] whose effective action is allow,
//! or from an approval that quorum granted. A code path that skips policy cannot forward.

use crate::approval::Approved;
use crate::policy::{Action, Decision};

/// Permission to forward one request.
#[derive(Debug)]
pub struct Permit {
    via: Via,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Policy,
    Approval,
}

impl Permit {
    /// A permit for a request that policy allowed (or observe mode lets through).
    pub fn from_decision(decision: &Decision) -> Option<Permit> {
        (decision.effective() == Action::Allow).then_some(Permit { via: Via::Policy })
    }

    /// A permit for a held request that its approvers granted.
    pub fn from_approval(_approved: Approved) -> Permit {
        Permit { via: Via::Approval }
    }

    /// Whether a human approved this request (rather than policy allowing it outright).
    pub fn was_approved(&self) -> bool {
        self.via == Via::Approval
    }
}
