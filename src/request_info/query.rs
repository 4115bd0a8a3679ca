//! What sluice reads from the query string: `watch` and `dryRun`, decoded as Go's
//! `url.ParseQuery` decodes them, a duplicate of either refused.

use super::RequestInfoError;
use super::normalise::{hex_pair, refuse};

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
    if query.contains(';') {
        return Err(refuse("query contains ';', which Go ignores"));
    }
    let mut seen = Seen::default();
    let mut key_buf = String::new();
    let mut value_buf = String::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
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

#[cfg(test)]
mod tests {
    use super::*;

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
