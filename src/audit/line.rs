//! One audit line: an event's JSON object framed with `seq` and `timestamp` in front and
//! `prev_hash` and `hash` behind, then a newline. This is the only place a line is put
//! together; the event's own members are whatever `AuditEvent::to_json` wrote.
//!
//! The bytes hashed are exactly the bytes written: the hash covers the line up to (not
//! including) `,"hash":"`, followed by `}`. `verify` checks those same bytes and never
//! re-serialises anything.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

/// Lowercase hex SHA-256, as it appears in `prev_hash` and `hash`.
pub type HexHash = [u8; 64];

/// `prev_hash` of the very first line of a new log.
pub const ZERO_HASH: HexHash = [b'0'; 64];

/// What separates the hashed part of a line from its hash.
pub const HASH_KEY: &[u8] = b",\"hash\":\"";

/// The chain position a line is written at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    /// seq of the last line written (0 before the first).
    pub seq: u64,
    /// hash of the last line written (zeros before the first).
    pub hash: HexHash,
}

impl ChainHead {
    pub const GENESIS: ChainHead = ChainHead {
        seq: 0,
        hash: ZERO_HASH,
    };
}

/// Appends one complete line (with trailing newline) to `out`: `event`, a JSON object as
/// `AuditEvent::to_json` writes it, chained after `head` and stamped `now`. Returns the
/// new head.
pub fn frame(event: &[u8], head: &ChainHead, now: SystemTime, out: &mut Vec<u8>) -> ChainHead {
    // The event's members, without its braces; never empty, as `stage` is always there.
    let members = event
        .strip_prefix(b"{")
        .and_then(|rest| rest.strip_suffix(b"}"))
        .unwrap_or(event);
    let start = out.len();
    let seq = head.seq + 1;
    // Cannot fail: a `Vec` takes every write, and `now` is clamped into humantime's range.
    let _ = write!(out, "{{\"seq\":{seq},\"timestamp\":\"{}\",", rfc3339(now));
    out.extend_from_slice(members);
    out.extend_from_slice(b",\"prev_hash\":\"");
    out.extend_from_slice(&head.hash);
    out.push(b'"');
    let hash = hash_line(&out[start..]);
    out.extend_from_slice(HASH_KEY);
    out.extend_from_slice(&hash);
    out.extend_from_slice(b"\"}\n");
    ChainHead { seq, hash }
}

/// `t` as RFC 3339 in UTC with microseconds (`2026-11-22T07:16:37.123456Z`). A clock
/// before 1970 is written as the epoch, one past the year 9999 as its last second.
pub fn rfc3339(t: SystemTime) -> humantime::Rfc3339Timestamp {
    let last = UNIX_EPOCH + Duration::from_secs(253_402_300_799);
    humantime::format_rfc3339_micros(t.clamp(UNIX_EPOCH, last))
}

/// SHA-256 of `body` followed by `}`, in lowercase hex. `body` is a line up to `,"hash":"`.
pub fn hash_line(body: &[u8]) -> HexHash {
    let mut hasher = Sha256::new();
    hasher.update(body);
    hasher.update(b"}");
    let digest = hasher.finalize();
    let mut hex = ZERO_HASH;
    // Cannot fail: 32 bytes always fit 64 hex digits.
    let _ = hex::encode_to_slice(digest, &mut hex);
    hex
}

