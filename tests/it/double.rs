//! The apiserver double, driven by real kubectl with no sluice in between: the
//! proof that the double is faithful enough to test sluice against.

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use http::{Method, Version};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::client::HttpsClient;
use crate::support::kubeconfig::{self, Credential};
use crate::support::{ApiServer, Kubectl, kubectl};

mod streaming;

/// A started double and a kubeconfig pointing kubectl at it.
pub(super) async fn setup() -> (ApiServer, TempDir, PathBuf) {
    let server = ApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = server.write_kubeconfig(dir.path());
    (server, dir, kubeconfig)
}

/// kubectl's stdout, after asserting it succeeded.
pub(super) fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[tokio::test]
async fn get_ns_prints_the_seeded_namespaces() {
    let (_server, _dir, kubeconfig) = setup().await;
    let stdout = ok(&kubectl(&kubeconfig, &["get", "ns"]).await);
    assert!(stdout.starts_with("NAME "), "{stdout}");
    assert!(
        stdout.contains("default ") && stdout.contains("Active"),
        "{stdout}"
    );
}

#[tokio::test]
async fn get_pods_prints_the_running_seed_pod_over_http2() {
    let (server, _dir, kubeconfig) = setup().await;
    let stdout = ok(&kubectl(&kubeconfig, &["get", "pods"]).await);
    assert!(
        stdout.contains("web-0") && stdout.contains("Running"),
        "{stdout}"
    );
    let list = server
        .requests()
        .into_iter()
        .find(|r| {
            r.path_and_query
                .starts_with("/api/v1/namespaces/default/pods")
        })
        .unwrap();
    assert_eq!(list.version, Version::HTTP_2);
    assert_eq!(
        list.header("authorization"),
        Some(format!("Bearer {}", server.token()).as_str())
    );
    assert!(list.header("user-agent").unwrap().starts_with("kubectl"));
    assert!(list.header("accept").unwrap().contains("as=Table"));
}

#[tokio::test]
async fn configmap_is_created_read_and_deleted() {
    let (_server, _dir, kubeconfig) = setup().await;
    let created = ok(&kubectl(
        &kubeconfig,
        &["create", "configmap", "x", "--from-literal=a=b"],
    )
    .await);
    assert_eq!(created.trim(), "configmap/x created");

    let again = kubectl(
        &kubeconfig,
        &["create", "configmap", "x", "--from-literal=a=b"],
    )
    .await;
    assert!(String::from_utf8_lossy(&again.stderr).contains("configmaps \"x\" already exists"));

    let json: Value = serde_json::from_str(&ok(&kubectl(
        &kubeconfig,
        &["get", "configmap", "x", "-o", "json"],
    )
    .await))
    .unwrap();
    assert_eq!(json["data"], json!({"a": "b"}));
    assert_eq!(json["metadata"]["namespace"], "default");
    assert!(json["metadata"]["resourceVersion"].is_string() && json["metadata"]["uid"].is_string());

    let deleted = ok(&kubectl(&kubeconfig, &["delete", "configmap", "x"]).await);
    assert_eq!(deleted.trim(), "configmap \"x\" deleted");
    let gone = kubectl(&kubeconfig, &["get", "configmap", "x"]).await;
    assert!(!gone.status.success());
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("NotFound"),
        "{gone:?}"
    );
}

