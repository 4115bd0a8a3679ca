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
