//! What sluice changes in the headers it forwards: the agent's credentials, identity-bearing
//! ids and hop-by-hop headers go; an upgrade keeps its `Connection: Upgrade`.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::{AUDIT_ID, X_REQUEST_ID};

/// Headers that describe one hop, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Removes the agent's credentials, identity-bearing ids and hop-by-hop headers.
pub(super) fn rewrite_request_headers(headers: &mut HeaderMap, upgrade: bool) {
    let upgrade_value = upgrade
        .then(|| headers.get(header::UPGRADE).cloned())
        .flatten();
    // Front-proxy identity (`X-Remote-User`, `-Group`, `-Extra-*`) is trusted by the
    // apiserver from a requestheader client certificate: never pass it on.
    strip(headers, |name| {
        *name == header::UPGRADE
            || *name == header::AUTHORIZATION
            || *name == header::HOST
            || *name == X_REQUEST_ID
            || *name == AUDIT_ID
            || name.as_str().starts_with("x-remote-")
    });
    strip_websocket_token(headers);
    if let Some(value) = upgrade_value {
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(header::UPGRADE, value);
    }
}

/// A bearer token carried as a WebSocket subprotocol (the apiserver's protocol
/// authenticator accepts it): the subprotocol goes, the others stay.
fn strip_websocket_token(headers: &mut HeaderMap) {
    if !headers.contains_key(header::SEC_WEBSOCKET_PROTOCOL) {
        return;
    }
    let protocols: Vec<String> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty() && !p.starts_with("base64url.bearer.authorization.k8s.io"))
        .map(str::to_owned)
        .collect();
    headers.remove(header::SEC_WEBSOCKET_PROTOCOL);
    if let Ok(value) = HeaderValue::from_str(&protocols.join(", "))
        && !protocols.is_empty()
    {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, value);
    }
}

/// Removes hop-by-hop headers, including any the `Connection` header names.
pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    strip(headers, |_| false);
}

/// Removes hop-by-hop headers, any the `Connection` header names, and every one `also`
/// picks. One pass over the names present (a handful) finds them: a lookup for each name
/// that might be there hashed and probed fifteen names a request to remove one or two.
fn strip(headers: &mut HeaderMap, also: impl Fn(&HeaderName) -> bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| HOP_BY_HOP.contains(name) || named.contains(name) || also(name))
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_credentials_and_ids_never_leave() {
        let mut headers = HeaderMap::new();
        for (k, v) in [
            ("authorization", "Bearer agent-token"),
            ("x-request-id", "chosen-by-agent"),
            ("audit-id", "chosen-by-agent"),
            ("connection", "keep-alive, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("proxy-authorization", "Basic x"),
            ("te", "trailers"),
            ("host", "sluice.local"),
            ("x-remote-user", "system:admin"),
            ("x-remote-extra-scopes", "all"),
            ("X-Remote-Group", "system:masters"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            (
                "sec-websocket-protocol",
                "base64url.bearer.authorization.k8s.io.dG9r",
            ),
            ("accept", "application/json"),
        ] {
            headers.append(k, v.parse().unwrap());
        }
        rewrite_request_headers(&mut headers, false);
        let left: Vec<_> = headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["accept"]);
    }

    #[test]
    fn upgrades_keep_their_upgrade_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("connection", "Upgrade".parse().unwrap());
        headers.insert("upgrade", "websocket".parse().unwrap());
        headers.insert(
            "sec-websocket-protocol",
            "base64url.bearer.authorization.k8s.io.dG9r, v5.channel.k8s.io"
                .parse()
                .unwrap(),
        );
        rewrite_request_headers(&mut headers, true);
        assert_eq!(headers["connection"], "Upgrade");
        assert_eq!(headers["upgrade"], "websocket");
        assert_eq!(headers["sec-websocket-protocol"], "v5.channel.k8s.io");
        let mut plain = headers.clone();
        rewrite_request_headers(&mut plain, false);
        assert!(plain.get("upgrade").is_none() && plain.get("connection").is_none());
    }
}
