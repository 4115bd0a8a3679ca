//! `sluice check-config --config FILE`: load everything `serve` would load, through the same
//! code, and say what would run. Nothing is connected to and nothing is written. Every
//! problem found is reported (file, key, problem), not just the first.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::authn::Credentials;
use crate::config::{Config, SyncMode, Upstream};
use crate::policy::Policy;

/// The generic facts of a policy file, read leniently for the summary only (the policy
/// module does the validation).
#[derive(Debug, Default, Deserialize)]
struct PolicySummary {
    #[serde(default)]
    default: Option<String>,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    protected_namespaces: Option<Vec<String>>,
    #[serde(default)]
    agents: BTreeMap<String, IgnoredAny>,
    #[serde(default)]
    runbooks: BTreeMap<String, IgnoredAny>,
}

/// Runs `check-config`; returns 0 when everything loads, 1 otherwise.
pub fn run(config_path: &Path) -> i32 {
    let config = match Config::load(config_path) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("sluice: {err}");
            return 1;
        }
    };
    let mut lines = Vec::new();
    let mut errors = Vec::new();
    describe_listeners(&config, &mut lines, &mut errors);
    describe_upstream(&config, &mut lines, &mut errors);
    describe_audit(&config, &mut lines, &mut errors);
    match Credentials::load(&config.credentials) {
        Ok(creds) => {
            lines.push(format!(
                "credentials      {}: {} agent(s) [{}], {} approver(s) [{}]",
                config.credentials.display(),
                creds.agent_names().len(),
                join(creds.agent_names()),
                creds.approver_names().len(),
                join(creds.approver_names()),
            ));
        }
        Err(err) => errors.push(err.to_string()),
    }
    match Policy::load(&config.policy) {
        Ok(_) => lines.push(format!(
            "policy           {}: {}",
            config.policy.display(),
            summarize_policy(&config.policy)
        )),
        Err(err) => errors.push(err.to_string()),
    }
    if errors.is_empty() {
        println!(
            "sluice: {} is OK; sluice serve would run:",
            config_path.display()
        );
        for line in lines {
            println!("  {line}");
        }
        0
    } else {
        eprintln!(
            "sluice: {} has {} problem(s):",
            config_path.display(),
            errors.len()
        );
        for err in errors {
            eprintln!("  {err}");
        }
        1
    }
}

fn describe_listeners(config: &Config, lines: &mut Vec<String>, errors: &mut Vec<String>) {
    if let Err(err) = crate::tls::server_config(&config.tls) {
        errors.push(err.to_string());
    }
    let client_certs = match &config.tls.client_ca {
        Some(ca) => format!("client certificates optional, CA {}", ca.display()),
        None => "no client certificates (tokens only)".into(),
    };
    lines.push(format!(
        "agent listener   https://{} (cert {}, {client_certs})",
        config.listen,
        config.tls.cert.display()
    ));
    let scheme = if config.admin.tls { "https" } else { "http" };
    lines.push(format!(
        "admin listener   {scheme}://{} (approvals API, /healthz, /readyz, /metrics)",
        config.admin.listen
    ));
}

fn describe_upstream(config: &Config, lines: &mut Vec<String>, errors: &mut Vec<String>) {
    let up = &config.upstream;
    let mut must_exist = |what: &str, path: &Path| {
        if !path.is_file() {
            errors.push(format!(
                "{}: upstream.{what}: {} does not exist or is not a file",
                config.source.display(),
                path.display()
            ));
        }
    };
    let target = match &up.target {
        Upstream::Explicit {
            server,
            ca,
            token_file,
        } => {
            if let Some(ca) = ca {
                must_exist("ca", ca);
            }
            if let Some(token) = token_file {
                must_exist("token_file", token);
            }
            format!(
                "server {server} (ca: {}, token_file: {})",
                opt_path(ca.as_deref()),
                opt_path(token_file.as_deref())
            )
        }
        Upstream::Kubeconfig { path, context } => {
            must_exist("kubeconfig", path);
            format!(
                "kubeconfig {} (context: {})",
                path.display(),
                context.as_deref().unwrap_or("its current context")
            )
        }
        Upstream::InCluster => "in-cluster ServiceAccount if running in a pod, else the current kubeconfig (not contacted now)".into(),
    };
    lines.push(format!("upstream         {target}"));
    lines.push(format!(
        "forwarding as    {}",
        if up.impersonate {
            "sluice's identity, impersonating sluice:agent:<name> in group sluice:agents"
        } else {
            "sluice's own identity (upstream.impersonate: false)"
        }
    ));
}

fn describe_audit(config: &Config, lines: &mut Vec<String>, errors: &mut Vec<String>) {
    let audit = &config.audit;
    let dir = audit.path.parent().unwrap_or(Path::new("."));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    if !dir.is_dir() {
        errors.push(format!(
            "{}: audit.path: directory {} does not exist",
            config.source.display(),
            dir.display()
        ));
    }
    let sync = match audit.sync {
        SyncMode::Fsync => "fsync",
        SyncMode::Flush => "flush",
    };
    lines.push(format!(
        "audit log        {} (sync: {sync}, rotate at {} bytes)",
        audit.path.display(),
        audit.rotate_bytes
    ));
}

fn summarize_policy(path: &Path) -> String {
    let summary: PolicySummary = crate::yaml::read_file(path).unwrap_or_default();
    format!(
        "mode {}, default {}, protected namespaces [{}], rules for {} agent(s) [{}], {} runbook(s)",
        summary.mode.as_deref().unwrap_or("enforce"),
        summary.default.as_deref().unwrap_or("deny"),
        summary
            .protected_namespaces
            .unwrap_or_else(|| vec!["kube-system".into()])
            .join(", "),
        summary.agents.len(),
        summary
            .agents
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        summary.runbooks.len(),
    )
}

fn join(names: &[std::sync::Arc<str>]) -> String {
    names.iter().map(|n| &**n).collect::<Vec<_>>().join(", ")
}

fn opt_path(path: Option<&Path>) -> String {
    path.map(|p| p.display().to_string())
        .unwrap_or_else(|| "none".into())
}
