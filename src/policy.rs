//! `policy.yaml` → [`Policy`]; [`Policy::verdict`] says what the rules make of an agent's
//! classified request, and [`Verdict::decide`] turns that into what comes next: a
//! [`Decision`] that holds the [`Permit`] to forward, the [`Escalation`] to hold for
//! approval, or the refusal.
//!
//! A `Policy` is compiled once ([`file`]) and never changes: hot reload swaps a whole new one
//! in (an `ArcSwap<Policy>`), so a request sees the old or the new policy, never a mix.
//! Per agent, the first rule whose namespace globs match decides; a tier the rule does not
//! list falls back to `default`. A request without a namespace matches only a rule that lists
//! `"*"`.

mod file;
#[cfg(test)]
mod file_tests;
mod permit;
#[cfg(test)]
mod runbook_tests;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

use http::HeaderValue;
use serde::Deserialize;

pub use permit::{Escalation, Lane, Permit};

use crate::classify::{Classification, Classifier, Glob};
use crate::request_info::RequestInfo;
use crate::yaml::YamlError;

/// What policy says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Escalate,
    Deny,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Escalate => "escalate",
            Action::Deny => "deny",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Enforce,
    /// Decide and record, but let everything through.
    Observe,
}

/// A parsed, validated, immutable policy.
#[derive(Debug, Clone)]
pub struct Policy {
    pub mode: Mode,
    default: Action,
    /// Protected namespaces and runbooks, compiled into classification rules.
    classifier: Classifier,
    /// Sorted by name, so that a request finds its agent's rules by binary search: a scan
    /// grows with the agents (tens of µs a request at 10,000).
    agents: Vec<AgentRules>,
}

/// What the rules say about one request: the action, and the rule that chose it. This is
/// what the audit log records, in observe mode too. Only this module makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    action: Action,
    mode: Mode,
    rule: Arc<str>,
}

/// What comes next for a request, holding what that step needs.
#[derive(Debug)]
pub enum Decision {
    /// Forward it (also what observe mode does with every request).
    Allow(Permit),
    /// Hold it until humans approve; the escalation becomes a permit if they do.
    Escalate(Escalation),
    /// Refuse it (403) with this sentence.
    Deny(String),
}

#[derive(Debug, Clone)]
struct AgentRules {
    name: Box<str>,
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    namespaces: Vec<Glob>,
    /// Whether one of `namespaces` is `*`.
    matches_no_namespace: bool,
    /// Indexed by tier; `None` falls back to the policy default.
    tiers: [Option<Action>; 5],
    /// What [`Verdict::rule`] says for each tier, built at load.
    labels: [Arc<str>; 5],
}

impl Verdict {
    /// What the rules say (what is recorded in the audit log).
    pub fn action(&self) -> Action {
        self.action
    }
    pub fn mode(&self) -> Mode {
        self.mode
    }
    /// Which rule decided, e.g. `agents.claude-code.rules[0]`, `default`,
    /// `default (agents.claude-code.rules[0] lists no tier 3)` or
    /// `default (no rules for agent X)`.
    pub fn rule(&self) -> &str {
        &self.rule
    }
    /// [`Verdict::rule`], to keep (shared, not copied).
    pub fn rule_label(&self) -> Arc<str> {
        self.rule.clone()
    }
    /// What comes next for the request this verdict is about (`request_id`, `agent`, `info`
    /// classified as `class`): its action, or, in observe mode, always allow.
    pub fn decide(
        &self,
        request_id: HeaderValue,
        agent: &Arc<str>,
        info: &RequestInfo,
        class: &Classification,
    ) -> Decision {
        let permit = || Permit::new(request_id, agent.clone(), info);
        match (self.mode, self.action) {
            (Mode::Observe, _) | (Mode::Enforce, Action::Allow) => Decision::Allow(permit()),
            (Mode::Enforce, Action::Escalate) => {
                let message = self.message(class, agent, info).into_owned();
                Decision::Escalate(Escalation::new(permit(), message))
            }
            (Mode::Enforce, Action::Deny) => {
                Decision::Deny(self.message(class, agent, info).into_owned())
            }
        }
    }

