use clap::Parser;

/// jemalloc instead of glibc's allocator: under load glibc's malloc and free were ~15% of
/// sluice's CPU (rustls allocates a buffer per TLS record, tokio a cache-aligned cell per
/// task, and glibc consolidates its fast bins on every larger request); jemalloc spends ~3%.
/// mimalloc was faster still but held 80 MB for 2,000 idle watches; jemalloc holds ~35 MB.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Where jemalloc, as tikv-jemalloc-sys builds it (prefixed), reads its options from.
const JEMALLOC_CONF: &str = "_RJEM_MALLOC_CONF";

fn main() {
    let cli = sluice::cli::Cli::parse();
    sluice::cli::init_tracing();
    if matches!(cli.command, sluice::cli::Command::Serve { .. }) {
        purge_in_background();
    }
    std::process::exit(sluice::cli::run(cli));
}

/// Starts one jemalloc background thread, which gives memory freed after a burst back to
/// the system.
///
/// jemalloc keeps freed pages for reuse and returns them after a decay (10 s), but without
/// a background thread only while it allocates. A proxy that goes quiet after a burst (a
/// fleet reconnecting, thousands of watches opening at once) therefore kept the RSS of its
/// busiest moment: 2,000 watches opened 200 a connection left it at 39 MB, and at 28.6 MB
/// with the thread. One thread serves every arena (jemalloc would start one a CPU). Options
/// set in `_RJEM_MALLOC_CONF` that name the background thread are left as they are.
fn purge_in_background() {
    if std::env::var(JEMALLOC_CONF).is_ok_and(|conf| conf.contains("background_thread")) {
        return;
    }
    let started = tikv_jemalloc_ctl::max_background_threads::write(1)
        .and_then(|()| tikv_jemalloc_ctl::background_thread::write(true));
    if let Err(err) = started {
        tracing::warn!(
            error = %err,
            "jemalloc background thread not started: freed memory goes back to the system only while sluice allocates"
        );
    }
}
