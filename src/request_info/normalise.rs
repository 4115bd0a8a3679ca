//! Turning the raw path into what kube-apiserver will act on, or refusing (the query:
//! [`super::query`]).
//!
//! Go's `net/http` hands kube-apiserver a percent-*decoded* `URL.Path`, and `RequestInfo`
//! splits that on `/` after trimming slashes at both ends. sluice decodes the same way and
//! refuses every form whose meaning differs between the apiserver's filters and its router
//! (or that no client sends honestly): encoded slashes, dot segments, empty segments,
//! double encoding and control characters.

use super::RequestInfoError;

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
    if !rest.bytes().any(|b| b == b'%' || b.is_ascii_control()) {
        // Nothing to decode or refuse in a segment's bytes: check the segments, keep as is.
        for segment in rest.as_bytes().split(|&b| b == b'/') {
            check_segment(segment)?;
        }
        out.push('/');
        out.push_str(rest);
        return Ok(out);
    }
    for segment in rest.split('/') {
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

/// Refuses empty and dot segments (after decoding).
fn check_segment(segment: &[u8]) -> Result<(), RequestInfoError> {
    match segment {
        b"" => Err(refuse("path contains an empty segment (//)")),
        b"." | b".." => Err(refuse("path contains a dot segment (. or ..)")),
        _ => Ok(()),
    }
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
}
