//! The approvals API itself and its clients: refusals and status codes, the SSE stream,
//! the webhook, and the `sluice approvals` CLI.

use std::time::Duration;

use http::StatusCode;
use serde_json::Value;

use super::admin::{self, ALICE, Admin, BOB};
use super::{creates, start, stderr};
use crate::support::sluice::AGENT_TOKEN;
use crate::support::{ApiServer, Kubectl};

#[tokio::test]
async fn the_api_refuses_what_it_must() {
    let api = ApiServer::start().await;
    let sluice = start(&api, "approvals: {timeout: 20s}").await;
    let admin = Admin::new(&sluice);
    for token in [Some(AGENT_TOKEN), None, Some("sluice_wrong")] {
        let (status, _) = admin.request("GET", "/v1/approvals", token, "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "token {token:?}");
    }
    let (status, body) = admin
        .request("POST", "/v1/approvals/ap_nope/approve", Some(ALICE), "")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    let kubectl = Kubectl::new(&sluice.agent_kubeconfig())
        .args(&["create", "configmap", "twice", "--from-literal=a=b"])
        .run();
    let decide = async {
        let held = admin.wait_for_pending(1).await.remove(0);
        let (status, body) = admin.post(&held, "approve", ALICE, "{not json").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let (status, body) = admin
            .post(&held, "approve", ALICE, r#"{"reasn": "x"}"#)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "unknown field: {body}");
        let (status, body) = admin.post(&held, "approve", admin::SELF, "").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        let (status, body) = admin.post(&held, "approve", AGENT_TOKEN, "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(
            admin.pending().await.len(),
            1,
            "refused calls changed nothing"
        );
        let (status, _) = admin.post(&held, "deny", ALICE, "").await;
        assert_eq!(status, StatusCode::OK);
        for action in ["approve", "deny"] {
            let (status, body) = admin.post(&held, action, BOB, "").await;
            assert_eq!(status, StatusCode::CONFLICT, "{body}");
            let error = body["error"].as_str().unwrap();
            assert!(error.contains("already rejected by alice"), "{body}");
            assert_eq!(body["approval"]["state"], "rejected");
        }
    };
    let (out, ()) = tokio::join!(kubectl, decide);
    assert!(!out.status.success());
    assert_eq!(creates(&api, "configmaps"), 0);
}

#[tokio::test]
async fn sse_subscribers_see_new_then_approved_in_order() {
    let api = ApiServer::start().await;
    let sluice = start(&api, "approvals: {timeout: 20s}").await;
    let admin = Admin::new(&sluice);
    let mut events = admin.events(ALICE).await;
    let kubectl = Kubectl::new(&sluice.agent_kubeconfig())
        .args(&["create", "configmap", "sse", "--from-literal=a=b"])
        .run();
    let watch = async {
        let (kind, new) = events.next().await;
        assert_eq!(kind, "new");
        assert_eq!(new["kind"], "new");
        let (status, _) = admin.post(&new["approval"], "approve", BOB, "").await;
        assert_eq!(status, StatusCode::OK);
        let (kind, approved) = events.next().await;
        assert_eq!(kind, "approved");
        assert_eq!(approved["approval"]["id"], new["approval"]["id"]);
        assert_eq!(approved["approval"]["decided_by"], "bob");
    };
    let (out, ()) = tokio::join!(kubectl, watch);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[tokio::test]
async fn new_escalations_are_posted_to_the_webhook_signed() {
    let api = ApiServer::start().await;
    let mut hook = admin::Webhook::start().await;
    let config = format!(
        "approvals: {{timeout: 20s, notify: {{url: \"http://{}/hook\", secret: s3cret}}}}",
        hook.addr
    );
    let sluice = start(&api, &config).await;
    let admin = Admin::new(&sluice);
    let running = Kubectl::new(&sluice.agent_kubeconfig())
        .args(&["create", "configmap", "hooked", "--from-literal=a=b"])
        .spawn();
    let (signature, body) = tokio::time::timeout(Duration::from_secs(10), hook.received.recv())
        .await
        .expect("the webhook was called within 10s")
        .unwrap();
    assert_eq!(
        signature.as_deref(),
        Some(admin::hmac_sha256_hex(b"s3cret", &body).as_str())
    );
    let posted: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(posted["kind"], "new");
    let held = admin.wait_for_pending(1).await.remove(0);
    assert_eq!(posted["approval"]["id"], held["id"]);
    assert_eq!(posted["approval"]["resource"], "configmaps");
    running.kill().await;
}

#[tokio::test]
async fn the_cli_lists_and_approves() {
    let api = ApiServer::start().await;
    let sluice = start(&api, "approvals: {timeout: 20s}").await;
    let admin = Admin::new(&sluice);
    let kubectl = Kubectl::new(&sluice.agent_kubeconfig())
        .args(&["create", "configmap", "via-cli", "--from-literal=a=b"])
        .run();
    let cli = async {
        let held = admin.wait_for_pending(1).await.remove(0);
        let id = held["id"].as_str().unwrap();
        let out = admin::cli(&sluice, ALICE, &["list"]).await;
        assert!(out.status.success(), "{}", stderr(&out));
        let table = String::from_utf8_lossy(&out.stdout);
        assert!(table.starts_with("ID "), "{table}");
        assert!(
            table.contains(id) && table.contains("configmaps") && table.contains("default/-"),
            "{table}"
        );
        let out = admin::cli(&sluice, ALICE, &["show", id]).await;
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("via-cli"),
            "{out:?}"
        );
        let out = admin::cli(&sluice, AGENT_TOKEN, &["approve", id]).await;
        assert_eq!(out.status.code(), Some(1), "an agent token is refused");
        assert!(stderr(&out).contains("401"), "{}", stderr(&out));
        let out = admin::cli(&sluice, ALICE, &["approve", id]).await;
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("approved by alice"),
            "{out:?}"
        );
        let out = admin::cli(&sluice, BOB, &["deny", id, "--reason", "late"]).await;
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("409") && stderr(&out).contains("already approved"),
            "{}",
            stderr(&out)
        );
    };
    let (out, ()) = tokio::join!(kubectl, cli);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(creates(&api, "configmaps"), 1);
}
