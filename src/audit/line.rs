//! One audit line: the event's JSON written straight into the writer's buffer, in the
//! field order of DESIGN.md, then hashed and closed with `,"hash":"<hex>"}` and a newline.
//!
//! The bytes hashed are exactly the bytes written: the hash covers the line up to (not
//! including) `,"hash":"`, followed by `}`. `verify` checks those same bytes and never
//! re-serialises anything.

use sha2::{Digest, Sha256};

use super::event::{AuditEvent, Encoded, EventFields, Stage};
use super::timestamp::Utc;
use crate::bytescan::any_byte;

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

/// What a line is made from: a stage and the fields after it.
pub trait LineEvent {
    fn stage(&self) -> Stage;
    /// Appends `,"request_id":…` and the rest of the fields to `out`.
    fn write_fields(&self, out: &mut Vec<u8>);
}

impl LineEvent for Encoded {
    fn stage(&self) -> Stage {
        self.stage
    }
    fn write_fields(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.fields);
    }
}

impl LineEvent for AuditEvent {
    fn stage(&self) -> Stage {
        self.stage
    }
    fn write_fields(&self, out: &mut Vec<u8>) {
        write_fields(&self.fields(), out);
    }
}

/// Appends `event` as one complete line (with trailing newline) to `out`, chained after
/// `head`, and returns the new head.
pub fn encode(event: &impl LineEvent, head: &ChainHead, now: &Utc, out: &mut Vec<u8>) -> ChainHead {
    let start = out.len();
    let seq = head.seq + 1;
    out.extend_from_slice(b"{\"seq\":");
    push_u64(out, seq);
    out.extend_from_slice(b",\"timestamp\":\"");
    now.write_rfc3339(out);
    out.extend_from_slice(b"\",\"stage\":\"");
    out.extend_from_slice(event.stage().as_str().as_bytes());
    out.push(b'"');
    event.write_fields(out);
    out.extend_from_slice(b",\"prev_hash\":\"");
    out.extend_from_slice(&head.hash);
    out.push(b'"');
    let hash = hash_line(&out[start..]);
    out.extend_from_slice(HASH_KEY);
    out.extend_from_slice(&hash);
    out.extend_from_slice(b"\"}\n");
    ChainHead { seq, hash }
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

/// `,"name":`, the bytes before a field's value, put together at compile time: with
/// [`opt_str`] inlined, each key is a fixed-size copy rather than three calls.
macro_rules! key {
    ($name:literal) => {
        concat!(",\"", $name, "\":").as_bytes()
    };
}

/// Writes `e` as `,"request_id":…` … `,"bytes":…` and then its details, in the contract's
/// order; the one place that order is written down.
pub(super) fn write_fields(e: &EventFields<'_>, out: &mut Vec<u8>) {
    opt_str(out, key!("request_id"), e.request_id);
    opt_str(out, key!("agent"), e.agent);
    opt_str(out, key!("auth"), e.auth);
    opt_str(out, key!("source_ip"), e.source_ip);
    opt_str(out, key!("user_agent"), e.user_agent);
    opt_str(out, key!("method"), e.method);
    opt_str(out, key!("path"), e.path);
    opt_str(out, key!("verb"), e.verb);
    opt_str(out, key!("api_group"), e.api_group);
    opt_str(out, key!("api_version"), e.api_version);
    opt_str(out, key!("namespace"), e.namespace);
    opt_str(out, key!("resource"), e.resource);
    opt_str(out, key!("subresource"), e.subresource);
    opt_str(out, key!("name"), e.name);
    opt_u64(out, key!("tier"), e.tier.map(u64::from));
    opt_str(out, key!("decision"), e.decision);
    opt_str(out, key!("reason"), e.reason);
    opt_str(out, key!("rule"), e.rule);
    out.extend_from_slice(key!("approved_by"));
    match e.approved_by {
        None => out.extend_from_slice(b"null"),
        Some(names) => {
            out.push(b'[');
            for (i, name) in names.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_str(out, name);
            }
            out.push(b']');
        }
    }
    opt_u64(out, key!("approval_latency_ms"), e.approval_latency_ms);
    opt_u64(out, key!("status"), e.status.map(u64::from));
    opt_u64(out, key!("latency_us"), e.latency_us);
    opt_u64(out, key!("bytes"), e.bytes);
    for (key, value) in e.details {
        out.push(b',');
        push_str(out, key);
        out.push(b':');
        push_str(out, value);
    }
}

/// `key` (from [`key!`]), then the value as a JSON string or `null`.
#[inline(always)]
fn opt_str(out: &mut Vec<u8>, key: &[u8], value: Option<&str>) {
    out.extend_from_slice(key);
    match value {
        Some(v) => push_str(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

#[inline(always)]
fn opt_u64(out: &mut Vec<u8>, key: &[u8], value: Option<u64>) {
    out.extend_from_slice(key);
    match value {
        Some(v) => push_u64(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Appends `s` as a JSON string: quotes, backslashes and control characters escaped,
/// everything else (including non-ASCII UTF-8) copied as is, in runs.
fn push_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // Nearly every value needs no escape: find that out 16 bytes at a time and copy it
    // whole; this runs for every string of every event.
    let plain = !any_byte(bytes, |b| (b < 0x20) | (b == b'"') | (b == b'\\'));
    if plain {
        out.extend_from_slice(bytes);
    } else {
        push_escaped(out, bytes);
    }
    out.push(b'"');
}

fn push_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(&bytes[run..i]);
        run = i + 1;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]),
        }
    }
    out.extend_from_slice(&bytes[run..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn now() -> Utc {
        Utc::from_system(UNIX_EPOCH + Duration::from_secs(1_795_000_000))
    }

    fn line(event: &AuditEvent) -> (String, ChainHead) {
        let mut out = Vec::new();
        let head = encode(event, &ChainHead::GENESIS, &now(), &mut out);
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
        e.approved_by = Some(vec!["alice".into(), "b\"ob".into()]);
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
        let e = Encoded::from(AuditEvent::new(Stage::Complete));
        assert_eq!(
            line(&AuditEvent::new(Stage::Complete)).0.len(),
            {
                let mut one = Vec::new();
                encode(&e, &ChainHead::GENESIS, &now(), &mut one);
                one.len()
            },
            "an event and its encoded form make the same line"
        );
        let h1 = encode(&e, &ChainHead::GENESIS, &now(), &mut out);
        let h2 = encode(&e, &h1, &now(), &mut out);
        assert_eq!(h2.seq, 2);
        let second = std::str::from_utf8(&out).unwrap().lines().nth(1).unwrap();
        let v: serde_json::Value = serde_json::from_str(second).unwrap();
        assert_eq!(v["prev_hash"], std::str::from_utf8(&h1.hash).unwrap());
        push_u64(&mut out, u64::MAX);
        assert!(out.ends_with(b"18446744073709551615"));
    }
}
