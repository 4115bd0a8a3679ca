//! More of the data path end to end: port-forward, both HTTP versions, what a refused agent
//! reads, observe mode, live credential changes, a graceful stop, onboarding, and the
//! allocator's background thread.

use std::time::Duration;

use http::Version;

use crate::support::client::HttpsClient;
use crate::support::kubectl::assert_port_forward_echoes;
use crate::support::sluice::{AGENT_TOKEN, Options, Sluice};
use crate::support::{ApiServer, Kubectl, kubectl};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Allows reads everywhere and writes only in `dev-*`; deletes escalate; the rest is denied.
const SCOPED: &str = "default: deny
agents:
  claude-code:
    rules:
      - namespaces: [\"dev-*\"]
        tiers: {0: allow, 1: allow, 2: allow, 3: deny, 4: deny}
      - namespaces: [\"*\"]
        tiers: {0: allow}
";

#[tokio::test]
async fn port_forward_works_over_spdy_and_the_websocket_tunnel() {
    let api = ApiServer::start().await;
    let sluice = Sluice::start(&api).await;
    let kc = sluice.agent_kubeconfig();
    assert_port_forward_echoes(&kc, "false").await;
    assert_port_forward_echoes(&kc, "true").await;
    let forwards = sluice
        .audit_events()
        .into_iter()
        .filter(|e| e["stage"] == "decision" && e["subresource"] == "portforward")
        .count();
    assert_eq!(forwards, 2, "one decision per port-forward session");
}

#[tokio::test]
async fn http1_and_http2_clients_both_work_and_get_the_request_id() {
    let api = ApiServer::start().await;
    let sluice = Sluice::start(&api).await;
    let bearer = format!("Bearer {AGENT_TOKEN}");
    for version in [Version::HTTP_11, Version::HTTP_2] {
        let client = HttpsClient::new(&sluice.ca.cert_pem(), version);
        let url = format!("{}/api/v1/namespaces/default/pods/web-0", sluice.url());
        let response = client
            .get(
                &url,
                &[("authorization", &bearer), ("x-request-id", "agent-chosen")],
            )
            .await;
        assert_eq!(response.status(), 200, "{version:?}");
        assert_eq!(response.version(), version);
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            id.starts_with("sl_"),
            "the agent's own id is replaced: {id}"
        );
        let upstream = api.requests().into_iter().last().unwrap();
        assert_eq!(upstream.header("x-request-id"), Some(id.as_str()));
        assert_eq!(upstream.header("audit-id"), Some(id.as_str()));
        let pod: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(pod["metadata"]["name"], "web-0");
    }
}

#[tokio::test]
async fn a_denied_agent_reads_the_tier_reason_and_rule() {
    let api = ApiServer::start().await;
    let sluice = Sluice::start_with(&api, Options::with_policy(SCOPED)).await;
    let kc = sluice.agent_kubeconfig();
    let out = kubectl(&kc, &["delete", "pod", "web-0"]).await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(
            "tier 3 (delete of pods) is not allowed for agent claude-code in namespace default"
        ),
        "{err}"
    );
    assert!(
        !api.requests()
            .iter()
            .any(|r| r.method == http::Method::DELETE),
        "nothing deleted upstream"
    );
    let event = sluice
        .wait_for_event("the deny decision", |e| {
            e["stage"] == "decision" && e["decision"] == "deny"
        })
        .await;
    assert_eq!(event["tier"], 3);
    assert_eq!(event["reason"], "delete of pods");
    // Reads are still fine, and writes in a dev namespace too.
    assert!(kubectl(&kc, &["get", "pods"]).await.status.success());
    let out = kubectl(&kc, &["create", "namespace", "dev-1"]).await;
    assert!(!out.status.success(), "a namespace write is tier 4");
}

#[tokio::test]
async fn observe_mode_records_the_would_be_decision_but_lets_it_through() {
    let api = ApiServer::start().await;
    let policy = format!("mode: observe\n{SCOPED}");
    let sluice = Sluice::start_with(
        &api,
        Options {
            policy,
            ..Options::default()
        },
    )
    .await;
    let out = kubectl(
        &sluice.agent_kubeconfig(),
        &["delete", "configmap", "missing"],
    )
    .await;
    // It reached the upstream (which says NotFound) instead of being refused by sluice.
    assert!(
        stderr(&out).contains("not found") || stderr(&out).contains("NotFound"),
        "{}",
        stderr(&out)
    );
    assert!(
        api.requests()
            .iter()
            .any(|r| r.method == http::Method::DELETE)
    );
    let event = sluice
        .wait_for_event("the observed deny", |e| {
            e["stage"] == "decision" && e["verb"] == "delete"
        })
        .await;
    assert_eq!(
        event["decision"], "deny",
        "the log says what enforce mode would have done"
    );
}