/// Where the double once differed from kube-apiserver: a JSON patch was refused, and a
/// server-side dry-run delete (kubectl sends `dryRun` in the DeleteOptions body) deleted.
#[tokio::test]
async fn json_patches_apply_and_a_dry_run_delete_keeps_the_object() {
    let (_server, _dir, kubeconfig) = setup().await;
    ok(&kubectl(
        &kubeconfig,
        &["create", "configmap", "x", "--from-literal=a=b"],
    )
    .await);
    let ops = r#"[{"op":"add","path":"/data/j","value":"2"},{"op":"remove","path":"/data/a"}]"#;
    ok(&kubectl(
        &kubeconfig,
        &["patch", "configmap", "x", "--type=json", "-p", ops],
    )
    .await);
    let failing = r#"[{"op":"test","path":"/data/j","value":"other"}]"#;
    let refused = kubectl(
        &kubeconfig,
        &["patch", "configmap", "x", "--type=json", "-p", failing],
    )
    .await;
    assert!(!refused.status.success(), "a failed test op is refused");
    let deleted = ok(&kubectl(
        &kubeconfig,
        &["delete", "configmap", "x", "--dry-run=server"],
    )
    .await);
    assert_eq!(deleted.trim(), "configmap \"x\" deleted (server dry run)");
    let data = ok(&kubectl(
        &kubeconfig,
        &["get", "configmap", "x", "-o", "jsonpath={.data}"],
    )
    .await);
    assert_eq!(data, r#"{"j":"2"}"#);
}

#[tokio::test]
async fn apply_creates_then_patches() {
    let (_server, dir, kubeconfig) = setup().await;
    let manifest = dir.path().join("cm.yaml");
    let write = |value: &str| {
        std::fs::write(
            &manifest,
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata:\n  k: {value}\n"
            ),
        )
        .unwrap()
    };
    let path = manifest.to_str().unwrap();
    write("v1");
    assert_eq!(
        ok(&kubectl(&kubeconfig, &["apply", "-f", path]).await).trim(),
        "configmap/applied created"
    );
    write("v2");
    assert_eq!(
        ok(&kubectl(&kubeconfig, &["apply", "-f", path]).await).trim(),
        "configmap/applied configured"
    );
    let data = ok(&kubectl(
        &kubeconfig,
        &["get", "cm", "applied", "-o", "jsonpath={.data.k}"],
    )
    .await);
    assert_eq!(data, "v2");
}

#[tokio::test]
async fn get_pods_watch_prints_a_pod_created_afterwards() {
    let (server, _dir, kubeconfig) = setup().await;
    let mut watch = Kubectl::new(&kubeconfig)
        .args(&["get", "pods", "-w"])
        .spawn();
    watch.line_containing("web-0").await;
    server.put_object(
        "pods",
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "late-1", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        }),
    );
    let line = tokio::time::timeout(Duration::from_secs(1), watch.line_containing("late-1"))
        .await
        .unwrap();
    assert!(line.contains("Pending"), "{line}");
    assert_eq!(server.open_watches(), 1);
    let request = server
        .requests()
        .into_iter()
        .find(|r| r.path_and_query.contains("watch="))
        .unwrap();
    assert!(
        request.path_and_query.contains("resourceVersion="),
        "{}",
        request.path_and_query
    );

    watch.kill().await;
    wait_until(|| server.open_watches() == 0).await;
}

#[tokio::test]
async fn watch_events_show_additions_and_deletions() {
    let (server, _dir, kubeconfig) = setup().await;
    let mut watch = Kubectl::new(&kubeconfig)
        .args(&["get", "configmaps", "-w", "--output-watch-events"])
        .spawn();
    // An empty list prints nothing; the first event proves the watch is open.
    ok(&kubectl(&kubeconfig, &["create", "configmap", "seen"]).await);
    assert!(watch.line_containing("seen").await.starts_with("ADDED"));
    assert!(server.delete_object("configmaps", "default", "seen"));
    assert!(watch.line_containing("seen").await.starts_with("DELETED"));
}

#[tokio::test]
async fn typed_clients_create_secrets_and_namespaces() {
    let (_server, _dir, kubeconfig) = setup().await;
    ok(&kubectl(
        &kubeconfig,
        &[
            "create",
            "secret",
            "generic",
            "s",
            "--from-literal=password=hunter2",
        ],
    )
    .await);
    let data = ok(&kubectl(
        &kubeconfig,
        &["get", "secret", "s", "-o", "jsonpath={.data.password}"],
    )
    .await);
    assert_eq!(data, "aHVudGVyMg==");
    ok(&kubectl(&kubeconfig, &["create", "namespace", "team-a"]).await);
    ok(&kubectl(
        &kubeconfig,
        &[
            "create",
            "configmap",
            "c",
            "-n",
            "team-a",
            "--from-literal=k=v",
        ],
    )
    .await);
    let listed = ok(&kubectl(&kubeconfig, &["get", "cm", "-A"]).await);
    assert!(
        listed.contains("team-a") && listed.contains(" c "),
        "{listed}"
    );
}

