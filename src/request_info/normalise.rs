//! Turning the raw path and query into what kube-apiserver will act on, or refusing.
//!
//! Go's `net/http` hands kube-apiserver a percent-*decoded* `URL.Path`, and `RequestInfo`
//! splits that on `/` after trimming slashes at both ends. sluice decodes the same way and
//! refuses every form whose meaning differs between the apiserver's filters and its router
//! (or that no client sends honestly): encoded slashes, dot segments, empty segments,
//! double encoding, control characters, duplicated `watch` / `dryRun`, and `;` in the query.

use super::{Parts, RequestInfoError};

/// Whether any byte of `bytes` is one `test` picks: 16 bytes at a time with no branch inside
/// a block, which compiles to vector instructions (a plain `any` or a `bool` fold does not).
/// The tail is the last 16 bytes again, overlapping what was already looked at.
fn any_byte(bytes: &[u8], test: impl Fn(u8) -> bool) -> bool {
    let hit = |block: &[u8; 16]| {
        block
            .iter()
            .fold(0u8, |hit, &byte| hit | u8::from(test(byte)))
            != 0
    };
    let (blocks, tail) = bytes.as_chunks::<16>();
    if blocks.iter().any(hit) {
        return true;
    }
    match bytes.last_chunk::<16>() {
        Some(last) if !tail.is_empty() => hit(last),
        Some(_) => false,
        None => bytes.iter().any(|&byte| test(byte)),
    }
}

/// Whether `byte` sends a path to the general [`normalise_path`]: `%` (something to decode),
/// a control character or an uppercase letter (something to refuse). No short-circuits, so
/// [`any_byte`] can test 16 at once.
fn needs_general_path(byte: u8) -> bool {
    (byte == b'%') | (byte < 0x20) | (byte == 0x7f) | (byte.wrapping_sub(b'A') < 26)
}

/// The path as the common case normalises it: `raw` less one trailing slash, if `raw` starts
/// with `/` and holds nothing to decode, no control character and no uppercase letter. The
/// segments are checked next ([`Parts::split_clean`]); `None` (or a failed check) sends the
/// path to [`normalise_path`], which decides every other path, and words every refusal,
/// exactly as before.
pub(super) fn clean_path(raw: &str) -> Option<&str> {
    let path = match raw.as_bytes() {
        b"/" => raw,
        [b'/', .., b'/'] => raw.get(..raw.len() - 1)?,
        [b'/', ..] => raw,
        _ => return None,
    };
    (!any_byte(path.as_bytes(), needs_general_path)).then_some(path)
}

impl Parts<'_> {
    /// Splits a path from [`clean_path`] or [`normalise_path`]; false (→ the general path)
    /// if there is no path or a segment is empty or a dot segment (never, for a normalised
    /// path).
    ///
    /// Eight bytes at a time: a word's slashes are found with a few arithmetic instructions
    /// ([`slash_bytes`]) and visited one set bit at a time, so the cost follows the number
    /// of segments rather than of bytes (a byte loop spent ~450 instructions on a 40-byte
    /// path).
    pub(super) fn split_clean(&mut self) -> bool {
        let bytes = self.path.as_bytes();
        match bytes {
            b"" => return false,
            b"/" => return true,
            _ => {}
        }
        // Both callers hand over a path that starts with `/`: segments start after it.
        let mut start = 1;
        let (words, tail) = bytes.as_chunks::<8>();
        // The tail: the last eight bytes read again, less those already looked at, or (a
        // path under eight bytes) the bytes one by one.
        let tail_word = match bytes.last_chunk::<8>() {
            Some(last) if !tail.is_empty() => u64::from_le_bytes(*last) >> (64 - 8 * tail.len()),
            Some(_) => 0,
            None => tail
                .iter()
                .rev()
                .fold(0u64, |word, &byte| word << 8 | u64::from(byte)),
        };
        let words = words.iter().map(|word| u64::from_le_bytes(*word));
        for (index, word) in words.chain(std::iter::once(tail_word)).enumerate() {
            let mut slashes = slash_bytes(word);
            while slashes != 0 {
                let at = index * 8 + (slashes.trailing_zeros() / 8) as usize;
                slashes &= slashes - 1;
                if at == 0 {
                    continue;
                }
                if is_empty_or_dots(&bytes[start..at]) {
                    return false;
                }
                self.push(start, at);
                start = at + 1;
            }
        }
        if is_empty_or_dots(&bytes[start..]) {
            return false;
        }
        self.push(start, bytes.len());
        true
    }
}

