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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
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
/// workstation's default soft limit (1024) would stop sluice near a thousand connections
/// (new ones wait in the backlog while accept fails). The hard limit is what the
/// administrator allows: take all of it, as Go programs such as kube-apiserver do.
fn raise_open_files_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    /// Linux's default `fs.nr_open`: the most a process may have when the hard limit is
    /// unlimited.
    const UNLIMITED_CAP: u64 = 1 << 20;
    let limit = getrlimit(Resource::Nofile);
    let target = limit.maximum.unwrap_or(UNLIMITED_CAP);
    let Some(current) = limit.current.filter(|&current| current < target) else {
        return;
    };
    let raised = Rlimit {
        current: Some(target),
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => tracing::info!(from = current, to = target, "open files limit raised"),
        Err(err) => tracing::warn!(
            limit = current,
            hard = target,
            error = %err,
            "cannot raise the open files limit; connections beyond it will wait"
        ),
    }
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
