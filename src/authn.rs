//! Who is speaking. An agent proves itself with a bearer token (sluice stores only its
//! SHA-256, compared in constant time) or a client certificate whose SPIFFE id is listed in
//! `credentials.yaml`. Approvers authenticate the same way on the admin listener only.

mod build;
mod file;
mod token_index;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::yaml::{self, YamlError};

pub use file::{AgentSpec, ApproverSpec, CredentialsFile};
use token_index::TokenIndex;

/// How an agent proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Token,
    Mtls,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Token => "token",
            AuthMethod::Mtls => "mtls",
        }
    }
}

/// An authenticated agent: the hand-off from authentication to the rest of the pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentIdentity {
    pub name: Arc<str>,
    pub labels: Arc<BTreeMap<String, String>>,
    pub auth: AuthMethod,
}

/// Why a request has no identity. Every variant is answered with the same 401: an agent is
/// not told which part of its credential was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthnError {
    #[error("no credential presented")]
    Missing,
    #[error("malformed Authorization header")]
    Malformed,
    #[error("more than one Authorization header")]
    Duplicate,
    #[error("token matches no agent")]
    UnknownToken,
    #[error("client certificate matches no agent")]
    UnknownCertificate,
}

/// `credentials.yaml`, validated: agents and approvers by token hash and SPIFFE id.
#[derive(Debug, Default)]
pub struct Credentials {
    agent_tokens: TokenIndex<Arc<AgentEntry>>,
    agent_spiffe: HashMap<String, Arc<AgentEntry>>,
    approver_tokens: TokenIndex<Arc<str>>,
    agent_names: Vec<Arc<str>>,
    approver_names: Vec<Arc<str>>,
}

#[derive(Debug)]
struct AgentEntry {
    name: Arc<str>,
    labels: Arc<BTreeMap<String, String>>,
}

impl Credentials {
    /// Reads and validates a credentials file.
    pub fn load(path: &Path) -> Result<Credentials, YamlError> {
        let text = std::fs::read_to_string(path).map_err(|source| YamlError::Read {
            path: path.to_owned(),
            source,
        })?;
        Credentials::from_yaml(&text, path)
    }

    /// Parses and validates credentials from `text`, naming `origin` in errors.
    pub fn from_yaml(text: &str, origin: &Path) -> Result<Credentials, YamlError> {
        let file: CredentialsFile = yaml::parse_str(text, origin)?;
        let mut building = build::Building::new(origin);
        for (i, agent) in file.agents.into_iter().enumerate() {
            building.add_agent(i, agent)?;
        }
        for (i, approver) in file.approvers.into_iter().enumerate() {
            building.add_approver(i, approver)?;
        }
        Ok(building.done())
    }

    /// Authenticates an agent from its request headers and, if it presented one, the SPIFFE
    /// id of its verified client certificate. A bearer token, when present, must be valid:
    /// a bad token is never rescued by a certificate.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        spiffe_id: Option<&str>,
    ) -> Result<AgentIdentity, AuthnError> {
        match bearer_token(headers)? {
            Some(token) => {
                let entry = self
                    .agent_tokens
                    .find(token)
                    .ok_or(AuthnError::UnknownToken)?;
                Ok(identity(entry, AuthMethod::Token))
            }
            None => {
                let id = spiffe_id.ok_or(AuthnError::Missing)?;
                let entry = self
                    .agent_spiffe
                    .get(id)
                    .ok_or(AuthnError::UnknownCertificate)?;
                Ok(identity(entry, AuthMethod::Mtls))
            }
        }
    }

    /// Authenticates an approver on the admin listener. Agent tokens are not accepted.
    pub fn authenticate_approver(&self, headers: &HeaderMap) -> Result<Arc<str>, AuthnError> {
        let token = bearer_token(headers)?.ok_or(AuthnError::Missing)?;
        self.approver_tokens
            .find(token)
            .cloned()
            .ok_or(AuthnError::UnknownToken)
    }

    pub fn agent_names(&self) -> &[Arc<str>] {
        &self.agent_names
    }

    pub fn approver_names(&self) -> &[Arc<str>] {
        &self.approver_names
    }
}

/// The SHA-256 of a token as stored in `credentials.yaml`.
pub fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The token of the request's one `Authorization: Bearer` header, if any.
fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, AuthnError> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthnError::Duplicate);
    }
    let value = value.to_str().map_err(|_| AuthnError::Malformed)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthnError::Malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AuthnError::Malformed);
    }
    Ok(Some(token))
}

