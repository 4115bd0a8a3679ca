//! Header attacks over raw HTTP/1.1: identity headers, credential confusion, framing
//! ambiguities (request smuggling), size limits, and what the upstream sees as its host.

use crate::support::ApiServer;
use crate::support::raw::{self, assert_still_serving, exchange, status, statuses};
use crate::support::sluice::{AGENT_TOKEN, Options, Sluice};

const PODS: &str = "/api/v1/namespaces/default/pods";

async fn start(extra_config: &str) -> (ApiServer, Sluice) {
    let api = ApiServer::start().await;
    let sluice = Sluice::start_with(
        &api,
        Options {
            extra_config: extra_config.into(),
            ..Options::default()
        },
    )
    .await;
    (api, sluice)
}

#[tokio::test]
async fn impersonation_in_any_casing_is_refused() {
    let (api, sluice) = start("").await;
    for header in [
        "Impersonate-User: admin",
        "IMPERSONATE-USER: admin",
        "iMpErSoNaTe-GrOuP: system:masters",
        "impersonate-uid: 0",
        "Impersonate-Extra-Scopes: view",
    ] {
        let text = exchange(&sluice, &raw::request("GET", PODS, &[header])).await;
        assert_eq!(status(&text), 403, "{header}: {text}");
    }
    assert!(api.requests().is_empty(), "{:?}", api.requests());
    assert_still_serving(&sluice).await;
}

#[tokio::test]
async fn credential_confusion_is_refused_or_ignored() {
    let (api, sluice) = start("").await;
    let bearer = format!("Authorization: Bearer {AGENT_TOKEN}");
    // A second Authorization header: which one counts is ambiguous, so neither does.
    for second in [
        bearer.as_str(),
        "Authorization: Bearer other",
        "authorization: Basic YTpi",
    ] {
        let text = exchange(&sluice, &raw::request("GET", PODS, &[second])).await;
        assert_eq!(status(&text), 401, "{second}: {text}");
    }
    // A token in the query string is refused (400) and never stored: sluice's audit log
    // records paths, and a token must not end up there or in the apiserver's.
    let bare = format!(
        "GET {PODS}?access_token={AGENT_TOKEN} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(status(&exchange(&sluice, bare.as_bytes()).await), 401);
    let target = format!("{PODS}?limit=1&Access_Token=stolen-cluster-token");
    let text = exchange(&sluice, &raw::get(&target)).await;
    assert_eq!(status(&text), 400, "{text}");
    assert!(text.contains("a token in the query string"), "{text}");
    assert!(api.requests().is_empty(), "{:?}", api.requests());
    let refused = sluice
        .wait_for_event("the 400's completion", |e| {
            e["stage"] == "complete" && e["status"] == 400
        })
        .await;
    assert!(
        refused["path"]
            .as_str()
            .unwrap()
            .contains("Access_Token=<redacted>"),
        "{refused}"
    );
    let log = std::fs::read_to_string(sluice.path("audit.jsonl")).unwrap();
    assert!(
        !log.contains(AGENT_TOKEN) && !log.contains("stolen-cluster-token"),
        "{log}"
    );
}

#[tokio::test]
async fn framing_ambiguities_are_refused_before_any_request_is_made() {
    let (api, sluice) = start("").await;
    let auth = format!("Authorization: Bearer {AGENT_TOKEN}");
    let cases: Vec<(&str, String)> = vec![
        (
            "two different Content-Lengths",
            format!(
                "POST {PODS} HTTP/1.1\r\nHost: x\r\n{auth}\r\nContent-Length: 2\r\n\
                 Content-Length: 40\r\n\r\n{{}}"
            ),
        ),
        (
            "obsolete line folding",
            format!(
                "GET {PODS} HTTP/1.1\r\nHost: x\r\n{auth}\r\nX-Note: a\r\n \
                 Impersonate-User: admin\r\n\r\n"
            ),
        ),
        (
            "a space before the colon",
            format!("GET {PODS} HTTP/1.1\r\nHost: x\r\n{auth}\r\nImpersonate-User : admin\r\n\r\n"),
        ),
        (
            "an invalid method token",
            format!("G@T {PODS} HTTP/1.1\r\nHost: x\r\n{auth}\r\n\r\n"),
        ),
        (
            "a bare LF inside a header value",
            format!(
                "GET {PODS} HTTP/1.1\r\nHost: x\r\n{auth}\r\nX-A: a\rImpersonate-User: b\r\n\r\n"
            ),
        ),
    ];
    for (what, bytes) in cases {
        let text = exchange(&sluice, bytes.as_bytes()).await;
        assert_eq!(statuses(&text), vec![400], "{what}: {text}");
        assert!(api.requests().is_empty(), "{what} reached the upstream");
    }
    assert!(api.requests().is_empty(), "{:?}", api.requests());
    assert_still_serving(&sluice).await;
}

#[tokio::test]
async fn content_length_with_transfer_encoding_cannot_smuggle_a_request() {
    let (api, sluice) = start("").await;
    let auth = format!("Authorization: Bearer {AGENT_TOKEN}");
    // hyper frames by Transfer-Encoding (RFC 9112 §6.1), drops Content-Length, and closes
    // the connection after the response: the bytes behind the chunked body are never read.
    let smuggle = format!(
        "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\n{auth}\r\n\
         Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
         GET /api/v1/namespaces/default/secrets/db HTTP/1.1\r\nHost: x\r\n{auth}\r\n\r\n"
    );
    let text = exchange(&sluice, smuggle.as_bytes()).await;
    assert_eq!(statuses(&text).len(), 1, "{text}");
    let seen = api.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].method, "POST");
    assert!(
        seen[0].body.is_empty(),
        "the chunked body was empty: {:?}",
        seen[0].body
    );
    assert!(seen[0].header("content-length").is_none_or(|l| l == "0"));
    assert_still_serving(&sluice).await;
}

