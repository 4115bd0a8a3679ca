//! `sluice serve --config FILE`.

use std::path::Path;

use crate::config::Config;

/// Runs the proxy until SIGTERM or SIGINT. Exit 0 after a clean stop, 1 if it cannot start.
pub fn run(config_path: &Path) -> i32 {
    let config = match Config::load(config_path) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("sluice: {err}");
            return 1;
        }
    };
    raise_open_files_limit();
    // This runtime runs the admin listener, reloads, approvals' notifications and the audit
    // log's acknowledgements; agents are served by threads of their own
    // ([`crate::listener::AgentThreads`]).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("sluice: cannot start the runtime: {err}");
            return 1;
        }
    };
    let outcome = runtime.block_on(crate::server::run(config, shutdown_signal(), |ready| {
        // Stable lines on stdout that scripts and tests wait for; the agents line is last.
        let scheme = if ready.admin_tls { "https" } else { "http" };
        println!("sluice: admin on {scheme}://{}", ready.admin);
        println!("sluice: serving agents on https://{}", ready.agents);
    }));
    match outcome {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("sluice: {err}");
            1
        }
    }
}

/// Every agent connection, upstream connection and watch holds a file descriptor, and a
/// workstation's default soft limit (1024 on Linux, 256 on macOS) would stop sluice near
/// that many connections (new ones wait in the backlog while accept fails). The hard limit
/// is what the administrator allows: take all of it, as Go programs such as kube-apiserver
/// do.
fn raise_open_files_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let Some(current) = limit.current else {
        return; // unlimited already
    };
    let raised = raise_soft_limit(current, limit.maximum, |soft| {
        let new = Rlimit {
            current: Some(soft),
            maximum: limit.maximum,
        };
        setrlimit(Resource::Nofile, new).map_err(std::io::Error::from)
    });
    match raised {
        Ok(Some(to)) => tracing::info!(from = current, to, "open files limit raised"),
        Ok(None) => {}
        Err(err) => tracing::warn!(
            limit = current,
            error = %err,
            "cannot raise the open files limit; connections beyond it will wait"
        ),
    }
}

/// Raises a soft limit of `current` as far as `set` allows: to `hard`, or when `hard` is
/// unlimited or `set` refuses it (macOS caps it at `kern.maxfilesperproc`), to the largest
/// power of two from 2^20 down that `set` accepts. `Ok(None)`: nothing to raise.
fn raise_soft_limit(
    current: u64,
    hard: Option<u64>,
    mut set: impl FnMut(u64) -> std::io::Result<()>,
) -> std::io::Result<Option<u64>> {
    const CEILING: u64 = 1 << 20;
    let first = hard.unwrap_or(CEILING);
    // The largest power of two below `first`, then each half of it.
    let below = first
        .saturating_sub(1)
        .checked_ilog2()
        .map_or(0, |log| 1 << log);
    let steps = std::iter::successors(Some(below.min(CEILING)), |n| Some(n / 2));
    let mut refused = None;
    for soft in std::iter::once(first)
        .chain(steps)
        .take_while(|&soft| soft > current)
    {
        match set(soft) {
            Ok(()) => return Ok(Some(soft)),
            Err(err) => refused = Some(err),
        }
    }
    refused.map_or(Ok(None), Err)
}

/// Resolves on SIGTERM (Kubernetes stopping the pod) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            tracing::error!(error = %err, "cannot listen for SIGTERM; stopping only on Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: draining"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: draining"),
    }
}

#[cfg(test)]
mod tests {
    use super::raise_soft_limit;

    /// What was tried, and a setter that accepts only up to `max`.
    fn attempt(current: u64, hard: Option<u64>, max: u64) -> (Option<u64>, Vec<u64>) {
        let mut tried = Vec::new();
        let raised = raise_soft_limit(current, hard, |soft| {
            tried.push(soft);
            if soft <= max {
                Ok(())
            } else {
                Err(std::io::Error::from_raw_os_error(1))
            }
        });
        (raised.ok().flatten(), tried)
    }

    #[test]
    fn takes_the_hard_limit_when_it_may() {
        assert_eq!(
            attempt(1024, Some(524_288), u64::MAX),
            (Some(524_288), vec![524_288])
        );
    }

    #[test]
    fn steps_down_when_the_system_caps_below_the_hard_limit() {
        // macOS: hard unlimited, soft 256, kern.maxfilesperproc 24,576.
        let (raised, tried) = attempt(256, None, 24_576);
        assert_eq!(raised, Some(16_384));
        assert_eq!(tried.first(), Some(&(1 << 20)));
        // A hard limit the system refuses steps down from below it.
        assert_eq!(attempt(1024, Some(100_000), 10_240).0, Some(8_192));
    }

    #[test]
    fn never_lowers_the_limit_and_says_why_it_could_not_raise_it() {
        assert_eq!(attempt(4096, Some(4096), u64::MAX), (None, vec![]));
        assert_eq!(attempt(65_536, Some(100_000), 1000), (None, vec![100_000]));
        let refused = raise_soft_limit(1024, Some(4096), |_| {
            Err(std::io::Error::from_raw_os_error(1))
        });
        assert!(refused.is_err());
    }
}
