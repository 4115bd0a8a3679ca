//! Policy: every rule shape, glob edges, fallback, observe mode, messages and bad files.

use std::path::Path;

use http::{Method, Uri};

use super::*;
use crate::classify::{Tier, classify};

const POLICY: &str = "
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

fn policy(text: &str) -> Policy {
    Policy::from_yaml(text, Path::new("policy.yaml")).unwrap()
}

fn decide(policy: &Policy, agent: &str, method: Method, uri: &str) -> Decision {
    let uri: Uri = uri.parse().unwrap();
    let info = RequestInfo::parse(&method, &uri, false).unwrap();
    let class = classify(&info, policy, agent);
    policy.decide(agent, &info, &class)
}

/// The sentence the agent is told for this request.
fn message(policy: &Policy, agent: &str, method: Method, uri: &str) -> String {
    let uri: Uri = uri.parse().unwrap();
    let info = RequestInfo::parse(&method, &uri, false).unwrap();
    let class = classify(&info, policy, agent);
    let decision = policy.decide(agent, &info, &class);
    decision.message(&class, agent, &info).into_owned()
}

#[test]
fn first_matching_rule_decides() {
    let p = policy(POLICY);
    let cases = [
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
    for (agent, method, uri, action, rule) in cases {
        let d = decide(&p, agent, method.clone(), uri);
        assert_eq!(
            (d.action(), d.rule()),
            (action, rule),
            "{agent} {method} {uri}"
        );
        assert_eq!(d.effective(), action);
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
    assert_eq!(d.effective(), Action::Allow);
    assert_eq!(d.mode(), Mode::Observe);
    let said = message(&p, "a", Method::DELETE, "/api/v1/namespaces/x/pods/p");
    assert!(said.contains("is not allowed"), "{said}");
}

#[test]
fn default_policy_denies_everything_and_protects_kube_system() {
    let p = Policy::default();
    assert_eq!(p.mode, Mode::Enforce);
    assert_eq!(p.default_action(), Action::Deny);
    assert!(p.is_protected("kube-system"));
    assert!(!p.is_protected("kube-system2"));
    let d = decide(&p, "a", Method::GET, "/version");
    assert_eq!((d.action(), d.effective()), (Action::Deny, Action::Deny));
    // An empty file is the same as the built-in policy.
    let empty = policy("# nothing\n");
    assert!(empty.is_protected("kube-system"));
    assert_eq!(empty.default_action(), Action::Deny);
    assert!(
        !policy(
            "protected_namespaces: []
"
        )
        .is_protected("kube-system")
    );
}

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
    let lowered = |agent: &str, method: Method, uri: &str| {
        let info = RequestInfo::parse(&method, &uri.parse().unwrap(), false).unwrap();
        classify(&info, &p, agent).tier == Tier::T1
    };
    assert!(lowered(
        "a",
        Method::POST,
        "/api/v1/namespaces/x/configmaps"
    ));
    assert!(lowered(
        "a",
        Method::PATCH,
        "/api/v1/namespaces/x/configmaps/c"
    ));
    assert!(!lowered(
        "a",
        Method::PUT,
        "/api/v1/namespaces/x/configmaps/c"
    ));
    assert!(!lowered(
        "b",
        Method::POST,
        "/api/v1/namespaces/x/configmaps"
    ));
    assert!(!lowered(
        "a",
        Method::PATCH,
        "/api/v1/namespaces/x/configmaps/c/status"
    ));
    assert!(lowered(
        "b",
        Method::PUT,
        "/apis/apps/v1/namespaces/x/deployments/w/scale"
    ));
    assert!(!lowered(
        "b",
        Method::PUT,
        "/apis/extensions/v1beta1/namespaces/x/deployments/w/scale"
    ));
    assert!(!lowered(
        "b",
        Method::PUT,
        "/apis/apps/v1/namespaces/x/deployments/w"
    ));
    assert!(lowered(
        "b",
        Method::PATCH,
        "/api/v1/namespaces/prod/services/s"
    ));
    assert!(!lowered(
        "b",
        Method::PATCH,
        "/api/v1/namespaces/prod2/services/s"
    ));
    // Runbooks never lower T3 or T4.
    assert!(!lowered(
        "a",
        Method::POST,
        "/api/v1/namespaces/kube-system/configmaps"
    ));
    assert!(!lowered(
        "a",
        Method::DELETE,
        "/api/v1/namespaces/x/configmaps/c"
    ));
}

/// Each bad file must be rejected with the file, the key path and the problem.
#[test]
fn bad_files_name_key_path_and_problem() {
    let agent = |rule: &str| format!("agents:\n  a:\n    rules:\n      - {rule}\n");
    let cases: Vec<(String, &str, &str)> = vec![
        (agent("{namespaces: ['*'], tiers: {5: allow}}"), "agents.a.rules[0].tiers: ", "tier 5 does not exist"),
        (agent("{namespaces: ['*'], tiers: {-1: allow}}"), "agents.a.rules[0].tiers: ", "tier -1 does not exist"),
        (agent("{namespaces: ['*'], tiers: {0: alow}}"), "agents.a.rules[0].tiers", "alow"),
        (agent("{namespaces: ['*'], tiers: {zero: allow}}"), "agents.a.rules[0].tiers", "zero"),
        (agent("{namespaces: ['Prod'], tiers: {0: allow}}"), "agents.a.rules[0].namespaces[0]: ", "'P'"),
        (agent("{namespaces: ['dev-[ab]']}"), "agents.a.rules[0].namespaces[0]: ", "'['"),
        (agent("{namespaces: ['']}"), "agents.a.rules[0].namespaces[0]: ", "empty"),
        (agent("{namespaces: []}"), "agents.a.rules[0].namespaces: ", "matches nothing"),
        (agent("{tiers: {0: allow}}"), "agents.a.rules[0]", "namespaces"),
        (agent("{namespaces: ['*'], teirs: {0: allow}}"), "agents.a.rules[0]", "teirs"),
        ("default: maybe\n".into(), "default: ", "maybe"),
        ("mode: watch\n".into(), "mode: ", "watch"),
        ("defualt: deny\n".into(), "", "defualt"),
        ("protected_namespaces: ['KUBE-SYSTEM']\n".into(), "protected_namespaces[0]: ", "'K'"),
        ("agents: {a: {rule: []}}\n".into(), "agents.a", "rule"),
        (
            "agents: {a: {}}\nrunbooks:\n  r: {agents: [a, ghost], operations: [{verbs: [patch], resources: [pods]}]}\n".into(),
            "runbooks.r.agents[1]: ",
            "agent \"ghost\" is not defined under agents",
        ),
        (
            "agents: {a: {}}\nrunbooks:\n  r: {agents: [a], operations: [{verbs: [scale], resources: [pods]}]}\n".into(),
            "runbooks.r.operations[0].verbs[0]: ",
            "unknown verb \"scale\"",
        ),
        (
            "agents: {a: {}}\nrunbooks:\n  r: {agents: [a], operations: [{verbs: [patch], resources: [Pods]}]}\n".into(),
            "runbooks.r.operations[0].resources[0]: ",
            "not a resource",
        ),
        (
            "agents: {a: {}}\nrunbooks:\n  r: {agents: [a], operations: [{verbs: [patch], resources: [a/b/c]}]}\n".into(),
            "runbooks.r.operations[0].resources[0]: ",
            "not a resource",
        ),
        (
            "agents: {a: {}}\nrunbooks:\n  r: {agents: [a], operations: [{verbs: [patch], resources: []}]}\n".into(),
            "runbooks.r.operations[0]: ",
            "at least one verb and one resource",
        ),
        (
            "agents: {a: {}}\nrunbooks:\n  r: {agents: [a], operations: [{verbs: [patch], resources: [pods], namespaces: ['a b']}]}\n".into(),
            "runbooks.r.operations[0].namespaces[0]: ",
            "' '",
        ),
        (
            "agents: {a: {}}\nrunbooks:\n  r: {agents: [a], operations: [{verbs: [patch], resources: [pods], groups: [apps]}]}\n".into(),
            "runbooks.r.operations[0]",
            "groups",
        ),
        ("agents: [a]\n".into(), "agents", ""),
    ];
    for (text, key, problem) in cases {
        let err = Policy::from_yaml(&text, Path::new("/etc/sluice/policy.yaml"))
            .expect_err(&text)
            .to_string();
        assert!(
            err.starts_with("/etc/sluice/policy.yaml: "),
            "{text}→ {err}"
        );
        let rest = &err["/etc/sluice/policy.yaml: ".len()..];
        assert!(rest.starts_with(key), "{text}→ {err} (want key {key:?})");
        assert!(err.contains(problem), "{text}→ {err} (want {problem:?})");
    }
}

#[test]
fn load_reads_the_file_and_names_it_when_it_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, POLICY).unwrap();
    let p = Policy::load(&path).unwrap();
    assert_eq!(
        p.agents().collect::<Vec<_>>(),
        ["claude-code", "idle", "lister"]
    );
    let missing = dir.path().join("missing.yaml");
    let err = Policy::load(&missing).unwrap_err().to_string();
    assert!(err.contains("missing.yaml: cannot read"), "{err}");
}

#[test]
fn the_example_policy_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/policy.yaml");
    let p = Policy::load(&path).unwrap();
    assert!(p.is_protected("kube-system"));
}

#[test]
fn policy_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Policy>();
    assert_send_sync::<Decision>();
}

#[test]
fn each_verb_has_its_own_bit_in_the_order_of_verbs() {
    for (at, verb) in VERBS.iter().enumerate() {
        assert_eq!(VerbSet::bit(verb), 1 << at, "{verb}");
        assert!(VerbSet::of([*verb]).contains(verb));
    }
    assert_eq!(VerbSet::bit("escalate"), 0);
    assert_eq!(VerbSet::bit("GET"), 0);
    assert!(!VerbSet::of(["get", "list"]).contains("watch"));
}
