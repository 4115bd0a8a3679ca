//! Held requests end to end: real kubectl → sluice → the test apiserver, decided through the
//! admin REST API (and the `sluice approvals` CLI) by approvers alice and bob.

pub(crate) mod admin;
mod api;

use http::{StatusCode, Version};
use serde_json::Value;

use crate::support::sluice::{Options, Sluice};
use crate::support::{ApiServer, Kubectl};
use admin::{ALICE, Admin, BOB};

/// claude-code: reads allowed; writes (tier 2), deletes and secrets (3) and exec (4) in
/// `default` wait for a human.
pub(crate) const POLICY: &str = "default: deny
agents:
  claude-code:
    rules:
      - namespaces: [default]
        tiers: {0: allow, 1: allow, 2: escalate, 3: escalate, 4: escalate}
      - namespaces: [\"*\"]
        tiers: {0: allow}
";

pub(crate) async fn start(api: &ApiServer, extra_config: &str) -> Sluice {
    Sluice::start_with(
        api,
        Options {
            policy: POLICY.into(),
            approvers: vec![
                ("alice".into(), ALICE.into()),
                ("bob".into(), BOB.into()),
                // Named like the agent: separation of duties must stop them.
                ("claude-code".into(), admin::SELF.into()),
            ],
            extra_config: extra_config.into(),
            ..Options::default()
        },
    )
    .await
}

pub(crate) fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub(crate) fn creates(api: &ApiServer, resource: &str) -> usize {
    api.requests()
        .iter()
        .filter(|r| r.method == http::Method::POST && r.path_and_query.contains(resource))
        .count()
}

/// The body of the one write kubectl logged at -v=8: a `"Request Body" body=<` line, the
/// body indented by a tab on the next line, then ` >`.
fn logged_body(stderr: &str) -> Option<&str> {
    let mut lines = stderr.lines();
    lines.find(|l| l.ends_with("\"Request Body\" body=<"))?;
    lines.next()?.strip_prefix('\t')
}

#[tokio::test]
async fn an_approved_create_reaches_the_apiserver_once_exactly_as_sent() {
    let api = ApiServer::start().await;
    let sluice = start(&api, "approvals: {timeout: 20s}").await;
    let admin = Admin::new(&sluice);
    // From a file, kubectl sends JSON and logs the exact bytes at -v=8.
    let manifest =
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{"a":"b"}}"#;
    let kubectl = Kubectl::new(&sluice.agent_kubeconfig())
        .args(&["create", "-f", "-", "-v=8"])
        .stdin(manifest.as_bytes())
        .run();
    let approve = async {
        let held = admin.wait_for_pending(1).await.remove(0);
        assert_eq!(held["verb"], "create");
        assert_eq!(held["resource"], "configmaps");
        assert_eq!(held["namespace"], "default");
        assert_eq!(creates(&api, "configmaps"), 0, "forwarded before approval");
        let (status, view) = admin
            .post(&held, "approve", ALICE, r#"{"reason":"ok"}"#)
            .await;
        assert_eq!(status, StatusCode::OK, "{view}");
        assert_eq!(view["state"], "approved");
        held
    };
    let (out, held) = tokio::join!(kubectl, approve);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}\n{}", sluice.log());

    let posted: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.method == http::Method::POST)
        .collect();
    assert_eq!(posted.len(), 1, "{posted:?}");
    let sent = logged_body(&err).unwrap_or_else(|| panic!("no request body logged: {err}"));
    // klog drops the body's final newline when it logs it.
    assert_eq!(
        posted[0].body,
        format!("{sent}\n").as_bytes(),
        "the body changed on the way"
    );
    let previewed: Value = serde_json::from_str(held["body"].as_str().unwrap()).unwrap();
    let logged: Value = serde_json::from_str(sent).unwrap();
    assert_eq!(previewed, logged, "the approver saw another body");
    let object: Value = serde_json::from_slice(&posted[0].body).unwrap();
    assert_eq!(object["metadata"]["name"], "x");
    assert_eq!(object["data"]["a"], "b");
    let request_id = posted[0].header("x-request-id").unwrap().to_owned();
    assert_eq!(held["request_id"], request_id.as_str());

    let approved = sluice
        .wait_for_event("approved", |e| e["decision"] == "approved")
        .await;
    assert_eq!(approved["request_id"], request_id.as_str());
    assert_eq!(approved["approved_by"], serde_json::json!(["alice"]));
    assert!(approved["approval_latency_ms"].is_u64(), "{approved}");
    let events = sluice.audit_events();
    let of_request: Vec<_> = events
        .iter()
        .filter(|e| e["request_id"] == request_id.as_str())
        .map(|e| e["decision"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(of_request[..2], ["escalate", "approved"], "{events:?}");
}

#[tokio::test]
async fn a_denied_request_tells_kubectl_who_denied_it_and_why() {
    let api = ApiServer::start().await;
    let sluice = start(&api, "").await;
    let admin = Admin::new(&sluice);
    let kubectl = Kubectl::new(&sluice.agent_kubeconfig())
        .args(&["create", "configmap", "y", "--from-literal=a=b"])
        .run();
    let deny = async {
        let held = admin.wait_for_pending(1).await.remove(0);
        let (status, view) = admin
            .post(&held, "deny", BOB, r#"{"reason": "not in prod hours"}"#)
            .await;
        assert_eq!(status, StatusCode::OK, "{view}");
        assert_eq!(view["decided_by"], "bob");
    };
    let (out, ()) = tokio::join!(kubectl, deny);
    assert!(!out.status.success());
    let err = stderr(&out);
    // kubectl create prints only the Status message; other verbs also print the reason.
    assert!(
        err.contains("approver bob denied this request") && err.contains("not in prod hours"),
        "{err}"
    );
    assert_eq!(creates(&api, "configmaps"), 0);
    let kubectl = Kubectl::new(&sluice.agent_kubeconfig())
        .args(&["delete", "pod", "web-0"])
        .run();
    let deny = async {
        let held = admin.wait_for_pending(1).await.remove(0);
        assert_eq!(held["tier"], 3);
        let (status, _) = admin
            .post(&held, "deny", ALICE, r#"{"reason": "keep it"}"#)
            .await;
        assert_eq!(status, StatusCode::OK);
    };
    let (out, ()) = tokio::join!(kubectl, deny);
    let err = stderr(&out);
    assert!(
        err.contains("Error from server (Forbidden)")
            && err.contains("approver alice denied this request")
            && err.contains("keep it"),
        "{err}"
    );
    assert!(
        !api.requests()
            .iter()
            .any(|r| r.method == http::Method::DELETE)
    );
    let rejected = sluice
        .wait_for_event("rejected", |e| e["decision"] == "rejected")
        .await;
    assert_eq!(rejected["approved_by"], serde_json::json!(["bob"]));
}

#[tokio::test]
async fn an_undecided_request_expires_with_a_clear_message() {
    let api = ApiServer::start().await;
    let sluice = start(&api, "approvals: {timeout: 2s}").await;
    let out = Kubectl::new(&sluice.agent_kubeconfig())
        .args(&["create", "configmap", "z", "--from-literal=a=b"])
        .run()
        .await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("expired after 2 seconds"),
        "{}",
        stderr(&out)
    );
    assert_eq!(creates(&api, "configmaps"), 0);
    sluice
        .wait_for_event("expired", |e| e["decision"] == "expired")
        .await;
    assert!(Admin::new(&sluice).pending().await.is_empty());
}

#[tokio::test]
async fn a_kubectl_that_goes_away_over_http2_abandons_its_request() {
    let api = ApiServer::start().await;
    let sluice = start(&api, "").await;
    let admin = Admin::new(&sluice);
    let running = Kubectl::new(&sluice.agent_kubeconfig())
        .args(&["create", "configmap", "gone", "--from-literal=a=b"])
        .spawn();
    let held = admin.wait_for_pending(1).await.remove(0);
    running.kill().await;
    admin.wait_for_pending(0).await;
    let event = sluice
        .wait_for_event("abandoned", |e| e["decision"] == "abandoned")
        .await;
    assert_eq!(event["request_id"], held["request_id"]);
    let (status, view) = admin
        .get(
            &format!("/v1/approvals/{}", held["id"].as_str().unwrap()),
            ALICE,
        )
        .await;
    assert_eq!(
        (status, view["state"].as_str()),
        (StatusCode::OK, Some("abandoned"))
    );
    assert_eq!(creates(&api, "configmaps"), 0);
}

#[tokio::test]
async fn a_client_that_goes_away_over_http1_abandons_its_request() {
    let api = ApiServer::start().await;
    let sluice = start(&api, "").await;
    let admin = Admin::new(&sluice);
    let client = crate::support::client::HttpsClient::new(&sluice.ca.cert_pem(), Version::HTTP_11);
    let request = admin::agent_create(&sluice, "gone-h1", 16);
    let task = tokio::spawn(async move { client.send(request).await });
    let held = admin.wait_for_pending(1).await.remove(0);
    task.abort();
    let _ = task.await;
    admin.wait_for_pending(0).await;
    let event = sluice
        .wait_for_event("abandoned", |e| e["decision"] == "abandoned")
        .await;
    assert_eq!(event["request_id"], held["request_id"]);
}

#[tokio::test]
async fn tier_4_needs_two_different_approvers() {
    let api = ApiServer::start().await;
    let sluice = start(&api, "approvals: {timeout: 20s, required: {4: 2}}").await;
    let admin = Admin::new(&sluice);
    let exec = Kubectl::new(&sluice.agent_kubeconfig())
        .args(&["exec", "web-0", "--", "echo", "approved", "twice"])
        .run();
    let decide = async {
        let held = admin.wait_for_pending(1).await.remove(0);
        assert_eq!(
            (held["tier"].as_u64(), held["required"].as_u64()),
            (Some(4), Some(2))
        );
        let (status, view) = admin.post(&held, "approve", ALICE, "").await;
        assert_eq!(status, StatusCode::OK, "{view}");
        assert_eq!(view["state"], "pending");
        assert_eq!(
            admin.pending().await.len(),
            1,
            "one approval of two must not release it"
        );
        let (status, view) = admin.post(&held, "approve", ALICE, "").await;
        assert_eq!(status, StatusCode::CONFLICT, "{view}");
        assert!(
            view["error"].as_str().unwrap().contains("another approver"),
            "{view}"
        );
        let (status, view) = admin.post(&held, "approve", BOB, "").await;
        assert_eq!(status, StatusCode::OK, "{view}");
        assert_eq!(view["state"], "approved");
    };
    let (out, ()) = tokio::join!(exec, decide);
    assert!(out.status.success(), "{}\n{}", stderr(&out), sluice.log());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "approved twice\n");
    let approved = sluice
        .wait_for_event("approved", |e| e["decision"] == "approved")
        .await;
    assert_eq!(approved["approved_by"], serde_json::json!(["alice", "bob"]));
}

#[tokio::test]
async fn a_held_body_over_the_limit_is_refused_with_413() {
    let api = ApiServer::start().await;
    let sluice = start(&api, "approvals: {max_body_bytes: 1024}").await;
    let client = crate::support::client::HttpsClient::new(&sluice.ca.cert_pem(), Version::HTTP_2);
    let response = client.send(admin::agent_create(&sluice, "big", 4096)).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let status: Value = serde_json::from_slice(response.body()).unwrap();
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("at most 1024 bytes (approvals.max_body_bytes)"),
        "{status}"
    );
    assert!(Admin::new(&sluice).pending().await.is_empty());
    assert_eq!(creates(&api, "configmaps"), 0);
    // Never held, so the log says deny and why, not escalate.
    let id = response.headers()["x-request-id"].to_str().unwrap();
    sluice
        .wait_for_event("complete 413", |e| {
            e["request_id"] == id && e["status"] == 413
        })
        .await;
    let decisions = decisions_of(&sluice, id);
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    assert_eq!(decisions[0]["decision"], "deny");
    assert!(
        decisions[0]["reason"]
            .as_str()
            .unwrap()
            .contains("max_body_bytes")
    );
}

