//! The shape of `policy.yaml` as written, and its compilation into a [`Policy`]: every
//! semantic check happens here, once, naming the key path of what is wrong.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{Action, AgentRules, Mode, Policy, Rule};
use crate::classify::{Classifier, Glob, Operation, Runbook, Tier};
use crate::request_info::Verb;
use crate::yaml::YamlError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PolicyFile {
    #[serde(default = "deny")]
    default: Action,
    #[serde(default)]
    mode: Mode,
    #[serde(default = "kube_system")]
    protected_namespaces: Vec<String>,
    #[serde(default)]
    agents: BTreeMap<String, AgentFile>,
    #[serde(default)]
    runbooks: BTreeMap<String, RunbookFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentFile {
    #[serde(default)]
    rules: Vec<RuleFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    namespaces: Vec<String>,
    #[serde(default)]
    tiers: BTreeMap<TierKey, Action>,
}

/// A key of a rule's `tiers` map as written: checked to be 0..=4 in [`compile_rule`], where
/// the error can name the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct TierKey(i64);

impl<'de> Deserialize<'de> for TierKey {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<TierKey, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = TierKey;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a tier number 0 to 4")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<TierKey, E> {
                Ok(TierKey(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<TierKey, E> {
                Ok(TierKey(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<TierKey, E> {
                let digits = v.strip_prefix(['T', 't']).unwrap_or(v);
                digits.parse().map(TierKey).map_err(|_| {
                    E::custom(format!("tier {v:?} is not a tier number; tiers are 0 to 4"))
                })
            }
        }
        de.deserialize_any(Visitor)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunbookFile {
    agents: Vec<String>,
    operations: Vec<OperationFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OperationFile {
    verbs: Vec<String>,
    resources: Vec<String>,
    #[serde(default)]
    api_groups: Option<Vec<String>>,
    #[serde(default)]
    namespaces: Option<Vec<String>>,
}

/// Parses `text` (from `origin`) into the file's shape; errors name the key path.
pub(super) fn parse_text(text: &str, origin: &Path) -> Result<PolicyFile, YamlError> {
    crate::yaml::parse_str(text, origin)
}

fn deny() -> Action {
    Action::Deny
}

fn kube_system() -> Vec<String> {
    vec!["kube-system".to_owned()]
}

/// Builds the key-path error for `origin`.
struct Errors<'a> {
    origin: &'a Path,
}

impl Errors<'_> {
    fn at(&self, key: String, message: String) -> YamlError {
        YamlError::Parse {
            path: self.origin.to_owned(),
            key: format!("{key}: "),
            message,
        }
    }

    fn globs(&self, key: &str, patterns: &[String]) -> Result<Vec<Glob>, YamlError> {
        patterns
            .iter()
            .enumerate()
            .map(|(i, p)| Glob::new(p).map_err(|m| self.at(format!("{key}[{i}]"), m)))
            .collect()
    }
}

impl PolicyFile {
    /// Checks and compiles the file read from `origin`.
    pub(super) fn compile(self, origin: &Path) -> Result<Policy, YamlError> {
        let errors = Errors { origin };
        let protected = errors.globs("protected_namespaces", &self.protected_namespaces)?;
        let mut agents = Vec::with_capacity(self.agents.len());
        for (name, agent) in &self.agents {
            let rules = agent
                .rules
                .iter()
                .enumerate()
                .map(|(i, rule)| compile_rule(&errors, &format!("agents.{name}.rules[{i}]"), rule))
                .collect::<Result<_, _>>()?;
            agents.push(AgentRules {
                name: name.as_str().into(),
                rules,
            });
        }
        // Already in order (a BTreeMap); decide() relies on it, so it is made sure of.
        agents.sort_by(|a, b| a.name.cmp(&b.name));
        let mut runbooks = Vec::with_capacity(self.runbooks.len());
        for (name, runbook) in &self.runbooks {
            runbooks.push(compile_runbook(&errors, name, runbook, &self.agents)?);
        }
        Ok(Policy {
            mode: self.mode,
            default: self.default,
            classifier: Classifier::new(protected, runbooks),
            agents,
        })
    }
}

fn compile_rule(errors: &Errors<'_>, key: &str, rule: &RuleFile) -> Result<Rule, YamlError> {
    if rule.namespaces.is_empty() {
        let message = "a rule with no namespaces matches nothing; use [\"*\"] for all".into();
        return Err(errors.at(format!("{key}.namespaces"), message));
    }
    let namespaces = errors.globs(&format!("{key}.namespaces"), &rule.namespaces)?;
    let mut tiers = [None; 5];
    for (&TierKey(tier), &action) in &rule.tiers {
        let slot = u8::try_from(tier)
            .ok()
            .and_then(Tier::from_u8)
            .ok_or_else(|| {
                let message = format!("tier {tier} does not exist; tiers are 0 to 4");
                errors.at(format!("{key}.tiers"), message)
            })?;
        tiers[usize::from(slot.as_u8())] = Some(action);
    }
    let labels = std::array::from_fn(|n| match tiers[n] {
        Some(_) => key.into(),
        None => format!("default ({key} lists no tier {n})").into(),
    });
    Ok(Rule {
        matches_no_namespace: namespaces.iter().any(Glob::is_any),
        namespaces,
        tiers,
        labels,
    })
}

fn compile_runbook(
    errors: &Errors<'_>,
    name: &str,
    runbook: &RunbookFile,
    agents: &BTreeMap<String, AgentFile>,
) -> Result<Runbook, YamlError> {
    let key = format!("runbooks.{name}");
    for (i, agent) in runbook.agents.iter().enumerate() {
        if !agents.contains_key(agent) {
            let message = format!("agent {agent:?} is not defined under agents");
            return Err(errors.at(format!("{key}.agents[{i}]"), message));
        }
    }
    let mut operations = Vec::with_capacity(runbook.operations.len());
    for (i, op) in runbook.operations.iter().enumerate() {
        operations.push(compile_operation(
            errors,
            &format!("{key}.operations[{i}]"),
            op,
        )?);
    }
    let agents = runbook.agents.iter().map(String::as_str);
    Ok(Runbook::new(name, agents, operations))
}

fn compile_operation(
    errors: &Errors<'_>,
    key: &str,
    op: &OperationFile,
) -> Result<Operation, YamlError> {
    let mut verbs = Vec::with_capacity(op.verbs.len());
    for (i, name) in op.verbs.iter().enumerate() {
        // The legacy proxy verb is always T4, so never lowered.
        let Some(verb) = Verb::from_name(name).filter(|verb| *verb != Verb::Proxy) else {
            let names: Vec<&str> = Verb::ALL
                .iter()
                .filter(|verb| **verb != Verb::Proxy)
                .map(|verb| verb.as_str())
                .collect();
            let message = format!(
                "unknown verb {name:?}; expected one of {}",
                names.join(", ")
            );
            return Err(errors.at(format!("{key}.verbs[{i}]"), message));
        };
        verbs.push(verb);
    }
    if op.verbs.is_empty() || op.resources.is_empty() {
        let message = "an operation needs at least one verb and one resource".into();
        return Err(errors.at(key.to_owned(), message));
    }
    let mut resources = Vec::with_capacity(op.resources.len());
    for (i, resource) in op.resources.iter().enumerate() {
        let (res, sub) = match resource.split_once('/') {
            Some((res, sub)) => (res, Some(sub)),
            None => (resource.as_str(), None),
        };
        let well_formed = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        };
        if !well_formed(res) || !sub.is_none_or(well_formed) {
            let message = format!("{resource:?} is not a resource or resource/subresource");
            return Err(errors.at(format!("{key}.resources[{i}]"), message));
        }
        resources.push((res.into(), sub.map(Into::into)));
    }
    let namespaces = match &op.namespaces {
        Some(patterns) => Some(errors.globs(&format!("{key}.namespaces"), patterns)?),
        None => None,
    };
    let api_groups = op
        .api_groups
        .as_ref()
        .map(|groups| groups.iter().map(|g| g.as_str().into()).collect());
    Ok(Operation::new(verbs, resources, api_groups, namespaces))
}
