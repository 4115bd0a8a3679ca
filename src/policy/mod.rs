//! `policy.yaml` → [`Policy`]; [`Policy::decide`] turns an agent's classified request into a
//! [`Decision`].
//!
//! A `Policy` is compiled once ([`file`]) and never changes: hot reload swaps a whole new one
//! in (an `ArcSwap<Policy>`), so a request sees the old or the new policy, never a mix.
//! Per agent, the first rule whose namespace globs match decides; a tier the rule does not
//! list falls back to `default`. A request without a namespace matches only a rule that lists
//! `"*"`.

mod file;
#[cfg(test)]
mod file_tests;
mod glob;
mod label;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::path::Path;

use serde::Deserialize;

pub use glob::Glob;

use crate::classify::Classification;
use crate::request_info::{RequestInfo, Verb};
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
    protected: Vec<Glob>,
    /// Sorted by name (the file's agents are a map, read in order), so that a request finds
    /// its agent's rules by binary search: scanning them cost 32 µs at 10,000 agents.
    agents: Vec<AgentRules>,
    runbooks: Vec<Runbook>,
}

/// The outcome of [`Policy::decide`]. Only this module makes one (private fields), and only a
/// decision whose [`Decision::effective`] action is allow can become a [`crate::permit::Permit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    action: Action,
    mode: Mode,
    rule: Cow<'static, str>,
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
    /// What [`Decision::rule`] says for each tier, built (and interned) at load so deciding
    /// neither allocates nor counts references.
    labels: [&'static str; 5],
}

#[derive(Debug, Clone)]
struct Runbook {
    name: Box<str>,
    /// " (runbook NAME)", what a lowered classification's reason gets, built at load.
    reason: Box<str>,
    /// Sorted, for a binary search on every request of tier 2.
    agents: Vec<Box<str>>,
    operations: Vec<Operation>,
}

#[derive(Debug, Clone)]
struct Operation {
    verbs: VerbSet,
    /// `(resource, subresource)`: `deployments/scale` → `("deployments", Some("scale"))`.
    resources: Vec<(Box<str>, Option<Box<str>>)>,
    api_groups: Option<Vec<Box<str>>>,
    namespaces: Option<Vec<Glob>>,
}

impl Decision {
    /// What policy decided (what is recorded in the audit log).
    pub fn action(&self) -> Action {
        self.action
    }
    /// What happens: in observe mode everything is let through.
    pub fn effective(&self) -> Action {
        match self.mode {
            Mode::Observe => Action::Allow,
            Mode::Enforce => self.action,
        }
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
    /// [`Decision::rule`], to keep: a rule's label is interned at policy load, so a request's
    /// record keeps it without copying the string (only the label of an agent without rules
    /// is built per request).
    pub fn rule_label(&self) -> Cow<'static, str> {
        self.rule.clone()
    }
    /// The sentence a refused agent is told (for allow: `sluice: allowed`), from the same
    /// request and classification this decision was made for. Built only when it is sent:
    /// an allowed request, or a refused one in observe mode, never pays for the formatting.
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
            // A constant, valid pattern: compiling it cannot fail.
            protected: Glob::new("kube-system").into_iter().collect(),
            agents: Vec::new(),
            runbooks: Vec::new(),
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

    /// Whether writes in `namespace` are break-glass (`protected_namespaces`).
    pub fn is_protected(&self, namespace: &str) -> bool {
        self.protected.iter().any(|glob| glob.matches(namespace))
    }

    /// The names of the agents that have rules.
    pub fn agents(&self) -> impl Iterator<Item = &str> {
        self.agents.iter().map(|a| &*a.name)
    }

    /// The first runbook that lets `agent` do `info`, if any: its name, and what a
    /// classification's reason says of it (" (runbook NAME)").
    pub fn runbook_for(&self, agent: &str, info: &RequestInfo) -> Option<(&str, &str)> {
        self.runbooks
            .iter()
            .filter(|rb| rb.agents.binary_search_by(|a| (**a).cmp(agent)).is_ok())
            .find(|rb| rb.operations.iter().any(|op| op.covers(info)))
            .map(|rb| (&*rb.name, &*rb.reason))
    }

    pub fn decide(&self, agent: &str, info: &RequestInfo, class: &Classification) -> Decision {
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
                Cow::Owned(format!("default (no rules for agent {agent})")),
            ),
            Some(rules) => match rules.rules.iter().find(|r| r.covers(namespace)) {
                Some(rule) => (
                    rule.tiers[tier].unwrap_or(self.default),
                    Cow::Borrowed(rule.labels[tier]),
                ),
                None => (self.default, Cow::Borrowed("default")),
            },
        };
        Decision {
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

/// The verbs a runbook operation may name: every [`Verb`] but the legacy proxy, which is
/// always T4 and so never lowered.
fn runbook_verbs() -> impl Iterator<Item = Verb> {
    Verb::ALL.into_iter().filter(|verb| *verb != Verb::Proxy)
}

/// The runbook verb `name` names, if it names one.
fn runbook_verb(name: &str) -> Option<Verb> {
    Verb::from_name(name).filter(|verb| *verb != Verb::Proxy)
}

/// A set of verbs, one bit each: a runbook's verbs are checked with one AND, not a string
/// comparison per verb.
#[derive(Debug, Clone, Copy, Default)]
struct VerbSet(u16);

impl VerbSet {
    /// This set and `verb`.
    fn with(self, verb: Verb) -> VerbSet {
        VerbSet(self.0 | VerbSet::bit(verb))
    }
    fn bit(verb: Verb) -> u16 {
        1 << verb as u16
    }
    fn contains(self, verb: Verb) -> bool {
        self.0 & VerbSet::bit(verb) != 0
    }
}

impl Operation {
    fn covers(&self, info: &RequestInfo) -> bool {
        let (Some(verb), Some((resource, sub))) = (info.kube_verb(), info.resource_path()) else {
            return false;
        };
        self.verbs.contains(verb)
            && self
                .resources
                .iter()
                .any(|(r, s)| **r == *resource && s.as_deref() == sub)
            && self
                .api_groups
                .as_ref()
                .is_none_or(|groups| groups.iter().any(|g| **g == *info.api_group()))
            && self
                .namespaces
                .as_ref()
                .is_none_or(|globs| match info.namespace() {
                    None => globs.iter().any(Glob::is_any),
                    Some(ns) => globs.iter().any(|glob| glob.matches(ns)),
                })
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
    let tier = char::from(b'0' + class.tier.as_u8());
    let mut out = String::with_capacity(96 + class.reason.len() + agent.len() + rule.len());
    for piece in [
        "sluice: tier ",
        tier.encode_utf8(&mut [0; 4]),
        " (",
        &class.reason,
        ") ",
    ] {
        out.push_str(piece);
    }
    for piece in [verdict, " for agent ", agent] {
        out.push_str(piece);
    }
    if let Some(ns) = namespace {
        out.push_str(" in namespace ");
        out.push_str(ns);
    }
    for piece in [" (rule ", rule, ")"] {
        out.push_str(piece);
    }
    out
}
