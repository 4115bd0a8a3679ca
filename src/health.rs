//! `/healthz` and `/readyz` for the admin listener.
//!
//! Liveness says only that the process answers: restarting sluice because the apiserver is
//! down would not help. Readiness runs every [`Check`] at once, each bounded by a timeout,
//! and answers 200 only if all pass, with a JSON body listing each one so an operator (or
//! `kubectl describe pod`) sees which failed:
//!
//! ```json
//! {"status":"unavailable","checks":[{"name":"upstream","ok":false,"error":"..."},{"name":"audit","ok":true}]}
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use serde::Serialize;

/// What a probe returns: `Err` says what is wrong.
pub type ProbeResult = Result<(), String>;

type ProbeFuture = Pin<Box<dyn Future<Output = ProbeResult> + Send>>;
type Probe = Box<dyn Fn() -> ProbeFuture + Send + Sync>;

/// One named readiness condition.
pub struct Check {
    name: &'static str,
    probe: Probe,
}

#[derive(Debug, Serialize)]
struct CheckReport<'a> {
    name: &'a str,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct Report<'a> {
    status: &'static str,
    checks: Vec<CheckReport<'a>>,
}

impl Check {
    /// A check from any async probe.
    pub fn new<F, Fut>(name: &'static str, probe: F) -> Check
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ProbeResult> + Send + 'static,
    {
        Check {
            name,
            probe: Box::new(move || Box::pin(probe())),
        }
    }

    /// Passes when a TCP connection to `authority` (`host:port`) opens within `timeout`.
    /// Cheap and credential-free: it proves the upstream is reachable, not that it is
    /// healthy (the apiserver's own readiness is its business).
    pub fn tcp(name: &'static str, authority: String, timeout: Duration) -> Check {
        let authority: Arc<str> = authority.into();
        Check::new(name, move || {
            let authority = authority.clone();
            async move {
                match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&*authority))
                    .await
                {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(format!("cannot connect to {authority}: {e}")),
                    Err(_) => Err(format!("no connection to {authority} within {timeout:?}")),
                }
            }
        })
    }
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Check").field("name", &self.name).finish()
    }
}

/// `/healthz`: the process is up and serving the admin listener.
pub fn healthz() -> (StatusCode, String) {
    (StatusCode::OK, "ok".to_owned())
}

/// `/readyz`: 200 when every check passes within `timeout`, else 503. The body is JSON
/// (`Content-Type: application/json`).
pub async fn readyz(checks: &[Check], timeout: Duration) -> (StatusCode, String) {
    let runs = checks.iter().map(|check| async move {
        let outcome = match tokio::time::timeout(timeout, (check.probe)()).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no answer within {timeout:?}")),
        };
        CheckReport {
            name: check.name,
            ok: outcome.is_ok(),
            error: outcome.err(),
        }
    });
    let reports = futures_util::future::join_all(runs).await;
    let ready = reports.iter().all(|r| r.ok);
    let report = Report {
        status: if ready { "ok" } else { "unavailable" },
        checks: reports,
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::to_string(&report)
        .unwrap_or_else(|_| format!("{{\"status\":\"{}\"}}", report.status));
    (status, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn json(body: &str) -> serde_json::Value {
        serde_json::from_str(body).unwrap()
    }

    #[tokio::test]
    async fn ready_when_every_check_passes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let policy = Arc::new(AtomicBool::new(true));
        let checks = [
            Check::tcp("upstream", addr, Duration::from_secs(2)),
            Check::new("policy", {
                let policy = policy.clone();
                move || {
                    let ok = policy.load(Ordering::Acquire);
                    async move {
                        if ok {
                            Ok(())
                        } else {
                            Err("no policy loaded".to_owned())
                        }
                    }
                }
            }),
        ];
        let (status, body) = readyz(&checks, Duration::from_secs(2)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(json(&body)["status"], "ok");

        policy.store(false, Ordering::Release);
        let (status, body) = readyz(&checks, Duration::from_secs(2)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let body = json(&body);
        assert_eq!(body["checks"][0]["ok"], true);
        assert_eq!(body["checks"][1]["name"], "policy");
        assert_eq!(body["checks"][1]["error"], "no policy loaded");
    }

    #[tokio::test]
    async fn an_unreachable_upstream_is_not_ready() {
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let checks = [Check::tcp("upstream", addr, Duration::from_secs(2))];
        let (status, body) = readyz(&checks, Duration::from_secs(2)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            json(&body)["checks"][0]["error"]
                .as_str()
                .unwrap()
                .contains("cannot connect")
        );
    }

    #[tokio::test]
    async fn a_hung_probe_times_out() {
        let checks = [Check::new("stuck", std::future::pending)];
        let (status, body) = readyz(&checks, Duration::from_millis(20)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("no answer within"), "{body}");
    }

    #[test]
    fn liveness_is_plain_ok() {
        assert_eq!(healthz(), (StatusCode::OK, "ok".to_owned()));
    }
}
