//! The proxy core end to end: real kubectl → sluice → the test apiserver.

use std::time::Duration;

use http::Version;

use crate::support::sluice::{AGENT_TOKEN, Options, Sluice};
use crate::support::{ApiServer, Kubectl, TestCa, kubectl};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn kubectl_reads_through_sluice_and_upstream_sees_only_sluices_identity() {
    let api = ApiServer::start().await;
    let sluice = Sluice::start(&api).await;
    let out = kubectl(&sluice.agent_kubeconfig(), &["get", "pods"]).await;
    assert!(out.status.success(), "{}\n{}", stderr(&out), sluice.log());
    assert!(stdout(&out).contains("web-0"), "{}", stdout(&out));

    let requests = api.requests();
    let pods = requests
        .iter()
        .find(|r| {
            r.path_and_query
                .starts_with("/api/v1/namespaces/default/pods")
        })
        .expect("the pod list reached the upstream");
    assert_eq!(
        pods.version,
        Version::HTTP_2,
        "the upstream speaks HTTP/2, so sluice does"
    );
    assert_eq!(
        pods.header("authorization"),
        Some(format!("Bearer {}", api.token()).as_str())
    );
    let id = pods.header("x-request-id").expect("X-Request-ID set");
    assert!(id.starts_with("sl_"), "{id}");
    assert_eq!(
        pods.header("audit-id"),
        Some(id),
        "Audit-ID equals X-Request-ID"
    );
    for r in &requests {
        let auth = r.header("authorization").unwrap_or_default();
        assert!(!auth.contains(AGENT_TOKEN), "agent token leaked upstream");
        assert!(
            r.headers
                .keys()
                .all(|k| !k.as_str().starts_with("impersonate-"))
        );
    }
    // The agent got the same id, and the audit log joins on it.
    let event = sluice
        .wait_for_event("complete of the pod list", |e| {
            e["stage"] == "complete" && e["request_id"] == id
        })
        .await;
    assert_eq!(event["agent"], "claude-code");
    assert_eq!(event["status"], 200);
}

