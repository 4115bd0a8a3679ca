//! Bodies: too big to hold for approval, on a GET, and not JSON at all.

use crate::support::ApiServer;
use crate::support::raw::{self, assert_still_serving, exchange, status};
use crate::support::sluice::{Options, Sluice};

const ESCALATE_WRITES: &str = "default: deny
agents:
  claude-code:
    rules:
      - namespaces: [\"*\"]
        tiers: {0: allow, 2: escalate}
";

fn post(target: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let length = format!("Content-Length: {}", body.len());
    let kind = format!("Content-Type: {content_type}");
    let mut bytes = raw::request("POST", target, &[&length, &kind]);
    bytes.extend_from_slice(body);
    bytes
}

#[tokio::test]
async fn a_held_request_with_a_huge_body_is_413_and_never_forwarded() {
    let api = ApiServer::start().await;
    let sluice = Sluice::start_with(
        &api,
        Options {
            policy: ESCALATE_WRITES.into(),
            extra_config: "approvals: {timeout: 1s, max_body_bytes: 4096}".into(),
            ..Options::default()
        },
    )
    .await;
    let huge = format!(
        "{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"c\"}},\"data\":{{\"a\":\"{}\"}}}}",
        "x".repeat(2 << 20)
    );
    let text = exchange(
        &sluice,
        &post(
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            huge.as_bytes(),
        ),
    )
    .await;
    assert_eq!(status(&text), 413, "{}", &text[..text.len().min(300)]);
    // Not JSON at all: held (and previewed) without trouble, then it expires.
    let text = exchange(
        &sluice,
        &post(
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            b"{\"metadata\": [\xff\x00",
        ),
    )
    .await;
    assert_eq!(status(&text), 403, "{text}");
    assert!(text.contains("expired"), "{text}");
    assert!(api.requests().is_empty(), "{:?}", api.requests());
    assert_still_serving(&sluice).await;
}

#[tokio::test]
async fn a_body_on_a_get_changes_nothing_and_invalid_json_is_the_upstreams_to_refuse() {
    let api = ApiServer::start().await;
    let sluice = Sluice::start(&api).await;
    // A GET with a body is still a read of what its path names.
    let mut bytes = raw::request(
        "GET",
        "/api/v1/namespaces/default/pods",
        &["Content-Length: 26"],
    );
    bytes.extend_from_slice(b"{\"kind\":\"DeleteOptions\"}\r\n");
    let text = exchange(&sluice, &bytes).await;
    assert_eq!(status(&text), 200, "{text}");
    let event = sluice
        .wait_for_event("the GET's decision", |e| {
            e["stage"] == "decision" && e["method"] == "GET"
        })
        .await;
    assert_eq!(event["verb"], "list");
    assert_eq!(event["tier"], 0);
    // Allowed writes are not inspected: invalid JSON goes through and the apiserver says no.
    let text = exchange(
        &sluice,
        &post(
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            b"{not json",
        ),
    )
    .await;
    assert_eq!(status(&text), 400, "{text}");
    assert_still_serving(&sluice).await;
}

#[tokio::test]
async fn a_held_request_whose_body_never_finishes_is_let_go() {
    use tokio::io::AsyncWriteExt;
    let api = ApiServer::start().await;
    let sluice = Sluice::start_with(
        &api,
        Options {
            policy: ESCALATE_WRITES.into(),
            extra_config: "approvals: {timeout: 1s}\nlimits: {header_read_timeout: 1s}".into(),
            ..Options::default()
        },
    )
    .await;
    // Promises 1000 bytes, sends 10, then goes quiet (a slowloris on the body).
    let mut bytes = raw::request(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        &["Content-Length: 1000", "Content-Type: application/json"],
    );
    bytes.extend_from_slice(b"{\"kind\":\"C");
    let mut tls = raw::connect_h1(&sluice).await;
    tls.write_all(&bytes).await.unwrap();
    let started = std::time::Instant::now();
    let text = raw::read_until_close(&mut tls).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "sluice held a half-sent body for {:?}",
        started.elapsed()
    );
    assert_eq!(status(&text), 408, "{text}");
    assert!(api.requests().is_empty());
    assert_still_serving(&sluice).await;
}
