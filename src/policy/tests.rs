//! Policy decisions: every rule shape, fallback, observe mode and messages (reading the
//! file: `file_tests.rs`; runbooks: `runbook_tests.rs`).

use std::path::Path;

use http::{Method, Uri};

use super::*;

pub(super) const POLICY: &str = "
default: deny
mode: enforce
protected_namespaces: [kube-system]
agents:
  claude-code:
    rules:
      - namespaces: ['dev-*', staging]
        tiers: {0: allow, 1: allow, 2: escalate, 3: escalate, 4: deny}
      - namespaces: ['team-?']
        tiers: {2: allow}
      - namespaces: ['*']
        tiers: {0: allow}
  lister:
    rules:
      - namespaces: [prod]
        tiers: {0: allow}
  idle: {}
runbooks:
  scale-web:
    agents: [claude-code]
    operations:
      - {verbs: [patch], resources: [deployments/scale], namespaces: ['dev-*']}
";

pub(super) fn policy(text: &str) -> Policy {
    Policy::from_yaml(text, Path::new("policy.yaml")).unwrap()
}

fn decide(policy: &Policy, agent: &str, method: Method, uri: &str) -> Verdict {
    let uri: Uri = uri.parse().unwrap();
    let info = RequestInfo::parse(&method, &uri, false).unwrap();
    let class = policy.classifier().classify(&info, agent);
    policy.verdict(agent, &info, &class)
}

/// What happens to the request: the [`Decision`] for it, as the action it carries out.
fn next(policy: &Policy, agent: &str, method: Method, uri: &str) -> Action {
    let uri: Uri = uri.parse().unwrap();
    let info = RequestInfo::parse(&method, &uri, false).unwrap();
    let class = policy.classifier().classify(&info, agent);
    let id = HeaderValue::from_static("sl_test");
    let decision =
        policy
            .verdict(agent, &info, &class)
            .decide(id, &Arc::from(agent), &info, &class);
    match decision {
        Decision::Allow(permit) => {
            assert_eq!(
                (permit.agent(), permit.request_id().as_bytes()),
                (agent, &b"sl_test"[..])
            );
            Action::Allow
        }
        Decision::Escalate(_) => Action::Escalate,
        Decision::Deny(_) => Action::Deny,
    }
}

/// The sentence the agent is told for this request.
fn message(policy: &Policy, agent: &str, method: Method, uri: &str) -> String {
    let uri: Uri = uri.parse().unwrap();
    let info = RequestInfo::parse(&method, &uri, false).unwrap();
    let class = policy.classifier().classify(&info, agent);
    let verdict = policy.verdict(agent, &info, &class);
    verdict.message(&class, agent, &info).into_owned()
}

/// (agent, method, uri, the action, the rule that chose it) under [`POLICY`].
const FIRST_MATCH: &[(&str, Method, &str, Action, &str)] = &[
    (
        "claude-code",
        Method::GET,
        "/api/v1/namespaces/dev-a/pods",
        Action::Allow,
        "agents.claude-code.rules[0]",
    ),
    (
        "claude-code",
        Method::POST,
        "/api/v1/namespaces/dev-a/pods",
        Action::Escalate,
        "agents.claude-code.rules[0]",
    ),
    (
        "claude-code",
        Method::PATCH,
        "/apis/apps/v1/namespaces/dev-a/deployments/w/scale",
        Action::Allow,
        "agents.claude-code.rules[0]",
    ),
    (
        "claude-code",
        Method::DELETE,
        "/api/v1/namespaces/staging/pods/p",
        Action::Escalate,
        "agents.claude-code.rules[0]",
    ),
    (
        "claude-code",
        Method::POST,
        "/api/v1/namespaces/dev-a/pods/p/exec",
        Action::Deny,
        "agents.claude-code.rules[0]",
    ),
    (
        "claude-code",
        Method::POST,
        "/api/v1/namespaces/team-a/pods",
        Action::Allow,
        "agents.claude-code.rules[1]",
    ),
    (
        "claude-code",
        Method::GET,
        "/api/v1/namespaces/team-a/pods",
        Action::Deny,
        "default (agents.claude-code.rules[1] lists no tier 0)",
    ),
    (
        "claude-code",
        Method::POST,
        "/api/v1/namespaces/team-ab/pods",
        Action::Deny,
        "default (agents.claude-code.rules[2] lists no tier 2)",
    ),
    (
        "claude-code",
        Method::GET,
        "/api/v1/namespaces/prod/pods",
        Action::Allow,
        "agents.claude-code.rules[2]",
    ),
    (
        "claude-code",
        Method::GET,
        "/api/v1/pods",
        Action::Allow,
        "agents.claude-code.rules[2]",
    ),
    (
        "claude-code",
        Method::GET,
        "/version",
        Action::Allow,
        "agents.claude-code.rules[2]",
    ),
    (
        "lister",
        Method::GET,
        "/api/v1/namespaces/prod/pods",
        Action::Allow,
        "agents.lister.rules[0]",
    ),
    (
        "lister",
        Method::GET,
        "/api/v1/namespaces/prod2/pods",
        Action::Deny,
        "default",
    ),
    (
        "lister",
        Method::GET,
        "/api/v1/pods",
        Action::Deny,
        "default",
    ),
    ("idle", Method::GET, "/api/v1/pods", Action::Deny, "default"),
    (
        "stranger",
        Method::GET,
        "/api/v1/pods",
        Action::Deny,
        "default (no rules for agent stranger)",
    ),
];

