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
mod proptests;
mod query;
#[cfg(test)]
mod tests;

use std::borrow::Cow;

use http::{Method, Uri};

use normalise::normalise_path;
use query::{QueryFlags, scan_query};

/// What the apiserver will execute for one request.
///
/// One owned string, the normalised path; group, version, namespace, resource, subresource
/// and name are ranges into it (read them through the accessors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    /// The normalised path: percent-decoded, without a trailing slash.
    pub path: String,
    /// A resource request's [`Verb`], or a non-resource request's method; which of the two
    /// is what makes it a resource request.
    verb: RequestVerb,
    api_group: Span,
    api_version: Span,
    namespace: Option<Span>,
    resource: Option<Span>,
    subresource: Option<Span>,
    name: Option<Span>,
    /// The apiserver will not persist this write: a create, update or patch with exactly
    /// one `dryRun=All`. Never set here for DELETE, whose options in a body override the
    /// query: the pipeline sets it once it has read the body.
    pub dry_run: bool,
    /// The query says `dryRun=All` (what a DELETE without a body is decided by).
    pub dry_run_in_query: bool,
    pub upgrade: bool,
}

/// A byte range of [`RequestInfo::path`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Span {
    start: usize,
    end: usize,
}

impl Span {
    /// This range of `path` (empty if it is not one).
    fn of(self, path: &str) -> &str {
        path.get(self.start..self.end).unwrap_or_default()
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
        let mut parts = Parts::split(&path);
        let mut info = RequestInfo {
            path: String::new(),
            verb: RequestVerb::NonResource(non_resource_verb(method)),
            api_group: Span::default(),
            api_version: Span::default(),
            namespace: None,
            resource: None,
            subresource: None,
            name: None,
            dry_run: false,
            dry_run_in_query: false,
            upgrade,
        };
        info.read_segments(&mut parts, method, query)?;
        // Only a path with an uppercase letter can have a field that is not lowercase.
        let check_case = path.bytes().any(|b| b.is_ascii_uppercase());
        info.path = path;
        if check_case {
            info.check_case()?;
        }
        Ok(info)
    }

    fn get(&self, span: Span) -> &str {
        span.of(&self.path)
    }

