//! Checking one line of the log without parsing it as a whole: the shape of its first and
//! last members is fixed (`{"seq":N,"timestamp":"…"` … `,"prev_hash":"<64>","hash":"<64>"}`),
//! so seq, prev_hash and hash are read at known places and the hash is recomputed over the
//! exact bytes on disk. Used by `verify` and by the writer when it resumes a log.

use super::line::{HASH_KEY, HexHash, hash_line};

const SEQ_KEY: &[u8] = b"{\"seq\":";
const TIMESTAMP_KEY: &[u8] = b",\"timestamp\":\"";
const PREV_KEY: &[u8] = b",\"prev_hash\":\"";
/// `,"hash":"` + 64 hex + `"}`.
const HASH_TAIL: usize = HASH_KEY.len() + 64 + 2;
/// `,"prev_hash":"` + 64 hex + `"`.
const PREV_TAIL: usize = PREV_KEY.len() + 64 + 1;

/// What a well-formed line says about its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineFacts<'a> {
    pub seq: u64,
    pub timestamp: &'a [u8],
    pub prev_hash: HexHash,
    pub hash: HexHash,
}

/// Why one line, on its own, is not a line sluice wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineProblem {
    /// Not the JSON object shape the writer produces; says which part.
    Malformed(&'static str),
    /// Well formed, but `hash` is not the SHA-256 of the line's bytes.
    HashMismatch(Box<HashMismatch>),
}

/// The hash a line states and the one its bytes have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashMismatch {
    pub seq: u64,
    pub stated: HexHash,
    pub computed: HexHash,
}

/// Checks `line` (without its newline): shape, then the hash over its bytes.
pub fn check_line(line: &[u8]) -> Result<LineFacts<'_>, LineProblem> {
    let facts = read_shape(line)?;
    let computed = hash_line(&line[..line.len() - HASH_TAIL]);
    if computed != facts.hash {
        return Err(LineProblem::HashMismatch(Box::new(HashMismatch {
            seq: facts.seq,
            stated: facts.hash,
            computed,
        })));
    }
    Ok(facts)
}

/// The cheap structural checks: fixed prefix and suffix, UTF-8, no raw control characters.
///
/// This is not a full JSON parse, and need not be for soundness: a line that passes these
/// checks and whose hash matches is byte-for-byte a line the writer produced (or one forged
/// by someone able to rewrite the whole chain, which no per-line check can catch).
fn read_shape(line: &[u8]) -> Result<LineFacts<'_>, LineProblem> {
    use LineProblem::Malformed;
    if line.len() < SEQ_KEY.len() + TIMESTAMP_KEY.len() + PREV_TAIL + HASH_TAIL + 2 {
        return Err(Malformed("line too short to be an audit event"));
    }
    // Lines are nearly always plain ASCII: one pass proves that, and only a line that is
    // not gets the two separate checks.
    if !is_plain_ascii(line) {
        if has_control_byte(line) {
            return Err(Malformed("raw control character inside the line"));
        }
        if std::str::from_utf8(line).is_err() {
            return Err(Malformed("not UTF-8"));
        }
    }
    let rest = line
        .strip_prefix(SEQ_KEY)
        .ok_or(Malformed("does not start with {\"seq\":"))?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let seq = parse_seq(&rest[..digits]).ok_or(Malformed("seq is not a positive integer"))?;
    let rest = rest[digits..]
        .strip_prefix(TIMESTAMP_KEY)
        .ok_or(Malformed("timestamp does not follow seq"))?;
    let end = rest
        .iter()
        .position(|&b| b == b'"')
        .ok_or(Malformed("timestamp is not a string"))?;
    let timestamp = &rest[..end];

    let n = line.len();
    if !line.ends_with(b"\"}") {
        return Err(Malformed("does not end with \"}"));
    }
    let hash_at = n - HASH_TAIL;
    if &line[hash_at..hash_at + HASH_KEY.len()] != HASH_KEY {
        return Err(Malformed("hash is not the last member"));
    }
    let hash = read_hex(&line[hash_at + HASH_KEY.len()..n - 2])
        .ok_or(Malformed("hash is not 64 lowercase hex digits"))?;
    let prev_at = hash_at - PREV_TAIL;
    if &line[prev_at..prev_at + PREV_KEY.len()] != PREV_KEY || line[hash_at - 1] != b'"' {
        return Err(Malformed("prev_hash does not come right before hash"));
    }
    let prev_hash = read_hex(&line[prev_at + PREV_KEY.len()..hash_at - 1])
        .ok_or(Malformed("prev_hash is not 64 lowercase hex digits"))?;
    if prev_at < SEQ_KEY.len() + digits + TIMESTAMP_KEY.len() + end {
        return Err(Malformed("line too short to be an audit event"));
    }
    Ok(LineFacts {
        seq,
        timestamp,
        prev_hash,
        hash,
    })
}