fn identity(entry: &AgentEntry, auth: AuthMethod) -> AgentIdentity {
    AgentIdentity {
        name: entry.name.clone(),
        labels: entry.labels.clone(),
        auth,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        let yaml = format!(
            "agents:\n  - {{name: claude-code, token_sha256: \"{}\", spiffe_id: \"spiffe://sluice.local/agent/claude-code\", labels: {{workload: tool}}}}\n  - {{name: runner, token_sha256: \"{}\"}}\napprovers:\n  - {{name: alice, token_sha256: \"{}\"}}\n",
            token_sha256("tok-claude"),
            token_sha256("tok-runner"),
            token_sha256("tok-alice"),
        );
        Credentials::from_yaml(&yaml, Path::new("credentials.yaml")).unwrap()
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
        headers
    }

    #[test]
    fn tokens_map_to_agents() {
        let c = creds();
        let id = c.authenticate(&bearer("tok-runner"), None).unwrap();
        assert_eq!(&*id.name, "runner");
        assert_eq!(id.auth, AuthMethod::Token);
        assert_eq!(
            c.authenticate(&bearer("nope"), None),
            Err(AuthnError::UnknownToken)
        );
        assert_eq!(
            c.authenticate(&HeaderMap::new(), None),
            Err(AuthnError::Missing)
        );
    }

    #[test]
    fn certificates_map_by_spiffe_id() {
        let c = creds();
        let id = c
            .authenticate(
                &HeaderMap::new(),
                Some("spiffe://sluice.local/agent/claude-code"),
            )
            .unwrap();
        assert_eq!(&*id.name, "claude-code");
        assert_eq!(id.auth, AuthMethod::Mtls);
        assert_eq!(id.labels.get("workload").map(String::as_str), Some("tool"));
        assert_eq!(
            c.authenticate(&HeaderMap::new(), Some("spiffe://other/x")),
            Err(AuthnError::UnknownCertificate)
        );
    }

    #[test]
    fn a_bad_token_is_not_rescued_by_a_certificate() {
        let c = creds();
        let got = c.authenticate(
            &bearer("nope"),
            Some("spiffe://sluice.local/agent/claude-code"),
        );
        assert_eq!(got, Err(AuthnError::UnknownToken));
    }

    #[test]
    fn malformed_and_duplicate_authorization_are_refused() {
        let c = creds();
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(c.authenticate(&headers, None), Err(AuthnError::Malformed));
        let mut headers = bearer("tok-runner");
        headers.append("authorization", "Bearer tok-claude".parse().unwrap());
        assert_eq!(c.authenticate(&headers, None), Err(AuthnError::Duplicate));
    }

    #[test]
    fn approver_tokens_work_only_as_approvers() {
        let c = creds();
        assert_eq!(
            &*c.authenticate_approver(&bearer("tok-alice")).unwrap(),
            "alice"
        );
        assert_eq!(
            c.authenticate_approver(&bearer("tok-claude")),
            Err(AuthnError::UnknownToken)
        );
        assert_eq!(
            c.authenticate(&bearer("tok-alice"), None),
            Err(AuthnError::UnknownToken)
        );
    }

    #[test]
    fn bad_files_name_the_key_and_problem() {
        let cases = [
            (
                "agents: [{name: a, token_sha256: abc}]",
                "agents[0].token_sha256: must be 64 hex",
            ),
            (
                "agents: [{name: a}]",
                "agents[0]: an agent needs token_sha256 or spiffe_id",
            ),
            (
                "agents: [{name: A!, spiffe_id: 'spiffe://x'}]",
                "agents[0].name:",
            ),
            (
                "agents: [{name: a, spiffe_id: 'http://x'}]",
                "agents[0].spiffe_id:",
            ),
            (
                "agents: [{name: a, spiffe_id: 'spiffe://x', tokn: 1}]",
                "tokn",
            ),
        ];
        for (yaml, want) in cases {
            let err = Credentials::from_yaml(yaml, Path::new("c.yaml"))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("c.yaml: "), "{err}");
            assert!(err.contains(want), "{yaml}: {err}");
        }
        let dup = format!(
            "agents: [{{name: a, token_sha256: '{h}'}}, {{name: b, token_sha256: '{h}'}}]",
            h = token_sha256("x")
        );
        let err = Credentials::from_yaml(&dup, Path::new("c.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("agents[1].token_sha256"), "{err}");
    }

    /// Every one of many agents is found by its own token, and only by it.
    #[test]
    fn among_many_agents_each_token_finds_its_own() {
        let mut yaml = String::from("agents:\n");
        for i in 0..500 {
            let hash = token_sha256(&format!("tok-{i}"));
            yaml.push_str(&format!("  - {{name: agent-{i}, token_sha256: {hash}}}\n"));
        }
        let c = Credentials::from_yaml(&yaml, Path::new("credentials.yaml")).unwrap();
        for i in [0, 1, 250, 499] {
            let id = c.authenticate(&bearer(&format!("tok-{i}")), None).unwrap();
            assert_eq!(&*id.name, format!("agent-{i}"));
        }
        assert_eq!(
            c.authenticate(&bearer("tok-500"), None),
            Err(AuthnError::UnknownToken)
        );
    }
}
