//! The `sluice` command line: one file per subcommand.

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
        #[arg(long, short)]
        config: PathBuf,
    },
}

/// Runs the parsed command; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Serve { config } => {
            eprintln!("serve {} not yet built", config.display());
            1
        }
    }
}
