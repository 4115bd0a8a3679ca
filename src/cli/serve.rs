//! `sluice serve --config FILE`.

use std::path::Path;

use crate::config::Config;
use crate::server::{Listeners, Sluice, StartError};

/// Runs the proxy until SIGTERM or SIGINT. Exit 0 after a clean stop, 1 if it cannot start.
pub fn run(config_path: &Path) -> i32 {
    let config = match Config::load(config_path) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("sluice: {err}");
            return 1;
        }
    };
    // Before anything is opened or bound: a bad thread count is refused first.
    let runtime = match crate::runtime::build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("sluice: {err}");
            return 1;
        }
    };
    crate::runtime::raise_open_files_limit();
    match runtime.block_on(start_and_serve(&config)) {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("sluice: {err}");
            1
        }
    }
}

async fn start_and_serve(config: &Config) -> Result<(), StartError> {
    let sluice = Sluice::load(config).await?;
    let listeners = Listeners::bind(config).await?;
    let (agents, admin) = listeners
        .local_addrs()
        .map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?;
    // Stable lines on stdout that scripts and tests wait for; the agents line is last.
    let scheme = if sluice.admin_tls() { "https" } else { "http" };
    println!("sluice: admin on {scheme}://{admin}");
    println!("sluice: serving agents on https://{agents}");
    sluice.serve(listeners, shutdown_signal()).await;
    Ok(())
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
