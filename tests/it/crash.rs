//! kill -9 while 64 clients are sending, three times over: after each restart the log
//! verifies (a torn tail is cut and recorded), and every request the upstream received has
//! its decision event in the log, joined on X-Request-ID.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::task::JoinSet;

use crate::support::ApiServer;
use crate::support::raw::{self, assert_still_serving, read_until_close, tls_config};
use crate::support::sluice::{Options, Sluice};

const CLIENTS: usize = 64;

/// Reads, creates and deletes, so decision events of every kind are in flight.
fn nth_request(n: usize) -> Vec<u8> {
    match n % 3 {
        0 => raw::get("/api/v1/namespaces/default/pods"),
        1 => {
            let body = format!(
                r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"c{n}"}},"data":{{"k":"v"}}}}"#
            );
            let length = format!("Content-Length: {}", body.len());
            let mut bytes = raw::request(
                "POST",
                "/api/v1/namespaces/default/configmaps",
                &[&length, "Content-Type: application/json"],
            );
            bytes.extend_from_slice(body.as_bytes());
            bytes
        }
        _ => raw::request(
            "DELETE",
            &format!("/api/v1/namespaces/default/configmaps/c{}", n - 1),
            &[],
        ),
    }
}

/// Starts `CLIENTS` tasks sending requests until sluice dies under them.
fn start_clients(sluice: &Sluice) -> JoinSet<usize> {
    let config = tls_config(&sluice.ca.cert_pem(), &[b"http/1.1"], None);
    let addr = sluice.addr;
    let mut clients = JoinSet::new();
    for client in 0..CLIENTS {
        let config = config.clone();
        clients.spawn(async move {
            let mut sent = 0;
            loop {
                let Ok(mut tls) = raw::connect(addr, config.clone()).await else {
                    return sent;
                };
                if tls
                    .write_all(&nth_request(client * 100_000 + sent))
                    .await
                    .is_err()
                {
                    return sent;
                }
                if read_until_close(&mut tls).await.is_empty() {
                    return sent;
                }
                sent += 1;
            }
        });
    }
    clients
}

fn verify(sluice: &Sluice) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("verify")
        .arg(sluice.path("audit.jsonl"))
        .output()
        .unwrap()
}

/// Waits until the upstream has received `count` requests (a signal, not a sleep).
async fn wait_for_traffic(api: &ApiServer, count: usize, round: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while api.requests().len() < count {
        assert!(
            Instant::now() < deadline,
            "round {round}: traffic never got going"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Appends a write torn by the crash (the writer never acknowledged it): cut on start.
fn tear_the_log_tail(sluice: &Sluice) {
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(sluice.path("audit.jsonl"))
        .unwrap();
    std::io::Write::write_all(&mut log, b"{\"seq\":999999,\"timestamp\":\"20").unwrap();
}

fn assert_the_log_verifies(sluice: &Sluice, round: usize) {
    let out = verify(sluice);
    assert!(
        out.status.success(),
        "round {round}: verify failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every request the upstream received has its decision event, joined on X-Request-ID.
fn assert_no_decision_lost(api: &ApiServer, events: &[serde_json::Value], round: usize) {
    let decided: HashSet<&str> = events
        .iter()
        .filter(|e| e["stage"] == "decision")
        .filter_map(|e| e["request_id"].as_str())
        .collect();
    let missing: Vec<String> = api
        .requests()
        .iter()
        .filter_map(|r| r.header("x-request-id").map(str::to_owned))
        .filter(|id| !decided.contains(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "round {round}: the upstream received {} requests with no decision event: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
}

#[tokio::test]
async fn kill_9_under_load_loses_no_decision_and_the_log_verifies() {
    let api = ApiServer::start().await;
    let mut sluice = Sluice::start_with(
        &api,
        Options {
            audit_sync: "fsync",
            ..Options::default()
        },
    )
    .await;
    let mut recovered = false;
    for round in 0..3 {
        let before = api.requests().len();
        let mut clients = start_clients(&sluice);
        // Kill once traffic is flowing well.
        wait_for_traffic(&api, before + 150, round).await;
        sluice.kill().await;
        while clients.join_next().await.is_some() {}
        if round == 1 {
            tear_the_log_tail(&sluice);
        }

        sluice = sluice.restart().await;
        assert_the_log_verifies(&sluice, round);
        let events = sluice.audit_events();
        recovered |= events.iter().any(|e| e["stage"] == "recovery");
        assert_no_decision_lost(&api, &events, round);
        assert_still_serving(&sluice).await;
    }
    assert!(recovered, "the torn tail was not recorded");
}
