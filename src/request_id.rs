//! Request ids: `sl_` + 22 URL-safe characters (128 random bits), unique without coordination.
//! The same id goes to the agent (`X-Request-ID`), the apiserver (`X-Request-ID` and
//! `Audit-ID`) and the audit log, so all three join on one key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Makes a fresh request id.
pub fn new_request_id() -> String {
    let bytes: [u8; 16] = rand::random();
    let mut id = String::with_capacity(25);
    id.push_str("sl_");
    URL_SAFE_NO_PAD.encode_string(bytes, &mut id);
    id
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
    }
}