#[tokio::test]
async fn logs_prints_the_pod_log() {
    let (_server, _dir, kubeconfig) = setup().await;
    let stdout = ok(&kubectl(&kubeconfig, &["logs", "web-0"]).await);
    assert_eq!(stdout, "log line 1\nlog line 2\nlog line 3\n");
    let followed = ok(&kubectl(&kubeconfig, &["logs", "-f", "web-0"]).await);
    assert_eq!(followed, stdout);
}

#[tokio::test]
async fn wrong_token_is_unauthorized() {
    let (server, dir, _) = setup().await;
    let kubeconfig = kubeconfig::write(
        dir.path(),
        &server.url(),
        &server.ca_pem(),
        Credential::Token("wrong"),
    );
    // Discovery fails first; kubectl 1.32 words that 401 generically.
    let out = kubectl(&kubeconfig, &["get", "pods"]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: You must be logged in to the server"),
        "{stderr}"
    );
    // A plain request shows the Status message itself.
    let out = kubectl(
        &kubeconfig,
        &["get", "--raw", "/api/v1/namespaces/default/pods"],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: You must be logged in to the server (Unauthorized)"),
        "{stderr}"
    );
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.header("authorization") == Some("Bearer wrong"))
    );
}

#[tokio::test]
async fn requests_record_what_arrived_over_http1_and_http2() {
    let server = ApiServer::start().await;
    let token = format!("Bearer {}", server.token());
    let url = format!("{}/api/v1/namespaces/default/pods?limit=1", server.url());
    for version in [Version::HTTP_11, Version::HTTP_2] {
        let client = HttpsClient::new(&server.ca_pem(), version);
        let headers = [
            ("authorization", token.as_str()),
            ("x-request-id", "sl_test"),
            ("audit-id", "sl_test"),
            ("impersonate-user", "bob"),
        ];
        let response = client.get(&url, &headers).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), version);
        let list: Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(list["kind"], "PodList");
        assert!(list["metadata"]["resourceVersion"].is_string());

        let recorded = server.requests().pop().unwrap();
        assert_eq!(
            (&recorded.method, recorded.version),
            (&Method::GET, version)
        );
        assert_eq!(
            recorded.path_and_query,
            "/api/v1/namespaces/default/pods?limit=1"
        );
        for (name, value) in headers {
            assert_eq!(recorded.header(name), Some(value));
        }
    }
    let unauthenticated = HttpsClient::new(&server.ca_pem(), Version::HTTP_2)
        .get(&url, &[])
        .await;
    assert_eq!(unauthenticated.status(), 401);
    let status: Value = serde_json::from_slice(unauthenticated.body()).unwrap();
    assert_eq!(
        (
            status["kind"].as_str(),
            status["reason"].as_str(),
            status["code"].as_u64()
        ),
        (Some("Status"), Some("Unauthorized"), Some(401))
    );
}

#[tokio::test]
async fn response_delay_holds_requests() {
    let server = ApiServer::start().await;
    server.set_response_delay(Duration::from_millis(300));
    let client = HttpsClient::new(&server.ca_pem(), Version::HTTP_2);
    let started = std::time::Instant::now();
    let token = format!("Bearer {}", server.token());
    let response = client
        .get(
            &format!("{}/version", server.url()),
            &[("authorization", &token)],
        )
        .await;
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

/// Polls a condition the double exposes (no event to await), for up to 5 s.
pub(super) async fn wait_until(condition: impl Fn() -> bool) {
    for _ in 0..500 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not met within 5 s");
}
