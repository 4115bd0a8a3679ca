//! `sluice classify METHOD PATH [--config FILE --agent NAME]`: what sluice would make of one
//! request, as one JSON object on stdout.
//!
//! Exit codes: 0 classified; 1 sluice refuses the path (the reason on stderr); 2 the method,
//! the config or the policy cannot be read (the error on stderr).

use std::path::Path;

use http::{Method, Uri};
use serde::Serialize;

use crate::config::Config;
use crate::policy::Policy;
use crate::request_info::RequestInfo;

/// What `sluice classify` prints.
#[derive(Debug, Serialize)]
struct Report<'a> {
    verb: &'a str,
    api_group: &'a str,
    api_version: &'a str,
    namespace: Option<&'a str>,
    resource: Option<&'a str>,
    subresource: Option<&'a str>,
    name: Option<&'a str>,
    dry_run: bool,
    tier: u8,
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    decision: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<&'a str>,
}

/// Runs the command; returns the exit code.
pub fn run(method: &str, path: &str, config: Option<&Path>, agent: Option<&str>) -> i32 {
    match render(method, path, config, agent) {
        Ok(json) => {
            println!("{json}");
            0
        }
        Err((code, message)) => {
            eprintln!("{message}");
            code
        }
    }
}

/// The JSON line, or the exit code and the message for stderr.
fn render(
    method: &str,
    path: &str,
    config: Option<&Path>,
    agent: Option<&str>,
) -> Result<String, (i32, String)> {
    let policy = match config {
        None => Policy::default(),
        Some(file) => {
            let config = Config::load(file).map_err(|e| (2, e.to_string()))?;
            Policy::load(&config.policy).map_err(|e| (2, e.to_string()))?
        }
    };
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| (2, format!("sluice: {method:?} is not an HTTP method")))?;
    let uri: Uri = path
        .parse()
        .map_err(|e| (1, format!("sluice: {path:?} is not a request path: {e}")))?;
    let info = RequestInfo::parse(&method, &uri, false).map_err(|e| (1, e.to_string()))?;
    let class = policy
        .classifier()
        .classify(&info, agent.unwrap_or_default());
    let decision = agent.map(|agent| policy.verdict(agent, &info, &class));
    let report = Report {
        verb: info.verb(),
        api_group: info.api_group(),
        api_version: info.api_version(),
        namespace: info.namespace(),
        resource: info.resource(),
        subresource: info.subresource(),
        name: info.name(),
        dry_run: info.dry_run,
        tier: class.tier.as_u8(),
        reason: &class.reason,
        decision: decision.as_ref().map(|d| d.action().as_str()),
        rule: decision.as_ref().map(|d| d.rule()),
    };
    serde_json::to_string(&report).map_err(|e| (2, format!("sluice: cannot print JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_config(dir: &Path, policy: &str) -> std::path::PathBuf {
        std::fs::write(dir.join("policy.yaml"), policy).unwrap();
        let config = "tls: {cert: tls.crt, key: tls.key}\ncredentials: credentials.yaml\n\
                      policy: policy.yaml\naudit: {path: audit.jsonl}\n";
        let path = dir.join("sluice.yaml");
        std::fs::write(&path, config).unwrap();
        path
    }

    #[test]
    fn prints_the_classification() {
        let json = render("get", "/api/v1/namespaces/prod/secrets/db?x=1", None, None).unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["verb"], "get");
        assert_eq!(value["namespace"], "prod");
        assert_eq!(value["resource"], "secrets");
        assert_eq!(value["name"], "db");
        assert_eq!(value["tier"], 3);
        assert_eq!(value["reason"], "read of secrets");
        assert_eq!(value["dry_run"], false);
        assert!(value.get("decision").is_none());
    }

    #[test]
    fn with_an_agent_adds_decision_and_rule() {
        let json = render("GET", "/api/v1/pods", None, Some("bot")).unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["decision"], "deny");
        assert_eq!(value["rule"], "default (no rules for agent bot)");

        let dir = tempfile::tempdir().unwrap();
        let policy =
            "agents:\n  bot:\n    rules:\n      - {namespaces: ['*'], tiers: {0: allow}}\n";
        let config = write_config(dir.path(), policy);
        let json = render("GET", "/api/v1/pods", Some(&config), Some("bot")).unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["decision"], "allow");
        assert_eq!(value["rule"], "agents.bot.rules[0]");
    }

    #[test]
    fn exit_codes() {
        assert_eq!(
            render("GET", "/api/v1/namespaces/a%2Fb/pods", None, None)
                .unwrap_err()
                .0,
            1
        );
        assert_eq!(
            render(
                "GET",
                "/api/v1/pods",
                Some(Path::new("/nonexistent/s.yaml")),
                None
            )
            .unwrap_err()
            .0,
            2
        );
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), "default: maybe\n");
        let (code, message) = render("GET", "/api/v1/pods", Some(&config), None).unwrap_err();
        assert_eq!(code, 2);
        assert!(message.contains("default"), "{message}");
        assert_eq!(run("GET", "/version", None, None), 0);
    }
}
