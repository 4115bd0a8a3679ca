//! `credentials.yaml` checked entry by entry into [`Credentials`]: names plain and unique,
//! token hashes 64 hex characters and never shared (not even between an agent and an
//! approver), SPIFFE ids `spiffe://` URIs listed once. Each error names the entry's key.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use super::{AgentEntry, AgentSpec, ApproverSpec, Credentials};
use crate::yaml::YamlError;

/// Credentials as they are read, with what the next entry must not repeat.
pub(super) struct Building<'a> {
    origin: &'a Path,
    creds: Credentials,
    hashes: HashSet<[u8; 32]>,
    agent_names: HashSet<String>,
    approver_names: HashSet<String>,
}

impl Building<'_> {
    pub(super) fn new(origin: &Path) -> Building<'_> {
        Building {
            origin,
            creds: Credentials::default(),
            hashes: HashSet::new(),
            agent_names: HashSet::new(),
            approver_names: HashSet::new(),
        }
    }

    pub(super) fn done(self) -> Credentials {
        self.creds
    }

    /// Adds `agents[i]`.
    pub(super) fn add_agent(&mut self, i: usize, agent: AgentSpec) -> Result<(), YamlError> {
        let key = format!("agents[{i}]");
        check_name(&agent.name).map_err(|m| self.fail(format!("{key}.name"), m))?;
        if !self.agent_names.insert(agent.name.clone()) {
            let message = format!("agent {:?} is listed twice", agent.name);
            return Err(self.fail(format!("{key}.name"), message));
        }
        if agent.token_sha256.is_none() && agent.spiffe_id.is_none() {
            return Err(self.fail(key, "an agent needs token_sha256 or spiffe_id".into()));
        }
        let entry = Arc::new(AgentEntry {
            name: Arc::from(agent.name.as_str()),
            labels: Arc::new(agent.labels),
        });
        if let Some(hex) = &agent.token_sha256 {
            let key = format!("{key}.token_sha256");
            let hash = parse_hash(hex).map_err(|m| self.fail(key.clone(), m))?;
            if !self.hashes.insert(hash) {
                return Err(self.fail(key, "the same token hash is listed twice".into()));
            }
            self.creds.agent_tokens.insert(hash, entry.clone());
        }
        if let Some(id) = agent.spiffe_id {
            let key = format!("{key}.spiffe_id");
            if !id.starts_with("spiffe://") || id.len() <= "spiffe://".len() {
                return Err(self.fail(key, format!("{id:?} is not a spiffe:// URI")));
            }
            if self.creds.agent_spiffe.contains_key(&id) {
                return Err(self.fail(key, format!("{id:?} is listed twice")));
            }
            self.creds.agent_spiffe.insert(id, entry.clone());
        }
        self.creds.agent_names.push(entry.name.clone());
        Ok(())
    }

    /// Adds `approvers[i]`.
    pub(super) fn add_approver(
        &mut self,
        i: usize,
        approver: ApproverSpec,
    ) -> Result<(), YamlError> {
        let key = format!("approvers[{i}]");
        check_name(&approver.name).map_err(|m| self.fail(format!("{key}.name"), m))?;
        if !self.approver_names.insert(approver.name.clone()) {
            let message = format!("approver {:?} is listed twice", approver.name);
            return Err(self.fail(format!("{key}.name"), message));
        }
        let key = format!("{key}.token_sha256");
        let hash = parse_hash(&approver.token_sha256).map_err(|m| self.fail(key.clone(), m))?;
        if !self.hashes.insert(hash) {
            let message = "this token hash is already someone else's".into();
            return Err(self.fail(key, message));
        }
        let name: Arc<str> = Arc::from(approver.name.as_str());
        self.creds.approver_tokens.insert(hash, name.clone());
        self.creds.approver_names.push(name);
        Ok(())
    }

    fn fail(&self, key: String, message: String) -> YamlError {
        YamlError::Parse {
            path: self.origin.to_owned(),
            key: format!("{key}: "),
            message,
        }
    }
}

fn parse_hash(text: &str) -> Result<[u8; 32], String> {
    let mut hash = [0u8; 32];
    if text.len() != 64 || hex::decode_to_slice(text, &mut hash).is_err() {
        return Err(format!(
            "must be 64 hex characters (the SHA-256 of the token), got {} characters",
            text.len()
        ));
    }
    Ok(hash)
}

/// Names appear in Impersonate-User, log lines and kubeconfigs: keep them plain.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.'
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid name (1-63 of a-z, 0-9, '-', '_', '.')"
        ))
    }
}
