//! Runbooks as a policy file writes them: the operation shapes, the verbs they may name,
//! and finding each of a runbook's agents.

use std::path::Path;

use http::{Method, Uri};

use super::tests::policy;
use super::*;
use crate::classify::Tier;

/// (agent, method, uri, whether a runbook of [`runbook_operation_shapes`] lowers it to T1)
const SHAPES: &[(&str, Method, &str, bool)] = &[
    ("a", Method::POST, "/api/v1/namespaces/x/configmaps", true),
    (
        "a",
        Method::PATCH,
        "/api/v1/namespaces/x/configmaps/c",
        true,
    ),
    ("a", Method::PUT, "/api/v1/namespaces/x/configmaps/c", false),
    ("b", Method::POST, "/api/v1/namespaces/x/configmaps", false),
    (
        "a",
        Method::PATCH,
        "/api/v1/namespaces/x/configmaps/c/status",
        false,
    ),
    (
        "b",
        Method::PUT,
        "/apis/apps/v1/namespaces/x/deployments/w/scale",
        true,
    ),
    (
        "b",
        Method::PUT,
        "/apis/extensions/v1beta1/namespaces/x/deployments/w/scale",
        false,
    ),
    (
        "b",
        Method::PUT,
        "/apis/apps/v1/namespaces/x/deployments/w",
        false,
    ),
    (
        "b",
        Method::PATCH,
        "/api/v1/namespaces/prod/services/s",
        true,
    ),
    (
        "b",
        Method::PATCH,
        "/api/v1/namespaces/prod2/services/s",
        false,
    ),
    // Runbooks never lower T3 or T4.
    (
        "a",
        Method::POST,
        "/api/v1/namespaces/kube-system/configmaps",
        false,
    ),
    (
        "a",
        Method::DELETE,
        "/api/v1/namespaces/x/configmaps/c",
        false,
    ),
];

#[test]
fn runbook_operation_shapes() {
    let p = policy(
        "agents: {a: {}, b: {}}
runbooks:
  any-ns:
    agents: [a]
    operations: [{verbs: [create, patch], resources: [configmaps]}]
  grouped:
    agents: [a, b]
    operations: [{verbs: [update], resources: [deployments/scale], api_groups: [apps], namespaces: ['*']}]
  cluster-only-star:
    agents: [b]
    operations: [{verbs: [patch], resources: [services], namespaces: [prod]}]
",
    );
    for (agent, method, uri, lowered) in SHAPES.iter().cloned() {
        let info = RequestInfo::parse(&method, &uri.parse().unwrap(), false).unwrap();
        let tier = p.classifier().classify(&info, agent).tier;
        assert_eq!(tier == Tier::T1, lowered, "{agent} {method} {uri}");
    }
}

/// A runbook may name every verb but the legacy proxy (always T4, so never lowered); any
/// other name is an error (which verb each covers: `classify::runbook`'s tests).
#[test]
fn a_runbook_names_every_verb_but_proxy() {
    let with_verb = |name: &str| {
        let text = format!(
            "agents: {{a: {{}}}}\nrunbooks:\n  r:\n    agents: [a]\n    \
             operations: [{{verbs: ['{name}'], resources: [pods]}}]\n"
        );
        Policy::from_yaml(&text, Path::new("policy.yaml"))
    };
    for verb in crate::request_info::Verb::ALL {
        let name = verb.as_str();
        assert_eq!(with_verb(name).is_ok(), name != "proxy", "{name}");
    }
    for name in ["escalate", "GET", "proxy", ""] {
        assert!(with_verb(name).is_err(), "{name:?}");
    }
}

/// A runbook's agents, listed in any order, are each found (binary search over the sorted
/// list); an agent it does not list is not lowered.
#[test]
fn a_runbook_finds_each_of_its_agents_in_any_order() {
    let mut text = String::from("agents:\n");
    for i in 0..300 {
        text.push_str(&format!("  agent-{i:03}: {{rules: []}}\n"));
    }
    text.push_str(
        "runbooks:\n  scale:\n    agents: [agent-299, agent-000, agent-150, agent-000]\n    \
         operations:\n      - {verbs: [patch], resources: [deployments/scale], namespaces: [dev]}\n",
    );
    let p = policy(&text);
    let uri: Uri = "/apis/apps/v1/namespaces/dev/deployments/web/scale"
        .parse()
        .unwrap();
    let info = RequestInfo::parse(&Method::PATCH, &uri, false).unwrap();
    for (agent, tier) in [
        ("agent-000", Tier::T1),
        ("agent-150", Tier::T1),
        ("agent-299", Tier::T1),
        ("agent-001", Tier::T2),
        ("agent-298", Tier::T2),
    ] {
        assert_eq!(p.classifier().classify(&info, agent).tier, tier, "{agent}");
    }
}
