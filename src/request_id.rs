//! Request ids: `sl_` + 22 URL-safe characters (128 random bits), unique without coordination.
//! The same id goes to the agent (`X-Request-ID`), the apiserver (`X-Request-ID` and
//! `Audit-ID`) and the audit log, so all three join on one key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderValue;

/// Makes a fresh request id.
pub fn new_request_id() -> String {
    let bytes: [u8; 16] = rand::random();
    let mut id = String::with_capacity(25);
    id.push_str("sl_");
    URL_SAFE_NO_PAD.encode_string(bytes, &mut id);
    id
}

/// `id` as a header value, marked so HTTP/2 sends it as a literal that is never indexed:
/// indexed, every id would be added to the connection's HPACK table and compared against
/// every earlier one there (h2 walks all entries of a name), for entries never reused.
pub fn header_value(id: &str) -> HeaderValue {
    // Ids are `sl_` and URL-safe base64 (new_request_id): always a valid header value.
    let mut value = HeaderValue::from_str(id).unwrap_or(HeaderValue::from_static("sl_"));
    value.set_sensitive(true);
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_url_safe_and_distinct() {
        let a = new_request_id();
        let b = new_request_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 25);
        assert!(a.starts_with("sl_"));
        assert!(
            a[3..]
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        let header = header_value(&a);
        assert_eq!(header.as_bytes(), a.as_bytes());
        assert!(header.is_sensitive());
    }
}