/// The decision events of one request, in order.
fn decisions_of(sluice: &Sluice, request_id: &str) -> Vec<Value> {
    sluice
        .audit_events()
        .into_iter()
        .filter(|e| e["stage"] == "decision" && e["request_id"] == request_id)
        .collect()
}

#[tokio::test]
async fn a_full_queue_answers_429_with_retry_after() {
    let api = ApiServer::start().await;
    let sluice = start(&api, "approvals: {timeout: 20s, max_pending: 1}").await;
    let admin = Admin::new(&sluice);
    let running = Kubectl::new(&sluice.agent_kubeconfig())
        .args(&["create", "configmap", "first", "--from-literal=a=b"])
        .spawn();
    admin.wait_for_pending(1).await;
    let client = crate::support::client::HttpsClient::new(&sluice.ca.cert_pem(), Version::HTTP_2);
    let response = client
        .send(admin::agent_create(&sluice, "second", 16))
        .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0);
    assert_eq!(admin.pending().await.len(), 1);
    // Escalated, then refused: the log must not leave it looking held.
    let id = response.headers()["x-request-id"].to_str().unwrap();
    sluice
        .wait_for_event("complete 429", |e| {
            e["request_id"] == id && e["status"] == 429
        })
        .await;
    let decisions: Vec<_> = decisions_of(&sluice, id)
        .iter()
        .map(|e| (e["decision"].clone(), e["reason"].clone()))
        .collect();
    assert_eq!(decisions.len(), 2, "{decisions:?}");
    assert_eq!(decisions[0].0, "escalate");
    assert_eq!(decisions[1].0, "deny");
    assert!(
        decisions[1]
            .1
            .as_str()
            .unwrap()
            .contains("approval queue full"),
        "{decisions:?}"
    );
    running.kill().await;
}