#[tokio::test]
async fn kubectl_creates_and_deletes_through_sluice() {
    let api = ApiServer::start().await;
    let sluice = Sluice::start(&api).await;
    let kc = sluice.agent_kubeconfig();
    let out = kubectl(&kc, &["create", "configmap", "cfg", "--from-literal=a=b"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = kubectl(
        &kc,
        &["get", "configmap", "cfg", "-o", "jsonpath={.data.a}"],
    )
    .await;
    assert_eq!(stdout(&out), "b", "{}", stderr(&out));
    let out = kubectl(&kc, &["delete", "configmap", "cfg"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = kubectl(&kc, &["get", "configmap", "cfg"]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("NotFound") || stderr(&out).contains("not found"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn a_watch_event_reaches_the_agent_through_sluice() {
    let api = ApiServer::start().await;
    let sluice = Sluice::start(&api).await;
    let kc = sluice.agent_kubeconfig();
    let mut watch = Kubectl::new(&kc).args(&["get", "configmaps", "-w"]).spawn();
    // Wait until the watch is open at the upstream, then make a change.
    for _ in 0..400 {
        if api.open_watches() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        api.open_watches() > 0,
        "watch never opened; {}",
        sluice.log()
    );
    let out = kubectl(
        &kc,
        &["create", "configmap", "watched", "--from-literal=x=y"],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let line = tokio::time::timeout(Duration::from_secs(10), watch.line_containing("watched"))
        .await
        .expect("the watch event arrived within 10s");
    assert!(line.contains("watched"));
}

/// An HTTP/2 connection carries at most the apiserver's stream limit at once: more open
/// watches than one connection can carry must all open (on more connections), and must not
/// take the streams ordinary requests need.
#[tokio::test]
async fn open_watches_past_the_stream_limit_all_open_and_do_not_hold_up_other_requests() {
    let limit = 4;
    let api = ApiServer::start_with_stream_limit(Some(limit)).await;
    let sluice = Sluice::start(&api).await;
    let client = crate::support::client::HttpsClient::new(&sluice.ca.cert_pem(), Version::HTTP_2);
    let auth = format!("Bearer {AGENT_TOKEN}");
    // Four connections' worth.
    let watches = 4 * limit as usize;
    let url = format!(
        "{}/api/v1/namespaces/default/configmaps?watch=1",
        sluice.url()
    );
    let opening: Vec<_> = (0..watches)
        .map(|_| {
            let request = http::Request::get(&url)
                .header("authorization", &auth)
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap();
            tokio::spawn({
                let client = client.clone();
                async move { client.open(request).await }
            })
        })
        .collect();
    for _ in 0..400 {
        if api.open_watches() >= watches {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        api.open_watches() >= watches,
        "only {} watches opened; {}",
        api.open_watches(),
        sluice.log()
    );
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        kubectl(&sluice.agent_kubeconfig(), &["get", "configmaps"]),
    )
    .await
    .expect("a plain get is answered while the watches hold their streams");
    assert!(out.status.success(), "{}", stderr(&out));
    drop(opening);
}

#[tokio::test]
async fn exec_works_over_websocket_and_spdy() {
    let api = ApiServer::start().await;
    let sluice = Sluice::start(&api).await;
    let kc = sluice.agent_kubeconfig();
    let out = kubectl(&kc, &["exec", "web-0", "--", "echo", "hello", "sluice"]).await;
    assert!(
        out.status.success(),
        "websocket exec: {}\n{}",
        stderr(&out),
        sluice.log()
    );
    assert_eq!(stdout(&out), "hello sluice\n");
    let out = Kubectl::new(&kc)
        .args(&["exec", "web-0", "--", "echo", "over", "spdy"])
        .env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")
        .run()
        .await;
    assert!(
        out.status.success(),
        "spdy exec: {}\n{}",
        stderr(&out),
        sluice.log()
    );
    assert_eq!(stdout(&out), "over spdy\n");
    let out = Kubectl::new(&kc)
        .args(&["exec", "-i", "web-0", "--", "cat"])
        .stdin(b"piped through\n")
        .run()
        .await;
    assert!(out.status.success(), "exec -i: {}", stderr(&out));
    assert_eq!(stdout(&out), "piped through\n");
    // The upgrade is recorded with the bytes that crossed it.
    sluice
        .wait_for_event("complete of an exec", |e| {
            e["stage"] == "complete" && e["subresource"] == "exec" && e["bytes"].as_u64() > Some(0)
        })
        .await;
}

#[tokio::test]
async fn a_wrong_token_is_unauthorized_and_nothing_is_forwarded() {
    let api = ApiServer::start().await;
    let sluice = Sluice::start(&api).await;
    let out = kubectl(
        &sluice.kubeconfig("sluice_not-a-real-token"),
        &["get", "pods"],
    )
    .await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("Unauthorized") || err.contains("must be logged in"),
        "{err}"
    );
    assert!(
        api.requests().is_empty(),
        "upstream received {:?}",
        api.requests()
    );
    let event = sluice
        .wait_for_event("decision for the bad token", |e| {
            e["stage"] == "decision" && e["decision"] == "deny"
        })
        .await;
    assert!(event["agent"].is_null());
}

#[tokio::test]
async fn impersonation_is_refused_before_anything_is_forwarded() {
    let api = ApiServer::start().await;
    let sluice = Sluice::start(&api).await;
    let kc = sluice.agent_kubeconfig();
    // kubectl's discovery client prints "unknown" for any refused discovery call, so the
    // message is checked on a raw request; the refusal itself on both.
    let out = kubectl(&kc, &["get", "pods", "--as", "system:admin"]).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("Forbidden"), "{}", stderr(&out));
    let out = kubectl(
        &kc,
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/default/pods",
            "--as",
            "system:admin",
        ],
    )
    .await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("Impersonate-* headers are not allowed"),
        "{}",
        stderr(&out)
    );
    assert!(
        api.requests().is_empty(),
        "upstream received {:?}",
        api.requests()
    );
}

#[tokio::test]
async fn a_client_certificate_identifies_an_agent() {
    let api = ApiServer::start().await;
    let spiffe = "spiffe://sluice.local/agent/claude-code";
    let agents_ca = TestCa::new("agents CA");
    let sluice = Sluice::start_with(
        &api,
        Options {
            cert_agents: vec![("claude-code".into(), spiffe.into())],
            agents: vec![],
            agents_ca: Some(agents_ca.cert_pem()),
            ..Options::default()
        },
    )
    .await;
    let out = kubectl(
        &sluice.cert_kubeconfig(&agents_ca, spiffe),
        &["get", "pods"],
    )
    .await;
    assert!(out.status.success(), "{}\n{}", stderr(&out), sluice.log());
    let event = sluice
        .wait_for_event("an mtls decision", |e| {
            e["stage"] == "decision" && e["auth"] == "mtls"
        })
        .await;
    assert_eq!(event["agent"], "claude-code");
    // A certificate from another CA is not accepted.
    let other = TestCa::new("someone else");
    let out = kubectl(&sluice.cert_kubeconfig(&other, spiffe), &["get", "pods"]).await;
    assert!(!out.status.success());
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_502_that_names_it() {
    let api = ApiServer::start().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let sluice = Sluice::start_with(&api, Options {
        upstream: Some(format!(
            "upstream: {{server: \"https://127.0.0.1:{port}\", ca: upstream-ca.crt, token_file: upstream-token}}\n"
        )),
        ..Options::default()
    })
    .await;
    let out = kubectl(
        &sluice.agent_kubeconfig(),
        &["get", "--raw", "/api/v1/namespaces/default/pods"],
    )
    .await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!("upstream https://127.0.0.1:{port} is unreachable")),
        "{err}"
    );
    let event = sluice
        .wait_for_event("a 502 completion", |e| {
            e["stage"] == "complete" && e["status"] == 502
        })
        .await;
    assert!(
        event["reason"].as_str().unwrap().contains("upstream"),
        "{event}"
    );
}

#[tokio::test]
async fn a_server_url_with_a_path_prefix_is_kept_before_every_path() {
    let api = ApiServer::start().await;
    // As Rancher serves a downstream cluster: https://rancher/k8s/clusters/c-1.
    let sluice = Sluice::start_with(&api, Options::with_upstream(format!(
        "upstream: {{server: \"{}/k8s/clusters/c-1/\", ca: upstream-ca.crt, token_file: upstream-token}}\n",
        api.url()
    )))
    .await;
    // The double knows no such prefix and answers 404; what matters is what it was asked.
    let _ = kubectl(
        &sluice.agent_kubeconfig(),
        &["get", "--raw", "/api/v1/namespaces/default/pods?limit=5"],
    )
    .await;
    let paths: Vec<String> = api
        .requests()
        .into_iter()
        .map(|r| r.path_and_query)
        .collect();
    assert!(
        paths.contains(&"/k8s/clusters/c-1/api/v1/namespaces/default/pods?limit=5".to_owned()),
        "{paths:?}"
    );
    // sluice's own probes (/version) keep the prefix too.
    assert!(
        paths.iter().all(|p| p.starts_with("/k8s/clusters/c-1/")),
        "{paths:?}"
    );
}
