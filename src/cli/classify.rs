//! `sluice classify METHOD PATH [--config FILE --agent NAME] [--body FILE [--content-type
//! TYPE]]`: what sluice would make of one request, as one JSON object on stdout. With a
//! body, a pod or workload write is rated by its pod spec too, as the proxy rates it.
//!
//! Exit codes: 0 classified; 1 sluice refuses the path or the body (the reason on stderr);
//! 2 the method, the config, the policy or the body file cannot be read (the error on stderr).

use std::path::Path;

use http::{Method, Uri};
use serde::Serialize;

use crate::config::Config;
use crate::inspect::{self, BodyTier, Reads};
use crate::policy::Policy;
use crate::request_info::{RequestInfo, Verb};

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

/// A body file and its Content-Type, if given.
pub type BodyArg<'a> = Option<(&'a Path, Option<&'a str>)>;

/// Runs the command; returns the exit code.
pub fn run(
    method: &str,
    path: &str,
    config: Option<&Path>,
    agent: Option<&str>,
    body: BodyArg<'_>,
) -> i32 {
    match render(method, path, config, agent, body) {
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
    body: BodyArg<'_>,
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
    let mut info = RequestInfo::parse(&method, &uri, false).map_err(|e| (1, e.to_string()))?;
    let judged = match body {
        Some((file, content_type)) => read_body(&mut info, file, content_type)?,
        None => None,
    };
    let class = policy
        .classifier()
        .classify(&info, agent.unwrap_or_default());
    let class = inspect::raise(class, judged);
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

/// What the body in `file` makes of the request: a body tier, or (a DELETE) a dry run.
fn read_body(
    info: &mut RequestInfo,
    file: &Path,
    content_type: Option<&str>,
) -> Result<Option<BodyTier>, (i32, String)> {
    let body = std::fs::read(file).map_err(|e| (2, format!("{}: {e}", file.display())))?;
    let yaml = matches!(
        file.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    let patch = info.kube_verb() == Some(Verb::Patch);
    let content_type = content_type.unwrap_or(match (patch, yaml) {
        (false, false) => "application/json",
        (false, true) => "application/yaml",
        (true, false) => "application/strategic-merge-patch+json",
        (true, true) => "application/apply-patch+yaml",
    });
    match Reads::of(info) {
        Reads::Nothing => Ok(None),
        Reads::PodSpec(workload) => inspect::judge_request(info, workload, content_type, &body)
            .map_err(|e| (1, format!("sluice: {e}"))),
        Reads::DeleteOptions => {
            inspect::settle_delete_dry_run(info, &body, content_type);
            Ok(None)
        }
    }
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
        let json = render(
            "get",
            "/api/v1/namespaces/prod/secrets/db?x=1",
            None,
            None,
            None,
        )
        .unwrap();
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
        let json = render("GET", "/api/v1/pods", None, Some("bot"), None).unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["decision"], "deny");
        assert_eq!(value["rule"], "default (no rules for agent bot)");

        let dir = tempfile::tempdir().unwrap();
        let policy =
            "agents:\n  bot:\n    rules:\n      - {namespaces: ['*'], tiers: {0: allow}}\n";
        let config = write_config(dir.path(), policy);
        let json = render("GET", "/api/v1/pods", Some(&config), Some("bot"), None).unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["decision"], "allow");
        assert_eq!(value["rule"], "agents.bot.rules[0]");
    }

    #[test]
    fn exit_codes() {
        assert_eq!(
            render("GET", "/api/v1/namespaces/a%2Fb/pods", None, None, None)
                .unwrap_err()
                .0,
            1
        );
        assert_eq!(
            render(
                "GET",
                "/api/v1/pods",
                Some(Path::new("/nonexistent/s.yaml")),
                None,
                None
            )
            .unwrap_err()
            .0,
            2
        );
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), "default: maybe\n");
        let (code, message) = render("GET", "/api/v1/pods", Some(&config), None, None).unwrap_err();
        assert_eq!(code, 2);
        assert!(message.contains("default"), "{message}");
        assert_eq!(run("GET", "/version", None, None, None), 0);
    }

    #[test]
    fn a_body_raises_the_tier_and_names_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let pod = dir.path().join("pod.yaml");
        std::fs::write(
            &pod,
            "spec:\n  containers: [{name: a, image: x, securityContext: {privileged: true}}]\n",
        )
        .unwrap();
        let path = "/api/v1/namespaces/dev/pods";
        let json = render("POST", path, None, None, Some((&pod, None))).unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["tier"], 4);
        assert_eq!(
            value["reason"],
            "privileged container in pods (spec.containers[0])"
        );
        let plain = render("POST", path, None, None, None).unwrap();
        assert!(plain.contains("\"tier\":2"), "{plain}");
        let cm = render(
            "POST",
            "/api/v1/namespaces/dev/configmaps",
            None,
            None,
            Some((&pod, None)),
        );
        assert!(
            cm.unwrap().contains("\"tier\":2"),
            "other resources' bodies are not read"
        );

        let (code, message) =
            render("POST", path, None, None, Some((&pod, Some("text/plain")))).unwrap_err();
        assert_eq!(code, 1);
        assert!(message.contains("text/plain"), "{message}");
        let missing = Some((Path::new("/nonexistent/body.json"), None));
        assert_eq!(render("POST", path, None, None, missing).unwrap_err().0, 2);

        let options = dir.path().join("delete.json");
        std::fs::write(&options, r#"{"dryRun":["All"]}"#).unwrap();
        let json = render(
            "DELETE",
            "/api/v1/namespaces/dev/pods/x",
            None,
            None,
            Some((&options, None)),
        );
        assert!(json.unwrap().contains("\"tier\":0"));
    }
}
