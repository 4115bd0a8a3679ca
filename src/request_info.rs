//! Method + URI → [`RequestInfo`], as kube-apiserver's `RequestInfoFactory` derives it.
//!
//! The path is first decoded and checked ([`normalise`]): sluice classifies what the
//! apiserver will execute, so anything whose meaning is ambiguous is refused (400) rather
//! than guessed at. Then the segments are read the way the apiserver reads them:
//!
//! ```text
//! /api/{version}/...                      core group ("")
//! /apis/{group}/{version}/...             named group
//!   .../namespaces/{ns}/{resource}[/{name}[/{subresource}...]]
//!   .../{resource}[/{name}[/{subresource}...]]        cluster-scoped or all namespaces
//!   .../watch/...   legacy watch            .../proxy/...   legacy proxy (no subresource)
//!   .../namespaces/{ns}[/status|/finalize]  the namespace object itself
//! ```
//! anything shorter, or under another prefix, is a non-resource request (verb = method).

mod normalise;
#[cfg(test)]
mod tests;

#[cfg(test)]
mod fuzz_tests;

use http::{Method, Uri};

use normalise::{QueryFlags, normalise_path, scan_query, split_ascii};

/// What the apiserver will execute for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    pub is_resource_request: bool,
    /// The normalised path: percent-decoded, without a trailing slash.
    pub path: String,
    /// get, list, watch, create, update, patch, delete, deletecollection, or the legacy
    /// `proxy`; for non-resource requests the lowercase HTTP method.
    pub verb: String,
    pub api_group: String,
    pub api_version: String,
    pub namespace: Option<String>,
    pub resource: Option<String>,
    pub subresource: Option<String>,
    pub name: Option<String>,
    /// The apiserver will not persist this write: a create, update or patch with exactly
    /// one `dryRun=All`. Never set for DELETE, whose options in a body override the query.
    pub dry_run: bool,
    pub upgrade: bool,
}

/// A request whose path or query sluice refuses to guess about (→ 400). The message says
/// what is wrong, for the agent to read.
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
        let path = normalise_path(uri.path())?;
        let query = scan_query(uri.query())?;
        let mut info = RequestInfo {
            is_resource_request: false,
            path: String::new(),
            verb: String::new(),
            api_group: String::new(),
            api_version: String::new(),
            namespace: None,
            resource: None,
            subresource: None,
            name: None,
            dry_run: false,
            upgrade,
        };
        match ResourceParts::split(&path)? {
            None => info.verb = non_resource_verb(method),
            Some(parts) => info.fill(method, parts, query)?,
        }
        info.path = path;
        Ok(info)
    }

    /// `resource` or `resource/subresource`, as RBAC and runbooks name it.
    pub fn resource_path(&self) -> Option<(&str, Option<&str>)> {
        let resource = self.resource.as_deref()?;
        Some((resource, self.subresource.as_deref()))
    }

    fn fill(
        &mut self,
        method: &Method,
        parts: ResourceParts<'_>,
        query: QueryFlags,
    ) -> Result<(), RequestInfoError> {
        self.is_resource_request = true;
        self.api_group = parts.group.to_owned();
        self.api_version = parts.version.to_owned();
        self.namespace = parts.namespace.map(str::to_owned);
        self.resource = Some(parts.resource.to_owned());
        self.subresource = parts.subresource.map(str::to_owned);
        self.name = parts.name.map(str::to_owned);
        let named = parts.name.is_some();
        let verb = match parts.special_verb {
            Some(special) => special,
            None => resource_verb(method, named, query.watch)?,
        };
        self.dry_run = query.dry_run_all && matches!(verb, "create" | "update" | "patch");
        self.verb = verb.to_owned();
        Ok(())
    }
}

/// The segments of a resource path, borrowed from the normalised path.
#[derive(Debug)]
struct ResourceParts<'a> {
    group: &'a str,
    version: &'a str,
    /// `watch` or `proxy` from the legacy prefix.
    special_verb: Option<&'static str>,
    namespace: Option<&'a str>,
    resource: &'a str,
    name: Option<&'a str>,
    subresource: Option<&'a str>,
}

