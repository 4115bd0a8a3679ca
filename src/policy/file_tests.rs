//! Reading a policy file: what it may say, and how each refusal names the file, the key
//! path and the problem.

use std::path::Path;

use super::*;

/// A policy with one agent, `a`, and one rule.
macro_rules! agent {
    ($rule:literal) => {
        concat!("agents:\n  a:\n    rules:\n      - ", $rule, "\n")
    };
}

/// (a bad file, the key path its error names, the problem it names)
#[rustfmt::skip]
const BAD_FILES: &[(&str, &str, &str)] = &[
    (agent!("{namespaces: ['*'], tiers: {5: allow}}"), "agents.a.rules[0].tiers: ", "tier 5 does not exist"),
    (agent!("{namespaces: ['*'], tiers: {-1: allow}}"), "agents.a.rules[0].tiers: ", "tier -1 does not exist"),
    (agent!("{namespaces: ['*'], tiers: {0: alow}}"), "agents.a.rules[0].tiers", "alow"),
    (agent!("{namespaces: ['*'], tiers: {zero: allow}}"), "agents.a.rules[0].tiers", "zero"),
    (agent!("{namespaces: ['Prod'], tiers: {0: allow}}"), "agents.a.rules[0].namespaces[0]: ", "'P'"),
    (agent!("{namespaces: ['dev-[ab]']}"), "agents.a.rules[0].namespaces[0]: ", "'['"),
    (agent!("{namespaces: ['']}"), "agents.a.rules[0].namespaces[0]: ", "empty"),
    (agent!("{namespaces: []}"), "agents.a.rules[0].namespaces: ", "matches nothing"),
    (agent!("{tiers: {0: allow}}"), "agents.a.rules[0]", "namespaces"),
    (agent!("{namespaces: ['*'], teirs: {0: allow}}"), "agents.a.rules[0]", "teirs"),
    ("default: maybe\n", "default: ", "maybe"),
    ("mode: watch\n", "mode: ", "watch"),
    ("defualt: deny\n", "", "defualt"),
    ("protected_namespaces: ['KUBE-SYSTEM']\n", "protected_namespaces[0]: ", "'K'"),
    ("agents: {a: {rule: []}}\n", "agents.a", "rule"),
    (
        "agents: {a: {}}\nrunbooks:\n  r: {agents: [a, ghost], operations: [{verbs: [patch], resources: [pods]}]}\n",
        "runbooks.r.agents[1]: ",
        "agent \"ghost\" is not defined under agents",
    ),
    (
        "agents: {a: {}}\nrunbooks:\n  r: {agents: [a], operations: [{verbs: [scale], resources: [pods]}]}\n",
        "runbooks.r.operations[0].verbs[0]: ",
        "unknown verb \"scale\"",
    ),
    (
        // The legacy proxy verb is a Verb, but no runbook may lower it (it is always T4).
        "agents: {a: {}}\nrunbooks:\n  r: {agents: [a], operations: [{verbs: [get, proxy], resources: [pods]}]}\n",
        "runbooks.r.operations[0].verbs[1]: ",
        "unknown verb \"proxy\"; expected one of get, list, watch, create, update, patch, delete, deletecollection",
    ),
    (
        "agents: {a: {}}\nrunbooks:\n  r: {agents: [a], operations: [{verbs: [patch], resources: [Pods]}]}\n",
        "runbooks.r.operations[0].resources[0]: ",
        "not a resource",
    ),
    (
        "agents: {a: {}}\nrunbooks:\n  r: {agents: [a], operations: [{verbs: [patch], resources: [a/b/c]}]}\n",
        "runbooks.r.operations[0].resources[0]: ",
        "not a resource",
    ),
    (
        "agents: {a: {}}\nrunbooks:\n  r: {agents: [a], operations: [{verbs: [patch], resources: []}]}\n",
        "runbooks.r.operations[0]: ",
        "at least one verb and one resource",
    ),
    (
        "agents: {a: {}}\nrunbooks:\n  r: {agents: [a], operations: [{verbs: [patch], resources: [pods], namespaces: ['a b']}]}\n",
        "runbooks.r.operations[0].namespaces[0]: ",
        "' '",
    ),
    (
        "agents: {a: {}}\nrunbooks:\n  r: {agents: [a], operations: [{verbs: [patch], resources: [pods], groups: [apps]}]}\n",
        "runbooks.r.operations[0]",
        "groups",
    ),
    ("agents: [a]\n", "agents", ""),
];

/// Each bad file must be rejected with the file, the key path and the problem.
#[test]
fn bad_files_name_key_path_and_problem() {
    for &(text, key, problem) in BAD_FILES {
        let err = Policy::from_yaml(text, Path::new("/etc/sluice/policy.yaml"))
            .expect_err(text)
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
    std::fs::write(&path, super::tests::POLICY).unwrap();
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
    assert!(p.classifier().is_protected("kube-system"));
}