/// The bytes of `word` that are `/`: 0x80 in each such byte, 0 elsewhere (exact: no carry
/// crosses a byte, so no byte is marked for a neighbour's sake).
fn slash_bytes(word: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let zero_where_slash = word ^ 0x2f2f_2f2f_2f2f_2f2f;
    // Bit 7 of a byte ends up set unless the byte is zero.
    !(((zero_where_slash & LOW7) + LOW7) | zero_where_slash | LOW7)
}

fn is_empty_or_dots(segment: &[u8]) -> bool {
    matches!(segment, b"" | b"." | b"..")
}

/// Decodes and checks `raw` (the path as sent). Returns the normalised path: `/`, then the
/// decoded segments joined by `/`, with one trailing slash dropped (as `RequestInfo` does).
pub(super) fn normalise_path(raw: &str) -> Result<String, RequestInfoError> {
    let Some(rest) = raw.strip_prefix('/') else {
        if raw.is_empty() {
            return Ok("/".to_owned());
        }
        return Err(refuse("path must start with /"));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let mut out = String::with_capacity(raw.len());
    if rest.is_empty() {
        out.push('/');
        return Ok(out);
    }
    if !needs_decoding(rest)? {
        // Nothing to decode: the segments are checked, copy the path in one go.
        out.push('/');
        out.push_str(rest);
        return Ok(out);
    }
    for segment in split_ascii(rest, b'/') {
        out.push('/');
        let start = out.len();
        if segment.contains('%') {
            decode_segment(segment, &mut out)?;
        } else {
            check_chars(segment)?;
            out.push_str(segment);
        }
        check_segment(&out.as_bytes()[start..])?;
    }
    Ok(out)
}

/// One pass over `rest`: whether it has anything to decode (`%`, or a control character for
/// the slow path to refuse). When it has not, its segments have been checked on the way;
/// when it has, the segments before the first such byte have been checked just as the slow
/// path would check them, so the first refusal is the same either way.
fn needs_decoding(rest: &str) -> Result<bool, RequestInfoError> {
    let bytes = rest.as_bytes();
    let mut start = 0;
    for (at, &byte) in bytes.iter().enumerate() {
        if byte == b'/' {
            check_segment(&bytes[start..at])?;
            start = at + 1;
        } else if byte == b'%' || byte.is_ascii_control() {
            return Ok(true);
        }
    }
    check_segment(&bytes[start..])?;
    Ok(false)
}

/// Refuses empty and dot segments (after decoding).
fn check_segment(segment: &[u8]) -> Result<(), RequestInfoError> {
    match segment {
        b"" => Err(refuse("path contains an empty segment (//)")),
        b"." | b".." => Err(refuse("path contains a dot segment (. or ..)")),
        _ => Ok(()),
    }
}

/// What sluice reads from the query string.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct QueryFlags {
    /// `Some(true)` for `watch` with any value but `0` / `false`; absent → `None`.
    pub watch: Option<bool>,
    /// Exactly `dryRun=All`.
    pub dry_run_all: bool,
}

/// Reads `watch` and `dryRun` from `query`, decoding keys and values as Go's
/// `url.ParseQuery` does. A duplicated `watch` or `dryRun` is refused: the apiserver reads
/// the first value in one place and all of them in another.
pub(super) fn scan_query(query: Option<&str>) -> Result<QueryFlags, RequestInfoError> {
    let mut flags = QueryFlags::default();
    let Some(query) = query else {
        return Ok(flags);
    };
    let mut seen = Seen::default();
    // The common case: nothing to decode and no `;`, so every key and value is as sent.
    if !any_byte(query.as_bytes(), |b| {
        (b == b';') | (b == b'%') | (b == b'+')
    }) {
        for pair in split_ascii(query, b'&') {
            let (key, value) = split_pair(pair);
            flags.read(key, value, &mut seen)?;
        }
        return Ok(flags);
    }
    if query.as_bytes().contains(&b';') {
        return Err(refuse("query contains ';', which Go ignores"));
    }
    let mut key_buf = String::new();
    let mut value_buf = String::new();
    for pair in split_ascii(query, b'&').filter(|pair| !pair.is_empty()) {
        let (raw_key, raw_value) = split_pair(pair);
        let key = decode_query_part(raw_key, &mut key_buf)?;
        // The value is decoded whatever the key: Go drops a pair it cannot decode.
        let value = decode_query_part(raw_value, &mut value_buf)?;
        flags.read(key, value, &mut seen)?;
    }
    Ok(flags)
}