    /// Whether the path names an API resource (`/api/v1/...`, `/apis/{group}/{version}/...`).
    pub fn is_resource_request(&self) -> bool {
        matches!(self.verb, RequestVerb::Resource(_))
    }
    /// The kube verb (or the lowercase method of a non-resource request).
    pub fn verb(&self) -> &str {
        match &self.verb {
            RequestVerb::Resource(verb) => verb.as_str(),
            RequestVerb::NonResource(method) => method,
        }
    }
    /// The kube verb of a resource request, to branch on without comparing strings; `None`
    /// for a non-resource request.
    pub fn kube_verb(&self) -> Option<Verb> {
        match self.verb {
            RequestVerb::Resource(verb) => Some(verb),
            RequestVerb::NonResource(_) => None,
        }
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
    /// Whether the response may stream for as long as the client wants: a watch, or a pod's
    /// log (followed or not: the query is not read for that).
    pub fn is_long_lived(&self) -> bool {
        self.kube_verb() == Some(Verb::Watch) || self.subresource() == Some("log")
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

    /// Reads the segments as the apiserver does (see the module doc); a path that is not a
    /// resource path leaves the verb as the lowercase method.
    fn read_segments(
        &mut self,
        parts: &mut Parts<'_>,
        method: &Method,
        query: QueryFlags,
    ) -> Result<(), RequestInfoError> {
        let (Some(prefix), Some(_), Some(_)) = (parts.peek(0), parts.peek(1), parts.peek(2)) else {
            return check_non_resource_prefix(parts.peek(0));
        };
        self.api_group = match prefix {
            "api" => Span::default(), // the core group, as an empty range
            "apis" if parts.peek(3).is_some() => parts.span(1).unwrap_or_default(),
            _ => return check_non_resource_prefix(Some(prefix)),
        };
        parts.skip(if prefix == "api" { 1 } else { 2 });
        self.api_version = parts.next_part()?;
        // The legacy `/watch/` and `/proxy/` prefixes name the verb themselves.
        let special_verb = match parts.peek(0) {
            Some("watch") => Some(Verb::Watch),
            Some("proxy") => Some(Verb::Proxy),
            _ => None,
        };
        if let Some(special) = special_verb {
            parts.skip(1);
            if parts.peek(0).is_none() {
                return Err(RequestInfoError(format!(
                    "sluice: {}: no resource after the legacy {} prefix; refused",
                    parts.path,
                    special.as_str()
                )));
            }
        }
        if matches!(parts.peek(0), Some("namespaces")) && parts.peek(1).is_some() {
            self.namespace = parts.span(1);
            let ns_subresource = matches!(parts.peek(2), Some("status" | "finalize"));
            if parts.peek(2).is_some() && !ns_subresource {
                parts.skip(2);
            }
        }
        self.resource = Some(parts.next_part()?);
        self.name = parts.span(0);
        self.subresource = match special_verb {
            Some(Verb::Proxy) => None,
            _ => parts.span(1),
        };
        let verb = match special_verb {
            Some(special) => special,
            None => resource_verb(method, self.name.is_some(), query.watch)?,
        };
        self.dry_run_in_query = query.dry_run_all;
        self.dry_run =
            query.dry_run_all && matches!(verb, Verb::Create | Verb::Update | Verb::Patch);
        self.verb = RequestVerb::Resource(verb);
        Ok(())
    }

    /// Group, version, namespace and resource names are lowercase in Kubernetes; an
    /// uppercase one either fails or means something sluice cannot see, so it is refused.
    fn check_case(&self) -> Result<(), RequestInfoError> {
        let fields = [
            ("api group", Some(self.api_group())),
            ("version", Some(self.api_version())),
            ("namespace", self.namespace()),
            ("resource", self.resource()),
            ("subresource", self.subresource()),
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

/// A cursor over the `/`-separated segments of a normalised path.
struct Parts<'a> {
    path: &'a str,
    segments: [Span; MAX_SEGMENTS],
    len: usize,
    at: usize,
}

impl<'a> Parts<'a> {
    /// The first [`MAX_SEGMENTS`] segments of a normalised `path` (`/` has none).
    fn split(path: &'a str) -> Parts<'a> {
        let mut parts = Parts {
            path,
            segments: [Span::default(); MAX_SEGMENTS],
            len: 0,
            at: 0,
        };
        let Some(rest) = path.strip_prefix('/').filter(|rest| !rest.is_empty()) else {
            return parts;
        };
        let mut start = 1;
        let segments = rest.as_bytes().split(|&b| b == b'/');
        for (slot, segment) in parts.segments.iter_mut().zip(segments) {
            let end = start + segment.len();
            *slot = Span { start, end };
            parts.len += 1;
            start = end + 1;
        }
        parts
    }

    fn span(&self, index: usize) -> Option<Span> {
        self.segments[..self.len].get(self.at + index).copied()
    }
    fn peek(&self, index: usize) -> Option<&'a str> {
        Some(self.span(index)?.of(self.path))
    }
    fn skip(&mut self, count: usize) {
        self.at = (self.at + count).min(self.len);
    }
    fn next_part(&mut self) -> Result<Span, RequestInfoError> {
        let part = self
            .span(0)
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
) -> Result<Verb, RequestInfoError> {
    Ok(match *method {
        Method::GET | Method::HEAD if named => Verb::Get,
        Method::GET | Method::HEAD if watch == Some(true) => Verb::Watch,
        Method::GET | Method::HEAD => Verb::List,
        Method::POST => Verb::Create,
        Method::PUT => Verb::Update,
        Method::PATCH => Verb::Patch,
        Method::DELETE if named => Verb::Delete,
        Method::DELETE => Verb::DeleteCollection,
        _ => {
            return Err(RequestInfoError(format!(
                "sluice: method {method} is not served on resource paths; refused"
            )));
        }
    })
}

/// What [`RequestInfo::verb`] reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RequestVerb {
    Resource(Verb),
    /// The lowercase method; owned only for an extension method.
    NonResource(Cow<'static, str>),
}

/// The verb of a resource request: what RBAC, the tiers and runbooks are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
    /// The legacy `/proxy/` prefix.
    Proxy,
}

impl Verb {
    /// Every verb, in declaration order.
    pub const ALL: [Verb; 9] = [
        Verb::Get,
        Verb::List,
        Verb::Watch,
        Verb::Create,
        Verb::Update,
        Verb::Patch,
        Verb::Delete,
        Verb::DeleteCollection,
        Verb::Proxy,
    ];

    /// The name the apiserver and RBAC use: `get`, `deletecollection`, …
    pub const fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
            Verb::Proxy => "proxy",
        }
    }

    /// The verb named `name` (exactly, lowercase), if there is one.
    pub fn from_name(name: &str) -> Option<Verb> {
        Verb::ALL.into_iter().find(|verb| verb.as_str() == name)
    }
}
