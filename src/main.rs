use clap::Parser;

/// mimalloc instead of the system allocator: sluice allocates per request (headers, the
/// audit record), and allocation showed up as ~17% of CPU samples under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = sluice::cli::Cli::parse();
    sluice::cli::init_tracing();
    std::process::exit(sluice::cli::run(cli));
}
