//! Upgrade tricks: asking to upgrade where nothing streams, an upgrade the upstream
//! refuses, and bytes smuggled behind an upgrade request before any 101.

use super::T0_ONLY;
use crate::support::ApiServer;
use crate::support::raw::{self, assert_still_serving, exchange, status, statuses};
use crate::support::rogue::{Behaviour, Rogue};
use crate::support::sluice::{AGENT_TOKEN, Options, Sluice};

const UPGRADE: [&str; 3] = [
    "Connection: Upgrade",
    "Upgrade: websocket",
    "Sec-WebSocket-Protocol: v5.channel.k8s.io",
];

#[tokio::test]
async fn an_upgrade_header_does_not_change_what_a_path_is() {
    let api = ApiServer::start().await;
    let sluice = Sluice::start_with(&api, Options::with_policy(T0_ONLY)).await;
    // A read that asks to upgrade is still a read: answered normally, not spliced.
    let text = exchange(
        &sluice,
        &raw::request("GET", "/api/v1/namespaces/default/pods", &UPGRADE),
    )
    .await;
    assert_eq!(status(&text), 200, "{text}");
    assert!(
        text.contains("\"PodList\"") || text.contains("web-0"),
        "{text}"
    );
    // Secrets and exec keep their tiers whatever the method or the upgrade.
    for target in [
        "/api/v1/namespaces/default/secrets/db",
        "/api/v1/namespaces/default/pods/web-0/exec?command=sh&stdout=true",
        "/api/v1/namespaces/default/pods/web-0/portforward?ports=80",
    ] {
        let text = exchange(&sluice, &raw::request("GET", target, &UPGRADE)).await;
        assert_eq!(status(&text), 403, "{target}: {text}");
    }
    assert_eq!(api.requests().len(), 1, "only the pod list went upstream");
    let event = sluice
        .wait_for_event("the exec decision", |e| {
            e["stage"] == "decision" && e["subresource"] == "exec"
        })
        .await;
    assert_eq!(event["tier"], 4);
}

#[tokio::test]
async fn bytes_behind_a_refused_upgrade_are_a_request_of_their_own() {
    let api = ApiServer::start().await;
    let sluice = Sluice::start_with(&api, Options::with_policy(T0_ONLY)).await;
    // An exec upgrade with a secret read packed behind it, before any 101.
    let mut bytes = format!(
        "GET /api/v1/namespaces/default/pods/web-0/exec?command=sh HTTP/1.1\r\nHost: x\r\n\
         Authorization: Bearer {AGENT_TOKEN}\r\n{}\r\n\r\n",
        UPGRADE.join("\r\n")
    )
    .into_bytes();
    bytes.extend(raw::get("/api/v1/namespaces/default/secrets/db"));
    let text = exchange(&sluice, &bytes).await;
    assert_eq!(statuses(&text), vec![403, 403], "{text}");
    assert!(api.requests().is_empty(), "{:?}", api.requests());
    assert_still_serving(&sluice).await;
}

#[tokio::test]
async fn an_upgrade_the_upstream_refuses_reaches_the_agent_as_is() {
    let rogue = Rogue::start(Behaviour::BadRequest).await;
    let api = ApiServer::start().await;
    let sluice =
        Sluice::start_with(&api, Options::with_upstream(rogue.upstream_config("5s"))).await;
    // Bytes sent before the 101 that never comes must not be spliced to the upstream.
    let mut bytes = raw::request(
        "GET",
        "/api/v1/namespaces/default/pods/web-0/exec?command=sh&stdout=true",
        &UPGRADE,
    );
    let close = bytes.len() - "Connection: close\r\n\r\n".len();
    bytes.truncate(close);
    bytes.extend_from_slice(b"\r\n\x82\x05hello");
    let text = exchange(&sluice, &bytes).await;
    assert_eq!(status(&text), 400, "{text}");
    assert!(text.contains("no upgrade for you"), "{text}");
    assert!(!text.contains("101 Switching"), "{text}");
    sluice
        .wait_for_event("the refused upgrade's completion", |e| {
            e["stage"] == "complete" && e["subresource"] == "exec" && e["status"] == 400
        })
        .await;
    assert_eq!(rogue.requests().len(), 1);
}