    /// The sentence a refused agent is told (for allow: `sluice: allowed`), from the same
    /// request and classification this verdict was made for.
    pub fn message(
        &self,
        class: &Classification,
        agent: &str,
        info: &RequestInfo,
    ) -> Cow<'static, str> {
        match self.action {
            Action::Allow => Cow::Borrowed("sluice: allowed"),
            action => Cow::Owned(refusal(action, class, agent, info.namespace(), &self.rule)),
        }
    }
}

impl Default for Policy {
    /// The built-in policy: deny everything, protect `kube-system`.
    fn default() -> Policy {
        Policy {
            mode: Mode::Enforce,
            default: Action::Deny,
            classifier: Classifier::default(),
            agents: Vec::new(),
        }
    }
}

impl Policy {
    /// Reads and compiles `path`; errors name the file, the key path and the problem.
    pub fn load(path: &Path) -> Result<Policy, YamlError> {
        let text = std::fs::read_to_string(path).map_err(|source| YamlError::Read {
            path: path.to_owned(),
            source,
        })?;
        Policy::from_yaml(&text, path)
    }

    /// Compiles `text` (already read from `origin`, e.g. on hot reload).
    pub fn from_yaml(text: &str, origin: &Path) -> Result<Policy, YamlError> {
        file::parse_text(text, origin)?.compile(origin)
    }

    /// The action for a request no rule covers.
    pub fn default_action(&self) -> Action {
        self.default
    }

    /// The classification rules this policy adds (protected namespaces, runbooks).
    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }

    /// The names of the agents that have rules.
    pub fn agents(&self) -> impl Iterator<Item = &str> {
        self.agents.iter().map(|a| &*a.name)
    }

    /// What the rules say about `agent` doing `info`, classified as `class`.
    pub fn verdict(&self, agent: &str, info: &RequestInfo, class: &Classification) -> Verdict {
        let namespace = info.namespace();
        let tier = usize::from(class.tier.as_u8());
        let found = self
            .agents
            .binary_search_by(|a| (*a.name).cmp(agent))
            .ok()
            .and_then(|at| self.agents.get(at));
        let (action, rule) = match found {
            None => (
                self.default,
                Arc::from(format!("default (no rules for agent {agent})")),
            ),
            Some(rules) => match rules.rules.iter().find(|r| r.covers(namespace)) {
                Some(rule) => (
                    rule.tiers[tier].unwrap_or(self.default),
                    rule.labels[tier].clone(),
                ),
                None => (self.default, Arc::from("default")),
            },
        };
        Verdict {
            action,
            mode: self.mode,
            rule,
        }
    }
}

impl Rule {
    fn covers(&self, namespace: Option<&str>) -> bool {
        match namespace {
            None => self.matches_no_namespace,
            Some(ns) => self.namespaces.iter().any(|glob| glob.matches(ns)),
        }
    }
}

/// "sluice: tier 3 (delete of pods) is not allowed for agent claude-code in namespace prod
/// (rule agents.claude-code.rules[1])"
fn refusal(
    action: Action,
    class: &Classification,
    agent: &str,
    namespace: Option<&str>,
    rule: &str,
) -> String {
    let verdict = match action {
        Action::Escalate => "requires human approval",
        _ => "is not allowed",
    };
    let (in_namespace, namespace) = match namespace {
        Some(ns) => (" in namespace ", ns),
        None => ("", ""),
    };
    [
        "sluice: tier ",
        class.tier.as_str(),
        " (",
        &class.reason,
        ") ",
        verdict,
        " for agent ",
        agent,
        in_namespace,
        namespace,
        " (rule ",
        rule,
        ")",
    ]
    .concat()
}
