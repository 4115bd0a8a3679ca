//! `policy.yaml` → [`Policy`]; [`Policy::decide`] turns an agent's classified request into a
//! [`Decision`]. (Skeleton: the classify/policy work replaces this.)

use std::path::Path;

use crate::classify::Classification;
use crate::request_info::RequestInfo;
use crate::yaml::YamlError;

/// What policy says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Enforce,
    Observe,
}

/// A parsed, validated policy file.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub mode: Mode,
}

/// The outcome of [`Policy::decide`]. Only this module makes one (private fields), and only a
/// decision whose [`Decision::effective`] action is allow can become a [`crate::permit::Permit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    action: Action,
    mode: Mode,
    rule: String,
    message: String,
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
    /// Which rule decided, e.g. `agents.claude-code.rules[0]` or `default`.
    pub fn rule(&self) -> &str {
        &self.rule
    }
    /// The sentence a refused agent is told.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl Policy {
    pub fn load(path: &Path) -> Result<Policy, YamlError> {
        let _ = path;
        Ok(Policy::default())
    }

    pub fn decide(&self, agent: &str, info: &RequestInfo, class: &Classification) -> Decision {
        let _ = (info, class);
        Decision {
            action: Action::Deny,
            mode: self.mode,
            rule: "default".into(),
            message: format!("sluice: not allowed for agent {agent}"),
        }
    }
}

impl Policy {
    pub fn from_yaml(text: &str, origin: &Path) -> Result<Policy, YamlError> {
        let _ = (text, origin);
        Ok(Policy::default())
    }
}
