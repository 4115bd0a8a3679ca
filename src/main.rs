use clap::Parser;

/// jemalloc instead of glibc's allocator, because it pays end to end: under load glibc's
/// malloc and free were ~15% of sluice's CPU (rustls allocates a buffer per TLS record),
/// jemalloc's ~3%. (mimalloc was faster still but held twice the memory for idle watches.)
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
/// a background thread only while it allocates: a proxy that goes quiet after a burst (a
/// fleet reconnecting, thousands of watches opening at once) would keep the RSS of its
/// busiest moment. One thread serves every arena (jemalloc would start one a CPU). The
/// operator's `_RJEM_MALLOC_CONF` wins: `background_thread` there is left as it says, and
/// `max_background_threads` there sets the count.
fn purge_in_background() {
    let conf = std::env::var_os(JEMALLOC_CONF).unwrap_or_default();
    let conf = conf.to_string_lossy();
    let names = || jemalloc_option_names(&conf);
    if names().any(|name| name == "background_thread") {
        return;
    }
    let started = if names().any(|name| name == "max_background_threads") {
        Ok(())
    } else {
        tikv_jemalloc_ctl::max_background_threads::write(1)
    }
    .and_then(|()| tikv_jemalloc_ctl::background_thread::write(true));
    if let Err(err) = started {
        tracing::warn!(
            error = %err,
            "jemalloc background thread not started: freed memory goes back to the system only while sluice allocates"
        );
    }
}

/// The option names in a jemalloc options string (`name:value,name:value`).
fn jemalloc_option_names(conf: &str) -> impl Iterator<Item = &str> {
    conf.split(',').map(|option| {
        option
            .split_once(':')
            .map_or(option, |(name, _)| name)
            .trim()
    })
}
