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

use std::borrow::Cow;

use http::{Method, Uri};

use normalise::{QueryFlags, normalise_path, scan_query, split_ascii};

/// What the apiserver will execute for one request.
///
/// One owned string, the normalised path; group, version, namespace, resource, subresource
/// and name are ranges into it (read them through the accessors), so parsing allocates once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    pub is_resource_request: bool,
    /// The normalised path: percent-decoded, without a trailing slash.
    pub path: String,
    /// get, list, watch, create, update, patch, delete, deletecollection, or the legacy
    /// `proxy`; for non-resource requests the lowercase HTTP method (owned only for an
    /// extension method).
    verb: Cow<'static, str>,
    api_group: Span,
    api_version: Span,
    namespace: Option<Span>,
    resource: Option<Span>,
    subresource: Option<Span>,
    name: Option<Span>,
    /// The apiserver will not persist this write: a create, update or patch with exactly
    /// one `dryRun=All`. Never set for DELETE, whose options in a body override the query.
    pub dry_run: bool,
    pub upgrade: bool,
}

/// A byte range of [`RequestInfo::path`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// The range `part` occupies in `path`; `part` must be borrowed from `path`.
    fn of(path: &str, part: &str) -> Span {
        let start = (part.as_ptr() as usize).wrapping_sub(path.as_ptr() as usize);
        debug_assert!(start <= path.len() && start + part.len() <= path.len());
        // hyper refuses URIs longer than u16::MAX, so the offsets always fit.
        let start = u32::try_from(start).unwrap_or(u32::MAX);
        let end = start.saturating_add(u32::try_from(part.len()).unwrap_or(u32::MAX));
        Span { start, end }
    }
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
            verb: Cow::Borrowed(""),
            api_group: Span::default(),
            api_version: Span::default(),
            namespace: None,
            resource: None,
            subresource: None,
            name: None,
            dry_run: false,
            upgrade,
        };
        match ResourceParts::split(&path)? {
            None => info.verb = non_resource_verb(method),
            Some(parts) => info.fill(method, &path, parts, query)?,
        }
        info.path = path;
        Ok(info)
    }

    fn get(&self, span: Span) -> &str {
        self.path
            .get(span.start as usize..span.end as usize)
            .unwrap_or_default()
    }

    /// The kube verb (or the lowercase method of a non-resource request).
    pub fn verb(&self) -> &str {
        &self.verb
    }
    /// The API group: `""` for the core group and for non-resource requests.
    pub fn api_group(&self) -> &str {
        self.get(self.api_group)
    }
    /// `""` for non-resource requests.
    pub fn api_version(&self) -> &str {
        self.get(self.api_version)
    }
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.map(|span| self.get(span))
    }
    pub fn resource(&self) -> Option<&str> {
        self.resource.map(|span| self.get(span))
    }
    pub fn subresource(&self) -> Option<&str> {
        self.subresource.map(|span| self.get(span))
    }
    pub fn name(&self) -> Option<&str> {
        self.name.map(|span| self.get(span))
    }

    /// `resource` or `resource/subresource`, as RBAC and runbooks name it.
    pub fn resource_path(&self) -> Option<(&str, Option<&str>)> {
        Some((self.resource()?, self.subresource()))
    }

    fn fill(
        &mut self,
        method: &Method,
        path: &str,
        parts: ResourceParts<'_>,
        query: QueryFlags,
    ) -> Result<(), RequestInfoError> {
        let span = |part: &str| Span::of(path, part);
        self.is_resource_request = true;
        self.api_group = span(parts.group);
        self.api_version = span(parts.version);
        self.namespace = parts.namespace.map(span);
        self.resource = Some(span(parts.resource));
        self.subresource = parts.subresource.map(span);
        self.name = parts.name.map(span);
        let named = parts.name.is_some();
        let verb = match parts.special_verb {
            Some(special) => special,
            None => resource_verb(method, named, query.watch)?,
        };
        self.dry_run = query.dry_run_all && matches!(verb, "create" | "update" | "patch");
        self.verb = Cow::Borrowed(verb);
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
            "api" => &path[..0], // the core group, as an empty range
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

/// The lowercase method; static for every standard method.
fn non_resource_verb(method: &Method) -> Cow<'static, str> {
    Cow::Borrowed(match *method {
        Method::GET => "get",
        Method::HEAD => "head",
        Method::POST => "post",
        Method::PUT => "put",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        Method::OPTIONS => "options",
        Method::CONNECT => "connect",
        Method::TRACE => "trace",
        _ => return Cow::Owned(method.as_str().to_ascii_lowercase()),
    })
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
