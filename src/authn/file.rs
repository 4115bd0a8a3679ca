//! The shape of `credentials.yaml`, shared by authentication (which validates it) and
//! `sluice agent add/remove` (which rewrites it).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `credentials.yaml` as written on disk.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsFile {
    #[serde(default)]
    pub agents: Vec<AgentSpec>,
    #[serde(default)]
    pub approvers: Vec<ApproverSpec>,
}

/// One agent: a token hash, a SPIFFE id, or both.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spiffe_id: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// One approver, by token hash.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproverSpec {
    pub name: String,
    pub token_sha256: String,
}