#[tokio::test]
async fn a_new_agent_and_a_removed_agent_take_effect_without_restart() {
    let api = ApiServer::start().await;
    let sluice = Sluice::start(&api).await;
    let newcomer = "sluice_newcomer-token";
    let kc = sluice.kubeconfig(newcomer);
    assert!(
        !kubectl(&kc, &["get", "--raw", "/version"])
            .await
            .status
            .success()
    );
    let creds = format!(
        "agents:\n  - {{name: claude-code, token_sha256: \"{}\"}}\n",
        sluice::authn::token_sha256(newcomer)
    );
    let tmp = sluice.path("credentials.yaml.new");
    std::fs::write(&tmp, creds).unwrap();
    std::fs::rename(&tmp, sluice.path("credentials.yaml")).unwrap();
    let mut accepted = false;
    for _ in 0..100 {
        if kubectl(&kc, &["get", "--raw", "/version"])
            .await
            .status
            .success()
        {
            accepted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        accepted,
        "the new token was never accepted; log:\n{}",
        sluice.log()
    );
    // The old token was removed by the same change.
    let out = kubectl(&sluice.agent_kubeconfig(), &["get", "--raw", "/version"]).await;
    assert!(!out.status.success());
}

/// Two kubectl runs are two connections: with more than one agent thread (any machine with
/// two CPUs) the second is served by another thread than the first, and each thread lets
/// its own in-flight requests finish. (A thread that closed its connections at the stop
/// instead would cut the second: checked.)
#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish_on_every_thread() {
    let api = ApiServer::start().await;
    let sluice = Sluice::start(&api).await;
    let kc = sluice.agent_kubeconfig();
    let mut requests = Vec::new();
    for (n, delay) in [(1, 1000), (2, 2500)] {
        // The double reads the delay as each request arrives.
        api.set_response_delay(Duration::from_millis(delay));
        let path = "/api/v1/namespaces/default/pods/web-0";
        requests.push(tokio::spawn(
            Kubectl::new(&kc).args(&["get", "--raw", path]).run(),
        ));
        // Go on once it is in flight at the upstream.
        for _ in 0..300 {
            let in_flight = api
                .requests()
                .iter()
                .filter(|r| r.path_and_query.contains("/pods/web-0"))
                .count();
            if in_flight == n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let status = sluice.terminate().await;
    assert!(status.success(), "sluice exited with {status:?}");
    for request in requests {
        let out = request.await.unwrap();
        assert!(
            out.status.success(),
            "an in-flight request was cut: {}",
            stderr(&out)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("web-0"));
    }
}

#[tokio::test]
async fn logs_follow_and_large_lists_stream_through() {
    let api = ApiServer::start().await;
    for i in 0..400 {
        api.put_object(
            "configmaps",
            serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": format!("cm-{i:03}"), "namespace": "default"},
                "data": {"payload": "x".repeat(512)}
            }),
        );
    }
    let sluice = Sluice::start(&api).await;
    let kc = sluice.agent_kubeconfig();
    let out = kubectl(&kc, &["get", "configmaps", "-o", "name"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 400);
    let mut logs = Kubectl::new(&kc).args(&["logs", "-f", "web-0"]).spawn();
    let first = logs
        .next_line()
        .await
        .expect("a first log line arrives while following");
    assert!(!first.is_empty());
    logs.kill().await;
    let event = sluice
        .wait_for_event("the big list's completion", |e| {
            e["stage"] == "complete" && e["resource"] == "configmaps" && e["verb"] == "list"
        })
        .await;
    assert!(event["bytes"].as_u64().unwrap() > 400 * 512, "{event}");
}

#[tokio::test]
async fn impersonation_mode_tells_the_apiserver_which_agent_it_is() {
    let api = ApiServer::start().await;
    let upstream = format!(
        "upstream: {{server: \"{}\", ca: upstream-ca.crt, token_file: upstream-token, impersonate: true}}\n",
        api.url()
    );
    let sluice = Sluice::start_with(&api, Options::with_upstream(upstream)).await;
    let out = kubectl(
        &sluice.agent_kubeconfig(),
        &["get", "--raw", "/api/v1/namespaces"],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let seen = api.requests().into_iter().last().unwrap();
    assert_eq!(
        seen.header("impersonate-user"),
        Some("sluice:agent:claude-code")
    );
    assert_eq!(seen.header("impersonate-group"), Some("sluice:agents"));
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {}", api.token()).as_str())
    );
}

/// jemalloc's background thread gives memory freed after a burst back to the system: one
/// for the whole process, unless the operator's jemalloc options say otherwise.
#[tokio::test]
async fn one_allocator_thread_returns_freed_memory_unless_configured_otherwise() {
    let api = ApiServer::start().await;
    let start = |conf: Option<&'static str>| {
        let env = conf.map(|conf| ("_RJEM_MALLOC_CONF", conf)).into_iter();
        Sluice::start_with(
            &api,
            Options {
                env: env.collect(),
                ..Options::default()
            },
        )
    };

    let sluice = start(None).await;
    assert_eq!(
        purging_threads_once_started(sluice.pid()).await,
        1,
        "one jemalloc background thread"
    );

    let sluice = start(Some("background_thread:false")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        purging_threads(sluice.pid()),
        0,
        "the operator's setting holds"
    );

    // Naming only the limit leaves the thread on, within that limit.
    let sluice = start(Some("max_background_threads:2")).await;
    let threads = purging_threads_once_started(sluice.pid()).await;
    assert!(
        (1..=2).contains(&threads),
        "{threads} jemalloc background threads under max_background_threads:2"
    );
}

/// [`purging_threads`], waiting up to 5 s for the first: jemalloc names a thread from the
/// thread itself, just after starting it.
async fn purging_threads_once_started(pid: u32) -> usize {
    for _ in 0..100 {
        let threads = purging_threads(pid);
        if threads != 0 {
            return threads;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    purging_threads(pid)
}

/// The threads of process `pid` named as jemalloc names its background threads.
fn purging_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "jemalloc_bg_thd")
        .count()
}
