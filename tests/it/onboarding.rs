//! The workstation path end to end: `sluice init`, `sluice serve`, `sluice agent add` while it
//! runs, and kubectl through the kubeconfig that `agent add` printed.

mod commands;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::sluice::spawn;
use crate::support::{ApiServer, kubectl};

fn sluice(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sluice {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Points init's config at the test apiserver, on free ports, with a policy that allows
/// reads for `cc` and `cc-cert`.
fn adapt(dir: &Path, api: &ApiServer) {
    std::fs::write(dir.join("upstream-ca.crt"), api.ca_pem()).unwrap();
    std::fs::write(dir.join("upstream-token"), api.token()).unwrap();
    let config = std::fs::read_to_string(dir.join("sluice.yaml")).unwrap();
    let config = config
        .replace("listen: 127.0.0.1:8443", "listen: 127.0.0.1:0")
        .replace(
            "admin: {listen: 127.0.0.1:9443}",
            "admin: {listen: 127.0.0.1:0}",
        )
        + &format!(
            "upstream: {{server: \"{}\", ca: upstream-ca.crt, token_file: upstream-token}}\n",
            api.url()
        );
    std::fs::write(dir.join("sluice.yaml"), config).unwrap();
    let policy = "default: deny\nagents:\n  cc:\n    rules:\n      - namespaces: [\"*\"]\n        tiers: {0: allow}\n  cc-cert:\n    rules:\n      - namespaces: [\"*\"]\n        tiers: {0: allow}\n";
    std::fs::write(dir.join("policy.yaml"), policy).unwrap();
}

/// Retries until the running sluice has reloaded its credentials and accepts `kubeconfig`.
async fn get_pods_once_accepted(kubeconfig: &Path) -> String {
    for _ in 0..100 {
        let out = kubectl(kubeconfig, &["get", "pods", "-n", "default"]).await;
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the new agent was never accepted");
}

#[tokio::test]
async fn init_serve_agent_add_then_kubectl_works() {
    let api = ApiServer::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sluice");
    sluice(&["init", "--dir", dir.to_str().unwrap()]);
    adapt(&dir, &api);
    sluice(&[
        "check-config",
        "--config",
        dir.join("sluice.yaml").to_str().unwrap(),
    ]);
    let (_child, addr, _admin) = spawn(&dir).await;
    let server = format!("https://127.0.0.1:{}", addr.port());
    let config = dir.join("sluice.yaml");
    let config = config.to_str().unwrap();

    let token_kc = tmp.path().join("cc.kubeconfig");
    sluice(&[
        "agent",
        "add",
        "cc",
        "--config",
        config,
        "--server",
        &server,
        "--out",
        token_kc.to_str().unwrap(),
    ]);
    assert!(get_pods_once_accepted(&token_kc).await.contains("web-0"));

    let cert_kc = tmp.path().join("cc-cert.kubeconfig");
    sluice(&[
        "agent",
        "add",
        "cc-cert",
        "--cert",
        "--config",
        config,
        "--server",
        &server,
        "--out",
        cert_kc.to_str().unwrap(),
    ]);
    assert!(get_pods_once_accepted(&cert_kc).await.contains("web-0"));

    let log = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap();
    assert!(log.contains("\"agent\":\"cc\",\"auth\":\"token\""), "{log}");
    assert!(
        log.contains("\"agent\":\"cc-cert\",\"auth\":\"mtls\""),
        "{log}"
    );
    // The audit log that init's setup produced verifies.
    sluice(&["verify", dir.join("audit.jsonl").to_str().unwrap()]);
}
