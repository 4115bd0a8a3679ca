use clap::Parser;

fn main() {
    let cli = sluice::cli::Cli::parse();
    sluice::cli::init_tracing();
    std::process::exit(sluice::cli::run(cli));
}
