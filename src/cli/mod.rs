//! The `sluice` command line: one file per subcommand.

mod serve;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// sluice: an authenticating, classifying, approving and auditing proxy for kube-apiserver.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy.
    Serve {
        /// sluice.yaml
        #[arg(long, short)]
        config: PathBuf,
    },
}

/// Runs the parsed command; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Serve { config } => serve::run(&config),
    }
}

/// Logs for operators go to stderr; `SLUICE_LOG` (or `RUST_LOG`) sets the filter.
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("SLUICE_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