/// No control character and no byte ≥ 0x80 (as `i8` both are below 0x20). Branch-free per
/// 64-byte chunk so it vectorises: this runs over every byte verified.
fn is_plain_ascii(line: &[u8]) -> bool {
    let mut chunks = line.chunks_exact(64);
    let other = chunks
        .by_ref()
        .any(|c| c.iter().fold(false, |acc, &b| acc | ((b as i8) < 0x20)));
    !other && !chunks.remainder().iter().any(|&b| (b as i8) < 0x20)
}

fn has_control_byte(line: &[u8]) -> bool {
    let mut chunks = line.chunks_exact(64);
    let found = chunks
        .by_ref()
        .any(|c| c.iter().fold(false, |acc, &b| acc | (b < 0x20)));
    found || chunks.remainder().iter().any(|&b| b < 0x20)
}

fn parse_seq(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || digits[0] == b'0' {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

fn read_hex(s: &[u8]) -> Option<HexHash> {
    let hex: HexHash = s.try_into().ok()?;
    hex.iter()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        .then_some(hex)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::line::{ChainHead, encode};
    use crate::audit::{AuditEvent, Stage};

    fn one_line() -> (Vec<u8>, ChainHead) {
        let mut out = Vec::new();
        let mut e = AuditEvent::new(Stage::Decision);
        e.agent = Some("claude-code".into());
        let head = encode(&e, &ChainHead::GENESIS, &mut out);
        out.pop();
        (out, head)
    }

    #[test]
    fn accepts_what_the_writer_wrote() {
        let (line, head) = one_line();
        let facts = check_line(&line).unwrap();
        assert_eq!(facts.seq, 1);
        assert_eq!(facts.hash, head.hash);
        assert_eq!(facts.prev_hash, [b'0'; 64]);
        assert_eq!(facts.timestamp.len(), 27);
    }

    #[test]
    fn edited_field_is_a_hash_mismatch() {
        let (line, _) = one_line();
        let text = String::from_utf8(line)
            .unwrap()
            .replace("claude-code", "claude-cod3");
        assert!(matches!(
            check_line(text.as_bytes()),
            Err(LineProblem::HashMismatch(_))
        ));
    }

    #[test]
    fn shape_errors_are_malformed() {
        let (line, _) = one_line();
        let text = String::from_utf8(line).unwrap();
        let cases = [
            text.replacen("{\"seq\":1", "{\"seq\":01", 1),
            text.replacen("{\"seq\":1", "{\"seq\":x", 1),
            text.replacen("{\"seq\"", "{ \"seq\"", 1),
            format!("{text} "),
            text[..text.len() - 1].to_string(),
            text.replace("\"hash\":\"", "\"hash\": \""),
            text.replace("claude", "clau\tde"),
            "{}".to_string(),
            String::new(),
        ];
        for case in cases {
            assert!(
                matches!(check_line(case.as_bytes()), Err(LineProblem::Malformed(_))),
                "{case}"
            );
        }
        let mut upper = text.into_bytes();
        let n = upper.len();
        upper[n - 3] = b'A';
        assert!(matches!(check_line(&upper), Err(LineProblem::Malformed(_))));
    }
}