/// Whether `watch` and `dryRun` have been seen.
#[derive(Default)]
struct Seen {
    watch: bool,
    dry_run: bool,
}

impl QueryFlags {
    /// Takes one decoded query parameter into account.
    fn read(&mut self, key: &str, value: &str, seen: &mut Seen) -> Result<(), RequestInfoError> {
        let (seen, name) = match key {
            "watch" => (&mut seen.watch, "watch"),
            "dryRun" => (&mut seen.dry_run, "dryRun"),
            _ => return Ok(()),
        };
        if std::mem::replace(seen, true) {
            return Err(RequestInfoError(format!(
                "sluice: query parameter {name} is given more than once; refused"
            )));
        }
        if name == "watch" {
            let off = value == "0" || value.eq_ignore_ascii_case("false");
            self.watch = Some(!off);
        } else {
            self.dry_run_all = value == "All";
        }
        Ok(())
    }
}

/// `key=value` → (key, value); a pair without `=` is a key with an empty value.
fn split_pair(pair: &str) -> (&str, &str) {
    // A byte loop: for these few bytes, cheaper than the `char` searcher's call.
    match pair.bytes().position(|b| b == b'=') {
        Some(eq) => (&pair[..eq], &pair[eq + 1..]),
        None => (pair, ""),
    }
}

/// Splits `text` at an ASCII `separator` with a plain byte loop (cheaper than a `char`
/// pattern for the short strings of a request line).
fn split_ascii(text: &str, separator: u8) -> impl Iterator<Item = &str> {
    let mut start = 0;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let rest = &text.as_bytes()[start..];
        match rest.iter().position(|&b| b == separator) {
            Some(offset) => {
                // Splitting at an ASCII byte always lands on a char boundary.
                let piece = text.get(start..start + offset)?;
                start += offset + 1;
                Some(piece)
            }
            None => {
                done = true;
                text.get(start..)
            }
        }
    })
}

/// The refusal every disguise gets: what is wrong, then "refused".
fn refuse(what: &str) -> RequestInfoError {
    RequestInfoError(format!("sluice: {what}; refused"))
}

fn decode_segment(segment: &str, out: &mut String) -> Result<(), RequestInfoError> {
    let mut bytes = Vec::with_capacity(segment.len());
    let raw = segment.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        let byte = raw[i];
        if byte != b'%' {
            bytes.push(byte);
            i += 1;
            continue;
        }
        let decoded = raw
            .get(i + 1..i + 3)
            .and_then(hex_pair)
            .ok_or_else(|| refuse("path contains an invalid percent-encoding"))?;
        match decoded {
            b'/' => return Err(refuse("path contains an encoded slash (%2F)")),
            b'%' => return Err(refuse("path contains a double percent-encoding (%25)")),
            _ => bytes.push(decoded),
        }
        i += 3;
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| refuse("path decodes to invalid UTF-8"))?;
    check_chars(text)?;
    out.push_str(text);
    Ok(())
}

fn check_chars(text: &str) -> Result<(), RequestInfoError> {
    if text.bytes().any(|b| b.is_ascii_control()) {
        return Err(refuse("path contains a control character"));
    }
    Ok(())
}

/// Decodes one query key or value (`+` is a space); borrows when there is nothing to decode.
fn decode_query_part<'a>(raw: &'a str, buf: &'a mut String) -> Result<&'a str, RequestInfoError> {
    if !raw.bytes().any(|b| b == b'%' || b == b'+') {
        return Ok(raw);
    }
    let invalid = || refuse("query contains an invalid percent-encoding");
    let mut bytes = Vec::with_capacity(raw.len());
    let src = raw.as_bytes();
    let mut i = 0;
    while i < src.len() {
        match src[i] {
            b'%' => {
                let decoded = src
                    .get(i + 1..i + 3)
                    .and_then(hex_pair)
                    .ok_or_else(invalid)?;
                bytes.push(decoded);
                i += 3;
            }
            b'+' => {
                bytes.push(b' ');
                i += 1;
            }
            other => {
                bytes.push(other);
                i += 1;
            }
        }
    }
    buf.clear();
    buf.push_str(std::str::from_utf8(&bytes).map_err(|_| invalid())?);
    Ok(buf.as_str())
}

