//! The `sluice` command line: one file per subcommand.

mod classify;
mod serve;
mod verify;

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
    /// Check an audit log (or a rotated series, oldest first) for tampering.
    #[command(long_about = verify::LONG_ABOUT)]
    Verify {
        /// Log files, oldest first.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show how sluice classifies (and, with an agent, decides) one request.
    Classify {
        /// HTTP method, e.g. GET or DELETE.
        method: String,
        /// Request path with optional query, e.g. /api/v1/namespaces/prod/secrets/db
        path: String,
        /// sluice.yaml whose policy decides (default: built-in deny-all policy).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The agent to decide for (needs --config).
        #[arg(long, requires = "config")]
        agent: Option<String>,
    },
}

/// Runs the parsed command; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Serve { config } => serve::run(&config),
        Command::Verify { files, json } => verify::run(&files, json),
        Command::Classify {
            method,
            path,
            config,
            agent,
        } => classify::run(&method, &path, config.as_deref(), agent.as_deref()),
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
