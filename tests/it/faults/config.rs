//! Policy and credentials replaced by garbage, deleted, or made unreadable while sluice
//! serves: the last good file stays in force, the error is logged and counted, and a good
//! file later is picked up again.

use super::{eventually, metrics, sample};
use crate::hardening::T0_ONLY;
use crate::support::ApiServer;
use crate::support::raw::{self, assert_still_serving, exchange, status};
use crate::support::sluice::Sluice;

const SECRET: &str = "/api/v1/namespaces/default/secrets";
const POLICY_ERRORS: &str = "sluice_policy_reloads_total{result=\"error\"}";
const POLICY_OK: &str = "sluice_policy_reloads_total{result=\"ok\"}";
const CREDENTIAL_ERRORS: &str = "sluice_credentials_reloads_total{result=\"error\"}";
const CREDENTIAL_OK: &str = "sluice_credentials_reloads_total{result=\"ok\"}";

/// Puts a directory where the file was: unreadable even for root (who ignores chmod 000).
fn make_unreadable(path: &std::path::Path) {
    std::fs::remove_file(path).unwrap();
    std::fs::create_dir(path).unwrap();
}

/// Replaces the file in one step (a new file renamed over it), so the watcher sees the old
/// contents or the new, never the truncated file a write in place passes through: that
/// is reported as an error of its own, and a test waiting for the new contents' error
/// could take it for that one and go on before the new contents were ever read.
fn replace(path: &std::path::Path, contents: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn restore(path: &std::path::Path, contents: &str) {
    if path.is_dir() {
        std::fs::remove_dir(path).unwrap();
    }
    replace(path, contents);
}

/// Restores a good file and waits until sluice has loaded it (so the next error is new).
async fn restore_loaded(sluice: &Sluice, path: &std::path::Path, contents: &str, ok: &str) {
    let before = sample(&metrics(sluice).await, ok);
    restore(path, contents);
    eventually("the good file is loaded", sluice, || async {
        sample(&metrics(sluice).await, ok) > before
    })
    .await;
}

#[tokio::test]
async fn a_broken_policy_file_keeps_the_last_good_policy() {
    let api = ApiServer::start().await;
    let sluice = Sluice::start(&api).await;
    let policy = sluice.path("policy.yaml");
    let good = std::fs::read_to_string(&policy).unwrap();
    let mut errors = 0.0;
    for (what, breakage) in [
        ("garbage", "agents: [\u{0}{{{ not yaml"),
        ("unknown key", "default: allow\nmode: yolo\n"),
        ("deleted", ""),
        ("unreadable", ""),
    ] {
        match what {
            "deleted" => std::fs::remove_file(&policy).unwrap(),
            "unreadable" => {
                restore_loaded(&sluice, &policy, &good, POLICY_OK).await;
                make_unreadable(&policy);
            }
            _ => replace(&policy, breakage),
        }
        eventually(&format!("a {what} policy is counted"), &sluice, || async {
            sample(&metrics(&sluice).await, POLICY_ERRORS) > errors
        })
        .await;
        errors = sample(&metrics(&sluice).await, POLICY_ERRORS);
        // The last good policy (allow everything) still decides.
        let text = exchange(&sluice, &raw::get(SECRET)).await;
        assert_eq!(status(&text), 200, "{what}: {text}");
    }
    assert!(
        sluice.log().contains("keeping the last good one"),
        "{}",
        sluice.log()
    );
    // A good file again is picked up: reads only, so secrets are now refused.
    restore(&policy, T0_ONLY);
    eventually("the good policy is back", &sluice, || async {
        status(&exchange(&sluice, &raw::get(SECRET)).await) == 403
    })
    .await;
    assert_still_serving(&sluice).await;
}

#[tokio::test]
async fn broken_credentials_keep_the_last_good_agents() {
    let api = ApiServer::start().await;
    let sluice = Sluice::start(&api).await;
    let credentials = sluice.path("credentials.yaml");
    let good = std::fs::read_to_string(&credentials).unwrap();
    let mut errors = 0.0;
    for what in ["garbage", "deleted", "unreadable"] {
        match what {
            "garbage" => replace(&credentials, "agents: {{{\u{0}"),
            "deleted" => std::fs::remove_file(&credentials).unwrap(),
            _ => {
                restore_loaded(&sluice, &credentials, &good, CREDENTIAL_OK).await;
                make_unreadable(&credentials);
            }
        }
        eventually(
            &format!("{what} credentials are counted"),
            &sluice,
            || async { sample(&metrics(&sluice).await, CREDENTIAL_ERRORS) > errors },
        )
        .await;
        errors = sample(&metrics(&sluice).await, CREDENTIAL_ERRORS);
        assert_still_serving(&sluice).await;
    }
    assert!(
        sluice.log().contains("keeping the last good ones"),
        "{}",
        sluice.log()
    );
    // Good credentials without the agent: its token stops working, so reloads still happen.
    restore(&credentials, "agents: []\napprovers: []\n");
    eventually("the agent is removed", &sluice, || async {
        status(&exchange(&sluice, &raw::get("/api/v1/namespaces/default/pods")).await) == 401
    })
    .await;
    restore(&credentials, &good);
    eventually("the agent is back", &sluice, || async {
        status(&exchange(&sluice, &raw::get("/api/v1/namespaces/default/pods")).await) == 200
    })
    .await;
}