fn hex_pair(pair: &[u8]) -> Option<u8> {
    let hi = (pair[0] as char).to_digit(16)?;
    let lo = (pair[1] as char).to_digit(16)?;
    // Two hex digits are at most 0xff, so the narrowing cannot lose bits.
    Some((hi * 16 + lo) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_drops_one_trailing_slash() {
        assert_eq!(
            normalise_path("/api/v1/%73ecrets/").unwrap(),
            "/api/v1/secrets"
        );
        assert_eq!(normalise_path("/").unwrap(), "/");
        assert_eq!(normalise_path("").unwrap(), "/");
    }

    #[test]
    fn refuses_disguises_with_what_is_wrong() {
        for (path, what) in [
            ("/api/v1/namespaces/a%2Fb", "%2F"),
            ("/api/v1/namespaces/a%2fb", "%2F"),
            ("/api//v1", "empty segment"),
            ("/api/v1//", "empty segment"),
            ("/api/./v1", "dot segment"),
            ("/api/x/../v1", "dot segment"),
            ("/api/%2e%2E/v1", "dot segment"),
            ("/api/%zz", "invalid percent"),
            ("/api/%7", "invalid percent"),
            ("/api/%2573ecrets", "double"),
            ("/api/%00", "control"),
            ("/api/%ff", "UTF-8"),
            ("api/v1", "start with /"),
        ] {
            let err = normalise_path(path).unwrap_err().0;
            assert!(err.contains(what), "{path}: {err}");
            assert!(
                err.starts_with("sluice: ") && err.ends_with("refused"),
                "{err}"
            );
        }
    }

    #[test]
    fn slash_bytes_marks_exactly_the_slashes() {
        for byte in 0..=255u8 {
            for at in 0..8 {
                let mut word = [b'a'; 8];
                word[at] = byte;
                let expected = if byte == b'/' { 0x80 << (8 * at) } else { 0 };
                assert_eq!(
                    slash_bytes(u64::from_le_bytes(word)),
                    expected,
                    "{byte} at {at}"
                );
            }
        }
        assert_eq!(
            slash_bytes(u64::from_le_bytes(*b"//.\x000a//")),
            0x8080_0000_0000_8080
        );
    }

    #[test]
    fn any_byte_looks_at_every_byte_of_every_length() {
        for len in 0..50 {
            let clean = vec![b'a'; len];
            assert!(!any_byte(&clean, |b| b == b'%'), "{len}");
            for at in 0..len {
                let mut dirty = clean.clone();
                dirty[at] = b'%';
                assert!(any_byte(&dirty, |b| b == b'%'), "{len} {at}");
            }
        }
    }

    #[test]
    fn query_flags_follow_go() {
        let scan = |q: &str| scan_query(Some(q));
        assert_eq!(scan("watch=true").unwrap().watch, Some(true));
        assert_eq!(scan("watch=1").unwrap().watch, Some(true));
        assert_eq!(scan("watch=FALSE").unwrap().watch, Some(false));
        assert_eq!(scan("watch=0").unwrap().watch, Some(false));
        assert_eq!(scan("limit=500").unwrap().watch, None);
        assert!(scan("dryRun=All").unwrap().dry_run_all);
        assert!(scan("dry%52un=%41ll").unwrap().dry_run_all);
        assert!(!scan("dryRun=all").unwrap().dry_run_all);
        assert!(!scan("dryrun=All").unwrap().dry_run_all);
        assert!(!scan("dryRun=All+").unwrap().dry_run_all);
        assert!(scan("dryRun=All&dryRun=All").is_err());
        assert!(scan("watch=1&w%61tch=0").is_err());
        assert!(scan("watch=1;dryRun=All").is_err());
        assert!(scan("labelSelector=%zz").is_err());
        assert!(scan("command=sh&command=-c").is_ok());
        assert_eq!(scan("a=1&&=&watch=0").unwrap().watch, Some(false));
        assert_eq!(scan("w%61tch=tru%65").unwrap().watch, Some(true));
        assert!(scan("x=%zz;").unwrap_err().0.contains("';'"));
        assert!(scan("a+b=%zz").is_err());
        assert!(scan("a=b+c").is_ok());
    }
}