#[test]
fn first_matching_rule_decides() {
    let p = policy(POLICY);
    let cases = FIRST_MATCH.iter().cloned();
    for (agent, method, uri, action, rule) in cases {
        let d = decide(&p, agent, method.clone(), uri);
        assert_eq!(
            (d.action(), d.rule()),
            (action, rule),
            "{agent} {method} {uri}"
        );
        assert_eq!(next(&p, agent, method.clone(), uri), action);
    }
}

#[test]
fn missing_tiers_fall_back_to_an_allowing_default() {
    let p =
        policy("default: allow\nagents:\n  a: {rules: [{namespaces: ['*'], tiers: {3: deny}}]}\n");
    let d = decide(&p, "a", Method::GET, "/api/v1/pods");
    assert_eq!(
        (d.action(), d.rule()),
        (Action::Allow, "default (agents.a.rules[0] lists no tier 0)")
    );
    assert_eq!(
        decide(&p, "a", Method::DELETE, "/api/v1/namespaces/x/pods/p").action(),
        Action::Deny
    );
    assert_eq!(
        decide(&p, "nobody", Method::DELETE, "/api/v1/namespaces/x/pods/p").action(),
        Action::Allow
    );
}

#[test]
fn messages_name_tier_reason_agent_namespace_and_rule() {
    let p = policy(POLICY);
    assert_eq!(
        message(
            &p,
            "lister",
            Method::DELETE,
            "/api/v1/namespaces/prod/pods/p",
        ),
        "sluice: tier 3 (delete of pods) is not allowed for agent lister in namespace prod (rule default (agents.lister.rules[0] lists no tier 3))"
    );
    assert_eq!(
        message(
            &p,
            "claude-code",
            Method::DELETE,
            "/api/v1/namespaces/dev-x/pods/p",
        ),
        "sluice: tier 3 (delete of pods) requires human approval for agent claude-code in namespace dev-x (rule agents.claude-code.rules[0])"
    );
    assert_eq!(
        message(&p, "stranger", Method::GET, "/api/v1/nodes"),
        "sluice: tier 0 (list of nodes) is not allowed for agent stranger (rule default (no rules for agent stranger))"
    );
    assert_eq!(
        message(&p, "claude-code", Method::GET, "/api/v1/nodes"),
        "sluice: allowed"
    );
}

#[test]
fn observe_mode_records_but_lets_through() {
    let p = policy("mode: observe\n");
    let d = decide(&p, "a", Method::DELETE, "/api/v1/namespaces/x/pods/p");
    assert_eq!(d.action(), Action::Deny);
    assert_eq!(
        next(&p, "a", Method::DELETE, "/api/v1/namespaces/x/pods/p"),
        Action::Allow
    );
    assert_eq!(d.mode(), Mode::Observe);
    let said = message(&p, "a", Method::DELETE, "/api/v1/namespaces/x/pods/p");
    assert!(said.contains("is not allowed"), "{said}");
}

#[test]
fn default_policy_denies_everything_and_protects_kube_system() {
    let p = Policy::default();
    assert_eq!(p.mode, Mode::Enforce);
    assert_eq!(p.default_action(), Action::Deny);
    assert!(p.classifier().is_protected("kube-system"));
    assert!(!p.classifier().is_protected("kube-system2"));
    let d = decide(&p, "a", Method::GET, "/version");
    assert_eq!(
        (d.action(), next(&p, "a", Method::GET, "/version")),
        (Action::Deny, Action::Deny)
    );
    // An empty file is the same as the built-in policy.
    let empty = policy("# nothing\n");
    assert!(empty.classifier().is_protected("kube-system"));
    assert_eq!(empty.default_action(), Action::Deny);
    assert!(
        !policy(
            "protected_namespaces: []
"
        )
        .classifier()
        .is_protected("kube-system")
    );
}

#[test]
fn policy_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Policy>();
    assert_send_sync::<Verdict>();
    assert_send_sync::<Decision>();
}

/// Among many agents, each request gets its own agent's rules (they are found by binary
/// search over the names), and a name between, before or after them gets none.
#[test]
fn among_many_agents_each_gets_its_own_rules() {
    let mut text = String::from("agents:\n");
    for i in (0..300).rev() {
        text.push_str(&format!(
            "  agent-{i:03}:\n    rules:\n      - namespaces: [ns-{i:03}]\n        tiers: {{0: allow}}\n"
        ));
    }
    let p = policy(&text);
    for i in [0, 1, 150, 298, 299] {
        let agent = format!("agent-{i:03}");
        let own = decide(
            &p,
            &agent,
            Method::GET,
            &format!("/api/v1/namespaces/ns-{i:03}/pods"),
        );
        assert_eq!(
            (own.action(), own.rule()),
            (Action::Allow, format!("agents.{agent}.rules[0]").as_str())
        );
        let other = decide(&p, &agent, Method::GET, "/api/v1/namespaces/ns-999/pods");
        assert_eq!((other.action(), other.rule()), (Action::Deny, "default"));
    }
    for stranger in ["agent-", "agent-0005", "agent-300", "aaa", "zzz"] {
        let d = decide(&p, stranger, Method::GET, "/api/v1/namespaces/ns-001/pods");
        assert_eq!(d.action(), Action::Deny, "{stranger}");
        assert!(
            d.rule().contains("no rules for agent"),
            "{stranger}: {}",
            d.rule()
        );
    }
}
