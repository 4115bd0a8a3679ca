//! The `sluice` command line: one file per subcommand.

mod agent;
mod approvals;
mod check_config;
mod classify;
mod init;
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
        /// The request body: a pod or workload write is also rated by its pod spec, a
        /// DELETE by its options (dry run or not).
        #[arg(long)]
        body: Option<PathBuf>,
        /// The body's Content-Type (default: JSON, or YAML for a .yaml/.yml file; for a
        /// patch, a strategic merge patch, or server-side apply for YAML).
        #[arg(long, requires = "body")]
        content_type: Option<String>,
    },
    /// Create a CA, a serving certificate, sluice.yaml, empty credentials and a deny-all policy.
    Init {
        /// Directory to write into (created if missing).
        #[arg(long)]
        dir: PathBuf,
        /// DNS name or IP address for the serving certificate (repeatable; default localhost
        /// and 127.0.0.1).
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
    /// Validate config, credentials and policy; say what would run.
    CheckConfig {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Add, list or remove agents in the credentials file the config names.
    #[command(subcommand)]
    Agent(AgentCommand),
    /// List, show, approve or deny held requests through the admin API.
    Approvals(approvals::ApprovalsArgs),
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Mint a token (or a client certificate), store only its hash, print a kubeconfig.
    Add(agent::AddOptions),
    /// List agents: name, how they authenticate, labels.
    List {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Remove an agent; a running sluice stops accepting it on reload.
    Remove {
        name: String,
        #[arg(long, short)]
        config: PathBuf,
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
            body,
            content_type,
        } => classify::run(
            &method,
            &path,
            config.as_deref(),
            agent.as_deref(),
            body.as_deref().map(|file| (file, content_type.as_deref())),
        ),
        Command::Init { dir, hosts, force } => init::run(&dir, &hosts, force),
        Command::CheckConfig { config } => check_config::run(&config),
        Command::Agent(AgentCommand::Add(options)) => agent::add(&options),
        Command::Agent(AgentCommand::List { config }) => agent::list(&config),
        Command::Agent(AgentCommand::Remove { name, config }) => agent::remove(&name, &config),
        Command::Approvals(args) => approvals::run(args),
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
