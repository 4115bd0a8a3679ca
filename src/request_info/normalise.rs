//! Turning the raw path and query into what kube-apiserver will act on, or refusing.
//!
//! Go's `net/http` hands kube-apiserver a percent-*decoded* `URL.Path`, and `RequestInfo`
//! splits that on `/` after trimming slashes at both ends. sluice decodes the same way and
//! refuses every form whose meaning differs between the apiserver's filters and its router
//! (or that no client sends honestly): encoded slashes, dot segments, empty segments,
//! double encoding, control characters, duplicated `watch` / `dryRun`, and `;` in the query.

use super::RequestInfoError;

/// The most segments a resource path is read for: `apis/{group}/{version}/watch/namespaces/
/// {ns}/{resource}/{name}/{subresource}`; anything after is the subresource's own business.
pub(super) const MAX_SEGMENTS: usize = 9;

/// Where the first [`MAX_SEGMENTS`] segments of a normalised path lie, recorded while the
/// path is checked so that nothing reads the path again to split it or to check its case.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Segments {
    /// Byte ranges into the normalised path (which starts with `/`).
    bounds: [(u32, u32); MAX_SEGMENTS],
    len: u8,
    /// Bit `i` is set when segment `i` has an ASCII uppercase letter.
    uppercase: u16,
}

impl Segments {
    /// How many segments were recorded (at most [`MAX_SEGMENTS`]).
    pub(super) fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// The byte range of segment `index` in the normalised path.
    pub(super) fn bounds(&self, index: usize) -> (u32, u32) {
        self.bounds[index]
    }

    pub(super) fn any_uppercase(&self) -> bool {
        self.uppercase != 0
    }

    pub(super) fn has_uppercase(&self, index: usize) -> bool {
        self.uppercase & (1 << index) != 0
    }

    fn push(&mut self, start: usize, end: usize, uppercase: bool) {
        let index = usize::from(self.len);
        if index < MAX_SEGMENTS {
            // hyper refuses URIs longer than u16::MAX, so the offsets always fit.
            let offset = |at: usize| u32::try_from(at).unwrap_or(u32::MAX);
            self.bounds[index] = (offset(start), offset(end));
            self.uppercase |= u16::from(uppercase) << index;
            self.len += 1;
        }
    }
}

