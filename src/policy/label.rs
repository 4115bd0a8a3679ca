//! Rule labels (`agents.claude-code.rules[0]`), interned: each distinct label is stored once
//! for the life of the process, so a [`super::Decision`] carries a `&'static str` and
//! deciding neither allocates nor touches a shared reference count (two atomic operations on
//! one cache line, from every core, per request).
//!
//! Labels are made only when a policy is compiled. What is kept is bounded by the distinct
//! labels the policies ever held: reloading an unchanged policy adds nothing.

use std::collections::BTreeSet;
use std::sync::Mutex;

static LABELS: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());

/// The one stored copy of `label`.
pub(super) fn intern(label: String) -> &'static str {
    // A panic while the lock was held cannot leave the set half-updated: keep using it.
    let mut labels = LABELS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(&stored) = labels.get(label.as_str()) {
        return stored;
    }
    let stored: &'static str = Box::leak(label.into_boxed_str());
    labels.insert(stored);
    stored
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_is_stored_once() {
        let first = intern(String::from("agents.test-intern.rules[0]"));
        let again = intern(String::from("agents.test-intern.rules[0]"));
        assert_eq!(first, "agents.test-intern.rules[0]");
        assert!(std::ptr::eq(first, again));
        assert!(!std::ptr::eq(
            first,
            intern(String::from("agents.test-intern.rules[1]"))
        ));
    }
}
