//! Property tests of the verifier: lines the writer encodes always verify (whatever the
//! agent put in its path, user agent or reason), and no single-byte change to a log — a bit
//! flipped, a byte inserted, a byte deleted, anywhere — is ever accepted.

use std::path::PathBuf;
use std::time::SystemTime;

use proptest::prelude::*;

use super::line::{ChainHead, frame};
use super::verify::{VerifyError, verify_files};
use super::{AuditEvent, Stage};

/// Three chained lines carrying agent-controlled text.
fn log_of(texts: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut head = ChainHead::GENESIS;
    let now = SystemTime::now();
    for (i, text) in texts.iter().enumerate() {
        let mut event = AuditEvent::new(if i % 2 == 0 {
            Stage::Decision
        } else {
            Stage::Complete
        });
        event.request_id = Some(format!("sl_{i}").into());
        event.agent = Some("claude-code".into());
        event.path = Some(text.as_str().into());
        event.user_agent = Some(text.chars().rev().collect::<String>().into());
        event.reason = Some(format!("why: {text}").into());
        event.tier = Some(3);
        event.status = Some(200);
        head = frame(&event.to_json(), &head, now, &mut out);
    }
    out
}

fn verify_bytes(bytes: &[u8]) -> Result<(), VerifyError> {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("audit.jsonl");
    std::fs::write(&path, bytes).unwrap();
    verify_files(&[path]).map(drop)
}

/// Agent-controlled text: quotes, backslashes, control characters, any Unicode.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z/%.]{0,40}",
        "[\"\\\\\\n\\r\\t\\u{0}-\\u{1f}]{0,12}",
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn encoded_logs_verify(texts in proptest::collection::vec(hostile_text(), 3)) {
        let log = log_of(&texts);
        prop_assert!(verify_bytes(&log).is_ok(), "{}", String::from_utf8_lossy(&log));
    }

    #[test]
    fn no_single_byte_change_is_accepted(
        texts in proptest::collection::vec(hostile_text(), 3),
        at in any::<prop::sample::Index>(),
        kind in 0..3u8,
        byte in any::<u8>(),
        bit in 0..8u8,
    ) {
        let mut log = log_of(&texts);
        let i = at.index(log.len());
        match kind {
            0 => log[i] ^= 1 << bit,
            1 => log.insert(i, byte),
            _ => { log.remove(i); }
        }
        let result = verify_bytes(&log);
        prop_assert!(
            matches!(result, Err(VerifyError::Tampered(_))),
            "accepted after change {kind} at {i}: {}",
            String::from_utf8_lossy(&log)
        );
    }
}

#[test]
fn every_position_of_a_log_is_protected() {
    // Over one log: bytes flipped, deleted, or preceded by an extra byte, at every 5th
    // position and at every position near a line boundary (where a lax verifier would slip),
    // and bytes appended after the last line. (Each verify allocates its 8 MiB read block,
    // so every position of every kind would take too long in a debug build.)
    let log = log_of(&[
        "/api/v1/namespaces/d/secrets".into(),
        "\"\\\n".into(),
        "é".into(),
    ]);
    assert!(verify_bytes(&log).is_ok());
    let near_newline =
        |i: usize| log[i.saturating_sub(3)..(i + 4).min(log.len())].contains(&b'\n') || i < 12;
    let mut accepted = Vec::new();
    let mut check = |what: String, bytes: Vec<u8>| {
        if verify_bytes(&bytes).is_ok() {
            accepted.push(what);
        }
    };
    for i in (0..log.len()).filter(|i| i % 5 == 0 || near_newline(*i)) {
        let mut flipped = log.clone();
        flipped[i] ^= 0x20;
        check(format!("flip at {i}"), flipped);
        let mut deleted = log.clone();
        deleted.remove(i);
        check(format!("delete at {i}"), deleted);
        let mut inserted = log.clone();
        inserted.insert(i, b' ');
        check(format!("insert at {i}"), inserted);
    }
    for tail in [&b"\n"[..], b" ", b"{", b"\r\n"] {
        let mut appended = log.clone();
        appended.extend_from_slice(tail);
        check(format!("append {tail:?}"), appended);
    }
    assert!(accepted.is_empty(), "accepted: {accepted:?}");
}