#[tokio::test]
async fn methods_sluice_cannot_classify_are_refused() {
    let (api, sluice) = start("").await;
    for method in ["OPTIONS", "TRACE", "PROPFIND", "FOO"] {
        let text = exchange(&sluice, &raw::request(method, PODS, &[])).await;
        assert_eq!(status(&text), 400, "{method}: {text}");
    }
    // CONNECT has no Kubernetes meaning; as a non-GET to a non-resource path it is T4.
    let text = exchange(&sluice, &raw::request("CONNECT", "127.0.0.1:443", &[])).await;
    let event = sluice
        .wait_for_event("the CONNECT decision", |e| {
            e["stage"] == "decision" && e["method"] == "CONNECT"
        })
        .await;
    assert_eq!(event["tier"], 4, "{text}");
    let text = exchange(
        &sluice,
        &raw::request("GET", PODS, &["X-HTTP-Method-Override: DELETE"]),
    )
    .await;
    assert_eq!(status(&text), 400, "{text}");
    assert!(
        api.requests().iter().all(|r| r.method == "CONNECT"),
        "{:?}",
        api.requests()
    );
    assert_still_serving(&sluice).await;
}

#[tokio::test]
async fn oversized_heads_are_refused_with_431_and_414() {
    let (api, sluice) = start("limits: {max_header_bytes: 16384, max_uri_bytes: 2048}").await;
    let big = format!("X-Big: {}", "a".repeat(20_000));
    let text = exchange(&sluice, &raw::request("GET", PODS, &[&big])).await;
    assert_eq!(
        status(&text),
        431,
        "one huge header: {}",
        &text[..text.len().min(200)]
    );
    let many: Vec<String> = (0..150).map(|i| format!("X-H{i}: v")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let text = exchange(&sluice, &raw::request("GET", PODS, &many)).await;
    assert_eq!(status(&text), 431, "150 headers: {text}");
    // Over sluice's URI limit but inside hyper's buffer: sluice's own 414.
    let target = format!("{PODS}?labelSelector={}", "a".repeat(4000));
    let text = exchange(&sluice, &raw::get(&target)).await;
    assert_eq!(status(&text), 414, "{text}");
    // Over both: hyper refuses the head before sluice sees it.
    let target = format!("{PODS}?labelSelector={}", "a".repeat(100_000));
    let text = exchange(&sluice, &raw::get(&target)).await;
    assert!(
        matches!(status(&text), 414 | 431),
        "{}",
        &text[..text.len().min(200)]
    );
    assert!(api.requests().is_empty(), "{:?}", api.requests());
    assert_still_serving(&sluice).await;
}

#[tokio::test]
async fn the_upstream_sees_its_own_host_whatever_the_agent_says() {
    let (api, sluice) = start("").await;
    let text = exchange(&sluice, &raw::request("GET", PODS, &["Host: evil.example"])).await;
    // Two Host headers are a 400 from hyper; one odd Host is simply not forwarded.
    assert!(matches!(status(&text), 200 | 400), "{text}");
    let absolute = format!("https://evil.example:6443{PODS}");
    let text = exchange(&sluice, &raw::get(&absolute)).await;
    assert_eq!(status(&text), 200, "{text}");
    let forwarded = "X-Forwarded-Host: evil.example\r\nForwarded: host=evil.example";
    let text = exchange(&sluice, &raw::request("GET", PODS, &[forwarded])).await;
    assert_eq!(status(&text), 200, "{text}");
    let seen = api.requests();
    assert!(!seen.is_empty());
    for r in seen {
        if let Some(host) = r.header("host") {
            assert_eq!(host, api.addr().to_string(), "the upstream saw Host {host}");
        }
        assert!(r.path_and_query.starts_with('/'), "{}", r.path_and_query);
        for (name, value) in &r.headers {
            assert!(
                !value.as_bytes().windows(4).any(|w| w == b"evil")
                    || name.as_str().starts_with("x-forwarded")
                    || name == "forwarded",
                "{name}: {value:?} reached the upstream"
            );
        }
    }
}

#[tokio::test]
async fn identity_headers_the_apiserver_might_trust_never_reach_it() {
    let (api, sluice) = start("").await;
    // Front-proxy (request-header) identity, and a bearer token smuggled as a WebSocket
    // subprotocol (kube-apiserver's protocol authenticator reads it).
    let text = exchange(
        &sluice,
        &raw::request(
            "GET",
            PODS,
            &[
                "X-Remote-User: system:admin",
                "X-Remote-Group: system:masters",
                "X-Remote-Extra-Scopes: all",
                "Sec-WebSocket-Protocol: base64url.bearer.authorization.k8s.io.c3RvbGVu, v5.channel.k8s.io",
            ],
        ),
    )
    .await;
    assert_eq!(status(&text), 200, "{text}");
    let seen = api.requests();
    let headers = &seen.last().unwrap().headers;
    assert!(
        headers.keys().all(|k| !k.as_str().starts_with("x-remote-")),
        "{headers:?}"
    );
    for value in headers.get_all("sec-websocket-protocol") {
        assert!(!value.to_str().unwrap().contains("bearer"), "{value:?}");
    }
}