/// `event` as the line after `head`, stamped now (for tests that forge logs).
#[cfg(test)]
pub(crate) fn encode(
    event: &super::AuditEvent<'_>,
    head: &ChainHead,
    out: &mut Vec<u8>,
) -> ChainHead {
    frame(&event.to_json(), head, SystemTime::now(), out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditEvent, Stage};

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_000_000)
    }

    fn line(event: &AuditEvent<'_>) -> (String, ChainHead) {
        let mut out = Vec::new();
        let head = frame(&event.to_json(), &ChainHead::GENESIS, now(), &mut out);
        (String::from_utf8(out).unwrap(), head)
    }

    #[test]
    fn keys_in_contract_order_with_nulls() {
        let (text, head) = line(&AuditEvent::new(Stage::Start));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        let expected = "seq timestamp stage request_id agent auth source_ip user_agent method \
            path verb api_group api_version namespace resource subresource name tier decision \
            reason rule approved_by approval_latency_ms status latency_us bytes prev_hash hash";
        // serde_json's map sorts keys, so compare the raw order instead.
        let mut at = 0;
        for k in expected.split_whitespace() {
            let pos = text[at..].find(&format!("\"{k}\":")).unwrap() + at;
            at = pos + 1;
        }
        assert_eq!(keys.len(), expected.split_whitespace().count());
        assert_eq!(v["seq"], 1);
        assert_eq!(v["agent"], serde_json::Value::Null);
        assert_eq!(v["timestamp"], "2026-11-18T11:06:40.000000Z");
        assert_eq!(v["prev_hash"], "0".repeat(64));
        assert_eq!(v["hash"], std::str::from_utf8(&head.hash).unwrap());
        assert!(text.ends_with("\"}\n"));
    }

    #[test]
    fn hash_covers_the_bytes_before_hash_key_plus_brace() {
        let (text, head) = line(&AuditEvent::new(Stage::Decision));
        let cut = text.rfind(",\"hash\":\"").unwrap();
        let mut hashed = text.as_bytes()[..cut].to_vec();
        hashed.push(b'}');
        let digest = hex::encode(Sha256::digest(&hashed));
        assert_eq!(digest.as_bytes(), &head.hash);
        assert_eq!(hash_line(&text.as_bytes()[..cut]), head.hash);
    }

    #[test]
    fn escapes_round_trip_through_a_json_parser() {
        let mut e = AuditEvent::new(Stage::Decision);
        let nasty = "q\"b\\s\n\r\t\u{1}\u{1f} ünï 🚀 </script>";
        e.user_agent = Some(nasty.into());
        e.approved_by = Some(vec!["alice".into(), "b\"ob".into()].into());
        e.tier = Some(3);
        e.status = Some(503);
        e.details = vec![("bytes_dropped", "17".into())];
        let (text, _) = line(&e);
        assert_eq!(
            text.matches('\n').count(),
            1,
            "a line never contains a raw newline"
        );
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["user_agent"], nasty);
        assert_eq!(v["approved_by"], serde_json::json!(["alice", "b\"ob"]));
        assert_eq!(v["tier"], 3);
        assert_eq!(v["bytes_dropped"], "17");
        assert!(text.find("\"bytes\":").unwrap() < text.find("\"bytes_dropped\"").unwrap());
        assert!(text.find("\"bytes_dropped\"").unwrap() < text.find("\"prev_hash\"").unwrap());
    }

    #[test]
    fn chains_seq_and_prev_hash() {
        let mut out = Vec::new();
        let e = AuditEvent::new(Stage::Complete).to_json();
        let h1 = frame(&e, &ChainHead::GENESIS, now(), &mut out);
        let h2 = frame(&e, &h1, now(), &mut out);
        assert_eq!(h2.seq, 2);
        let second = std::str::from_utf8(&out).unwrap().lines().nth(1).unwrap();
        let v: serde_json::Value = serde_json::from_str(second).unwrap();
        assert_eq!(v["prev_hash"], std::str::from_utf8(&h1.hash).unwrap());
        let last = ChainHead {
            seq: u64::MAX - 1,
            hash: h2.hash,
        };
        out.clear();
        frame(&e, &last, now(), &mut out);
        assert!(out.starts_with(b"{\"seq\":18446744073709551615,"));
    }

    fn rfc(secs: u64, micros: u32) -> String {
        let t = UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros.into());
        rfc3339(t).to_string()
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        assert_eq!(rfc(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc(951_782_400, 7), "2000-02-29T00:00:00.000007Z");
        assert_eq!(rfc(1_795_000_000, 999_999), "2026-11-18T11:06:40.999999Z");
        assert_eq!(rfc(4_102_444_799, 0), "2099-12-31T23:59:59.000000Z");
        let before = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(rfc3339(before).to_string(), "1970-01-01T00:00:00.000000Z");
        let after = UNIX_EPOCH + Duration::from_secs(300_000_000_000);
        assert_eq!(rfc3339(after).to_string(), "9999-12-31T23:59:59.000000Z");
    }
}