impl<'a> ResourceParts<'a> {
    /// `None` for a non-resource path.
    fn split(path: &'a str) -> Result<Option<ResourceParts<'a>>, RequestInfoError> {
        let mut parts = Parts::new(path);
        let (Some(prefix), Some(_), Some(_)) = (parts.peek(0), parts.peek(1), parts.peek(2)) else {
            return check_non_resource_prefix(parts.peek(0)).map(|()| None);
        };
        let group = match prefix {
            "api" => "",
            "apis" if parts.peek(3).is_some() => parts.peek(1).unwrap_or_default(),
            _ => return check_non_resource_prefix(Some(prefix)).map(|()| None),
        };
        parts.skip(if group.is_empty() { 1 } else { 2 });
        let version = parts.next_part()?;
        let special_verb = match parts.peek(0) {
            Some("watch") => Some("watch"),
            Some("proxy") => Some("proxy"),
            _ => None,
        };
        if special_verb.is_some() {
            parts.skip(1);
            if parts.peek(0).is_none() {
                return Err(RequestInfoError(format!(
                    "sluice: {path}: no resource after the legacy {} prefix; refused",
                    special_verb.unwrap_or_default()
                )));
            }
        }
        let mut namespace = None;
        if parts.peek(0) == Some("namespaces") && parts.peek(1).is_some() {
            namespace = parts.peek(1);
            let ns_subresource = matches!(parts.peek(2), Some("status" | "finalize"));
            if parts.peek(2).is_some() && !ns_subresource {
                parts.skip(2);
            }
        }
        let resource = parts.next_part()?;
        let name = parts.peek(0);
        let subresource = match special_verb {
            Some("proxy") => None,
            _ => parts.peek(1),
        };
        let info = ResourceParts {
            group,
            version,
            special_verb,
            namespace,
            resource,
            name,
            subresource,
        };
        info.check_case()?;
        Ok(Some(info))
    }

    /// Group, version, namespace and resource names are lowercase in Kubernetes; an
    /// uppercase one either fails or means something sluice cannot see, so it is refused.
    fn check_case(&self) -> Result<(), RequestInfoError> {
        let fields = [
            ("api group", Some(self.group)),
            ("version", Some(self.version)),
            ("namespace", self.namespace),
            ("resource", Some(self.resource)),
            ("subresource", self.subresource),
        ];
        for (what, value) in fields {
            if let Some(value) = value.filter(|v| v.bytes().any(|b| b.is_ascii_uppercase())) {
                return Err(RequestInfoError(format!(
                    "sluice: {what} {value:?} is not lowercase; refused"
                )));
            }
        }
        Ok(())
    }
}

/// The most segments a resource path is read for: `apis/{group}/{version}/watch/namespaces/
/// {ns}/{resource}/{name}/{subresource}`; anything after is the subresource's own business.
const MAX_SEGMENTS: usize = 9;

/// A cursor over the `/`-separated segments of a normalised path, split once (no allocation).
struct Parts<'a> {
    segments: [&'a str; MAX_SEGMENTS],
    len: usize,
    at: usize,
}

impl<'a> Parts<'a> {
    fn new(path: &'a str) -> Parts<'a> {
        let mut parts = Parts {
            segments: [""; MAX_SEGMENTS],
            len: 0,
            at: 0,
        };
        // The normalised path has no empty segments; the root "/" has none at all.
        let trimmed = path.trim_start_matches('/');
        if trimmed.is_empty() {
            return parts;
        }
        for (slot, segment) in parts.segments.iter_mut().zip(split_ascii(trimmed, b'/')) {
            *slot = segment;
            parts.len += 1;
        }
        parts
    }
    fn peek(&self, index: usize) -> Option<&'a str> {
        let index = self.at + index;
        (index < self.len).then(|| self.segments[index])
    }
    fn skip(&mut self, count: usize) {
        self.at = (self.at + count).min(self.len);
    }
    fn next_part(&mut self) -> Result<&'a str, RequestInfoError> {
        let part = self
            .peek(0)
            .ok_or_else(|| RequestInfoError("sluice: path ends too early; refused".into()))?;
        self.skip(1);
        Ok(part)
    }
}

/// `/API/v1/...` is a non-resource path to the apiserver but looks like a resource path to
/// a reader; refuse rather than classify it as a harmless non-resource request.
fn check_non_resource_prefix(first: Option<&str>) -> Result<(), RequestInfoError> {
    match first {
        Some(first)
            if first != "api"
                && first != "apis"
                && (first.eq_ignore_ascii_case("api") || first.eq_ignore_ascii_case("apis")) =>
        {
            Err(RequestInfoError(format!(
                "sluice: path prefix {first:?} is not lowercase; refused"
            )))
        }
        _ => Ok(()),
    }
}

fn non_resource_verb(method: &Method) -> String {
    method.as_str().to_ascii_lowercase()
}

/// The kube verb for a resource request without a legacy prefix.
fn resource_verb(
    method: &Method,
    named: bool,
    watch: Option<bool>,
) -> Result<&'static str, RequestInfoError> {
    Ok(match *method {
        Method::GET | Method::HEAD if named => "get",
        Method::GET | Method::HEAD if watch == Some(true) => "watch",
        Method::GET | Method::HEAD => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => {
            return Err(RequestInfoError(format!(
                "sluice: method {method} is not served on resource paths; refused"
            )));
        }
    })
}
