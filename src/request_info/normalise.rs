//! Turning the raw path into what kube-apiserver will act on, or refusing (the query:
//! [`super::query`]).
//!
//! Go's `net/http` hands kube-apiserver a percent-*decoded* `URL.Path`, and `RequestInfo`
//! splits that on `/` after trimming slashes at both ends. sluice decodes the same way and
//! refuses every form whose meaning differs between the apiserver's filters and its router
//! (or that no client sends honestly): encoded slashes, dot segments, empty segments,
//! double encoding and control characters.

use super::{Parts, RequestInfoError, Span};
use crate::bytescan::any_byte;

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
    /// Eight bytes at a time: a word's slashes are marked with a few arithmetic instructions
    /// ([`slash_bytes`]) and visited one mark at a time, so the cost follows the number of
    /// segments rather than of bytes (a byte loop spent ~450 instructions on a 40-byte path).
    /// A segment is only looked at for being empty or starting with a dot; only then (rare:
    /// `.well-known` is a name) is it compared with `.` and `..`.
    pub(super) fn split_clean(&mut self) -> bool {
        let bytes = self.path.as_bytes();
        match bytes {
            b"" => return false,
            b"/" => return true,
            // Spans hold u32 offsets; hyper refuses URIs this long anyway.
            _ if u32::try_from(bytes.len()).is_err() => return false,
            _ => {}
        }
        // The count is kept in a local (a register) while the path is read. The spans are
        // written in place: copying them out of a local array afterwards reads 16 bytes
        // over two 8-byte stores, which stalls until they retire.
        let segments = &mut self.segments;
        let mut len = 0;
        // Both callers hand over a path that starts with `/`: segments start after it.
        let mut start = 1;
        let mut suspect = false;
        let mut end_segment = |at: usize| {
            // The segment's first byte (the `/` that ends it, if it is empty).
            suspect |= (at == start) | (bytes.get(start) == Some(&b'.'));
            if let Some(slot) = segments.get_mut(len) {
                *slot = Span::new(start as u32, at as u32);
                len += 1;
            }
            start = at + 1;
        };
        // Each `/` of a word ends a segment; `word` holds the path's bytes from `base`.
        let mut end_segments = |base: usize, word: u64| {
            let mut slashes = slash_bytes(word);
            while slashes != 0 {
                end_segment(base + (slashes.trailing_zeros() / 8) as usize);
                slashes &= slashes - 1;
            }
        };
        let (words, tail) = bytes.as_chunks::<8>();
        for (index, word) in words.iter().enumerate() {
            // The leading `/` starts the first segment rather than ending one.
            let skip = if index == 0 { 0xff } else { 0 };
            end_segments(index * 8, u64::from_le_bytes(*word) & !skip);
        }
        // The tail: the last eight bytes read again, less those already looked at, or (a
        // path under eight bytes) the bytes one by one, less the leading `/`.
        match bytes.last_chunk::<8>() {
            Some(last) if !tail.is_empty() => {
                let word = u64::from_le_bytes(*last) >> (64 - 8 * tail.len());
                end_segments(words.len() * 8, word);
            }
            Some(_) => {}
            None => end_segments(
                0,
                tail.iter()
                    .rev()
                    .fold(0u64, |word, &byte| word << 8 | u64::from(byte))
                    & !0xff,
            ),
        }
        end_segment(bytes.len());
        self.len = len;
        !suspect || !bytes[1..].split(|&byte| byte == b'/').any(is_empty_or_dots)
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

/// Splits `text` at an ASCII `separator` with a plain byte loop (cheaper than a `char`
/// pattern for the short strings of a request line).
pub(super) fn split_ascii(text: &str, separator: u8) -> impl Iterator<Item = &str> {
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
pub(super) fn refuse(what: &str) -> RequestInfoError {
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

pub(super) fn hex_pair(pair: &[u8]) -> Option<u8> {
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

    /// What `split_clean` must give for `path`: its segments, unless one is empty or a dot
    /// segment.
    fn expected_split(path: &str) -> Option<Vec<&str>> {
        let segments: Vec<&str> = path[1..].split('/').collect();
        let bad = |s: &&str| matches!(*s, "" | "." | "..");
        (path == "/" || !segments.iter().any(bad)).then_some(segments)
    }

    fn check_split(path: &str) {
        let mut parts = Parts::empty(path);
        let clean = parts.split_clean();
        let expected = expected_split(path);
        assert_eq!(clean, expected.is_some(), "{path:?}");
        if let Some(expected) = expected.filter(|_| path != "/") {
            let split: Vec<&str> = (0..parts.len).filter_map(|i| parts.peek(i)).collect();
            let kept = expected.len().min(crate::request_info::MAX_SEGMENTS);
            assert_eq!(split, expected[..kept], "{path:?}");
        }
    }

    /// Every path of `/`, `.` and `a` up to 12 bytes, and every placement of slashes up to
    /// 18 bytes (across two word boundaries), against `str::split`.
    #[test]
    fn split_clean_splits_every_placement_like_str_split() {
        for len in 1..=12u32 {
            for mut code in 0..3u32.pow(len - 1) {
                let mut path = String::from("/");
                for _ in 1..len {
                    path.push(['a', '/', '.'][(code % 3) as usize]);
                    code /= 3;
                }
                check_split(&path);
            }
        }
        for len in 13..=18usize {
            for mask in 0u32..1 << (len - 1) {
                let path: String = std::iter::once('/')
                    .chain((1..len).map(|i| if mask >> (i - 1) & 1 == 1 { '/' } else { 'a' }))
                    .collect();
                check_split(&path);
            }
        }
    }

    /// Longer paths, where a slash or a dot meets another across a word boundary or lands
    /// in the tail: each byte `/`, `.` or `a`, from a fixed pseudo-random sequence.
    #[test]
    fn split_clean_splits_long_paths_like_str_split() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..100_000 {
            let len = 1 + (next() % 70) as usize;
            // Mostly letters, so that some segments are long enough to span words.
            let path: String = std::iter::once('/')
                .chain((1..len).map(|_| match next() % 8 {
                    0 | 1 => '/',
                    2 => '.',
                    _ => 'a',
                }))
                .collect();
            check_split(&path);
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
}
