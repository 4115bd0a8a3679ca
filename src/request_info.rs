//! Method + URI → [`RequestInfo`], exactly as kube-apiserver's `RequestInfoFactory` derives it.
//! (Skeleton: the classify/policy work replaces this with the full parser.)

use http::{Method, Uri};

/// What the apiserver will execute for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    pub is_resource_request: bool,
    /// The normalised path.
    pub path: String,
    /// get, list, watch, create, update, patch, delete, deletecollection; for non-resource
    /// requests the lowercase HTTP method.
    pub verb: String,
    pub api_group: String,
    pub api_version: String,
    pub namespace: Option<String>,
    pub resource: Option<String>,
    pub subresource: Option<String>,
    pub name: Option<String>,
    pub dry_run: bool,
    pub upgrade: bool,
}

/// A request whose path or query sluice refuses to guess about (→ 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RequestInfoError(pub String);

impl RequestInfo {
    /// Parses one request. `upgrade` is true when the client asked for a connection upgrade.
    pub fn parse(
        method: &Method,
        uri: &Uri,
        upgrade: bool,
    ) -> Result<RequestInfo, RequestInfoError> {
        Ok(RequestInfo {
            is_resource_request: false,
            path: uri.path().to_owned(),
            verb: method.as_str().to_ascii_lowercase(),
            api_group: String::new(),
            api_version: String::new(),
            namespace: None,
            resource: None,
            subresource: None,
            name: None,
            dry_run: false,
            upgrade,
        })
    }
}
