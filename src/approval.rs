//! Escalated requests held open until approved, denied, expired or abandoned.
//! (Skeleton: the approvals work fills this in.)

/// Proof that a held request was granted by its quorum; only this module makes one.
#[derive(Debug)]
pub struct Approved {
    _private: (),
}
