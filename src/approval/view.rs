//! What an approver sees of a held request: who, what, where, and for writes the start of
//! the body — with Secret `data` values masked, so approving a Secret does not reveal it.

use serde::Serialize;

/// One held (or decided) request as the approvals API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalView {
    pub id: String,
    pub request_id: String,
    pub agent: String,
    pub tier: u8,
    pub reason: String,
    pub method: String,
    pub path: String,
    pub verb: String,
    pub api_group: String,
    pub resource: Option<String>,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub expires_at: String,
    /// The first few KB of a write's body (Secret values masked); null for reads.
    pub body: Option<String>,
    pub body_truncated: bool,
    /// How many distinct approvers this request needs.
    pub required: u8,
    /// Who has approved so far.
    pub approvals: Vec<String>,
    /// pending | approved | rejected | expired | abandoned
    pub state: &'static str,
    pub decided_by: Option<String>,
    pub decision_reason: Option<String>,
}

/// How much of a body an approver is shown.
pub const PREVIEW_BYTES: usize = 4096;

/// The start of `body` for an approver: JSON Secret values masked;
/// anything else that is not JSON is shown as text, cut at [`PREVIEW_BYTES`].
pub fn body_preview(body: &[u8], resource: Option<&str>) -> (String, bool) {
    let masked = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(mut value) => {
            if resource == Some("secrets")
                || value.get("kind").and_then(|k| k.as_str()) == Some("Secret")
            {
                mask_secret_values(&mut value);
            }
            value.to_string()
        }
        // A Secret body that is not JSON (YAML, protobuf) could carry values: show nothing.
        Err(_) if resource == Some("secrets") => "<secret body not shown>".to_owned(),
        Err(_) if body.starts_with(PROTOBUF_MAGIC) => protobuf_strings(body),
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    if masked.len() <= PREVIEW_BYTES {
        return (masked, false);
    }
    let mut cut = PREVIEW_BYTES;
    while !masked.is_char_boundary(cut) {
        cut -= 1;
    }
    (masked[..cut].to_owned(), true)
}

/// The prefix of a Kubernetes protobuf body (kubectl sends ConfigMaps and Secrets this way).
const PROTOBUF_MAGIC: &[u8] = b"k8s\x00";

/// What an approver can read of a protobuf body without its schema: its printable strings
/// (kind, names, keys and values), in order, JSON-quoted.
fn protobuf_strings(body: &[u8]) -> String {
    let strings: Vec<String> = body[PROTOBUF_MAGIC.len()..]
        .split(|b| !(b' '..=b'~').contains(b))
        .filter(|run| run.len() >= 2)
        .map(|run| serde_json::Value::String(String::from_utf8_lossy(run).into_owned()).to_string())
        .collect();
    format!("<protobuf, {} bytes> {}", body.len(), strings.join(" "))
}

/// Replaces every scalar of a Secret body with `"***"`, except the keys that say what the
/// object is (`metadata`, `apiVersion`, `kind`, `type`) and the shape of JSON patches (`op`,
/// `path`, `from`): an approver sees which keys change, never their values.
fn mask_secret_values(value: &mut serde_json::Value) {
    use serde_json::Value;
    const SHOWN: [&str; 7] = [
        "metadata",
        "apiVersion",
        "kind",
        "type",
        "op",
        "path",
        "from",
    ];
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if !SHOWN.contains(&key.as_str()) {
                    mask_secret_values(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_secret_values),
        Value::Null => {}
        scalar => *scalar = Value::String("***".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_are_masked_and_keys_kept() {
        let body = br#"{"kind":"Secret","metadata":{"name":"db"},"data":{"password":"aHVudGVyMg=="},"stringData":{"user":"root"}}"#;
        let (shown, cut) = body_preview(body, Some("secrets"));
        assert!(!cut);
        assert!(
            shown.contains("password") && shown.contains("user"),
            "{shown}"
        );
        assert!(
            !shown.contains("aHVudGVyMg") && !shown.contains("root"),
            "{shown}"
        );
    }

    #[test]
    fn json_patches_to_secrets_are_masked_too() {
        let body = br#"[{"op":"add","path":"/data/x","value":"c2VjcmV0"}]"#;
        let (shown, _) = body_preview(body, Some("secrets"));
        assert!(
            shown.contains("/data/x") && !shown.contains("c2VjcmV0"),
            "{shown}"
        );
        let (shown, _) = body_preview(b"apiVersion: v1\ndata: {x: c2VjcmV0}", Some("secrets"));
        assert_eq!(shown, "<secret body not shown>");
    }

    #[test]
    fn protobuf_bodies_show_their_strings() {
        let body = b"k8s\x00\n\x0f\n\x02v1\x12\tConfigMap\x12\x1a\n\x0b\n\x03cfg\x12\x00\x1a\x07default\x1a\x06\n\x01a\x12\x01b";
        let (shown, _) = body_preview(body, Some("configmaps"));
        assert!(shown.starts_with("<protobuf, "), "{shown}");
        assert!(
            shown.contains("\"ConfigMap\"")
                && shown.contains("\"cfg\"")
                && shown.contains("\"default\""),
            "{shown}"
        );
        let (secret, _) = body_preview(body, Some("secrets"));
        assert_eq!(secret, "<secret body not shown>");
    }

    #[test]
    fn long_bodies_are_cut_on_a_char_boundary() {
        let body = format!("\"{}\"", "é".repeat(PREVIEW_BYTES));
        let (shown, cut) = body_preview(body.as_bytes(), Some("configmaps"));
        assert!(cut);
        assert!(shown.len() <= PREVIEW_BYTES);
    }
}