/// Decodes and checks `raw` (the path as sent). Returns the normalised path: `/`, then the
/// decoded segments joined by `/`, with one trailing slash dropped (as `RequestInfo` does),
/// and where its segments lie.
pub(super) fn normalise_path(raw: &str) -> Result<(String, Segments), RequestInfoError> {
    let Some(rest) = raw.strip_prefix('/') else {
        if raw.is_empty() {
            return Ok(("/".to_owned(), Segments::default()));
        }
        return Err(refuse("path must start with /"));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let mut out = String::with_capacity(raw.len());
    out.push('/');
    if rest.is_empty() {
        return Ok((out, Segments::default()));
    }
    if let Some(segments) = scan_segments(rest)? {
        // Nothing to decode: the segments are checked, copy the path in one go.
        out.push_str(rest);
        return Ok((out, segments));
    }
    for (index, segment) in split_ascii(rest, b'/').enumerate() {
        if index > 0 {
            out.push('/');
        }
        let start = out.len();
        if segment.contains('%') {
            decode_segment(segment, &mut out)?;
        } else {
            check_chars(segment)?;
            out.push_str(segment);
        }
        check_segment(&out.as_bytes()[start..])?;
    }
    // The decoded path has no `%` (a decoded `%` is refused as double encoding) and no
    // control character, so this finds the same segments without refusing anything.
    let decoded = out.get(1..).unwrap_or_default();
    let segments = scan_segments(decoded)?
        .ok_or_else(|| refuse("path decodes to a character it may not contain"))?;
    Ok((out, segments))
}

/// One pass over `rest` (the path between its leading and trailing slash): `None` when it has
/// anything to decode (`%`, or a control character for the slow path to refuse). Otherwise
/// its segments are checked and recorded, offset by one for the leading `/`, with whether
/// each has an uppercase letter. Bailing out to the slow path gives the same first refusal:
/// every segment checked so far ended before the byte to decode, and the slow path checks
/// the same segments in the same order.
fn scan_segments(rest: &str) -> Result<Option<Segments>, RequestInfoError> {
    let bytes = rest.as_bytes();
    let mut segments = Segments::default();
    let (mut start, mut uppercase) = (0, false);
    for (at, &byte) in bytes.iter().enumerate() {
        match BYTE_CLASS[usize::from(byte)] {
            PLAIN => {}
            SLASH => {
                check_segment(&bytes[start..at])?;
                segments.push(start + 1, at + 1, uppercase);
                (start, uppercase) = (at + 1, false);
            }
            UPPER => uppercase = true,
            _ => return Ok(None),
        }
    }
    check_segment(&bytes[start..])?;
    segments.push(start + 1, bytes.len() + 1, uppercase);
    Ok(Some(segments))
}

/// How [`scan_segments`] treats each byte.
const PLAIN: u8 = 0;
const SLASH: u8 = 1;
const UPPER: u8 = 2;
/// `%` or a control character: the slow path decodes or refuses.
const DECODE: u8 = 3;
const BYTE_CLASS: [u8; 256] = {
    let mut table = [PLAIN; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = if b == b'/' {
            SLASH
        } else if b == b'%' || b.is_ascii_control() {
            DECODE
        } else if b.is_ascii_uppercase() {
            UPPER
        } else {
            PLAIN
        };
        byte += 1;
    }
    table
};

/// Refuses empty and dot segments (after decoding).
#[inline]
fn check_segment(segment: &[u8]) -> Result<(), RequestInfoError> {
    match segment {
        b"" | b"." | b".." => Err(refuse_segment(segment)),
        _ => Ok(()),
    }
}

/// Out of line: formatting a refusal is the rare path.
#[cold]
fn refuse_segment(segment: &[u8]) -> RequestInfoError {
    if segment.is_empty() {
        refuse("path contains an empty segment (//)")
    } else {
        refuse("path contains a dot segment (. or ..)")
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
///
/// One pass finds each pair's `=` and whether its key or value has anything to decode, so a
/// plain pair (nearly all of them) is neither copied nor scanned again.
pub(super) fn scan_query(query: Option<&str>) -> Result<QueryFlags, RequestInfoError> {
    let mut scan = QueryScan::default();
    let Some(query) = query else {
        return Ok(scan.flags);
    };
    // Refused before any pair is read, so this refusal comes first wherever the `;` is.
    if memchr::memchr(b';', query.as_bytes()).is_some() {
        return Err(refuse("query contains ';', which Go ignores"));
    }
    let (mut start, mut eq) = (0, None);
    let (mut key_escaped, mut value_escaped) = (false, false);
    for (at, &byte) in query.as_bytes().iter().enumerate() {
        match byte {
            b'&' => {
                scan.pair(query, start..at, eq, key_escaped, value_escaped)?;
                (start, eq, key_escaped, value_escaped) = (at + 1, None, false, false);
            }
            b'=' if eq.is_none() => eq = Some(at),
            b'%' | b'+' if eq.is_none() => key_escaped = true,
            b'%' | b'+' => value_escaped = true,
            _ => {}
        }
    }
    scan.pair(query, start..query.len(), eq, key_escaped, value_escaped)?;
    Ok(scan.flags)
}

/// What [`scan_query`] has read so far.
#[derive(Default)]
struct QueryScan {
    flags: QueryFlags,
    seen_watch: bool,
    seen_dry_run: bool,
    key_buf: String,
    value_buf: String,
}

impl QueryScan {
    /// Reads the pair at `range` of `query`; `eq` is where its first `=` is, and the flags
    /// say whether its key and value have a `%` or `+` to decode.
    fn pair(
        &mut self,
        query: &str,
        range: std::ops::Range<usize>,
        eq: Option<usize>,
        key_escaped: bool,
        value_escaped: bool,
    ) -> Result<(), RequestInfoError> {
        let (raw_key, raw_value) = match eq {
            Some(eq) => (&query[range.start..eq], &query[eq + 1..range.end]),
            None => (&query[range], ""),
        };
        if raw_key.is_empty() && eq.is_none() {
            return Ok(()); // an empty pair (`a=1&&b=2`)
        }
        let key = if key_escaped {
            decode_query_part(raw_key, &mut self.key_buf)?
        } else {
            raw_key
        };
        let is_watch = match key {
            "watch" => true,
            "dryRun" => false,
            _ => {
                // Validate the value's encoding too: Go drops a pair it cannot decode. Only a
                // `%` can be invalid; a `+` always decodes (to a space).
                if value_escaped {
                    decode_query_part(raw_value, &mut self.value_buf)?;
                }
                return Ok(());
            }
        };
        let value = if value_escaped {
            decode_query_part(raw_value, &mut self.value_buf)?
        } else {
            raw_value
        };
        let seen = if is_watch {
            &mut self.seen_watch
        } else {
            &mut self.seen_dry_run
        };
        if std::mem::replace(seen, true) {
            let name = if is_watch { "watch" } else { "dryRun" };
            return Err(RequestInfoError(format!(
                "sluice: query parameter {name} is given more than once; refused"
            )));
        }
        if is_watch {
            let off = value == "0" || value.eq_ignore_ascii_case("false");
            self.flags.watch = Some(!off);
        } else {
            self.flags.dry_run_all = value == "All";
        }
        Ok(())
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
        let path = |raw| normalise_path(raw).unwrap().0;
        assert_eq!(path("/api/v1/%73ecrets/"), "/api/v1/secrets");
        assert_eq!(path("/"), "/");
        assert_eq!(path(""), "/");
    }

    #[test]
    fn records_segments_and_their_case_on_both_paths() {
        for raw in ["/api/V1/namespaces/d/", "/api/%56%31/namespaces/%64"] {
            let (path, segments) = normalise_path(raw).unwrap();
            let texts: Vec<&str> = (0..segments.len())
                .map(|i| {
                    let (start, end) = segments.bounds(i);
                    &path[start as usize..end as usize]
                })
                .collect();
            assert_eq!(texts, ["api", "V1", "namespaces", "d"], "{raw}");
            let upper: Vec<bool> = (0..4).map(|i| segments.has_uppercase(i)).collect();
            assert_eq!(upper, [false, true, false, false], "{raw}");
        }
        let (_, long) = normalise_path("/a/b/c/d/e/f/g/h/i/j/K").unwrap();
        assert_eq!(long.len(), MAX_SEGMENTS);
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
