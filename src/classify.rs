//! [`RequestInfo`] → [`Classification`]: a risk tier T0..T4 with a human-readable reason.
//!
//! The highest tier that applies wins, so the checks run from T4 down and the first that
//! applies decides. Anything that *raises* a tier matches loosely (a resource name in any
//! group); anything that *lowers* one (self-reviews, dry-run, runbooks) matches exactly.

mod reason;

#[cfg(test)]
mod disguise_tests;
#[cfg(test)]
mod table_tests;

use std::fmt;

pub use reason::Reason;

use crate::policy::Policy;
use crate::request_info::{RequestInfo, Verb};

/// Risk tiers, lowest first; the highest that applies wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Tier {
    T0 = 0,
    T1 = 1,
    T2 = 2,
    T3 = 3,
    T4 = 4,
}

impl Tier {
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The tier numbered `n`, if there is one.
    pub fn from_u8(n: u8) -> Option<Tier> {
        [Tier::T0, Tier::T1, Tier::T2, Tier::T3, Tier::T4]
            .get(usize::from(n))
            .copied()
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_u8())
    }
}

/// A tier and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    pub tier: Tier,
    /// Short and human: "delete of pods", "read of secrets", "exec into a pod".
    pub reason: Reason,
}

/// Subresources that open a shell, a stream or a tunnel into a workload.
fn is_break_glass_subresource(sub: &str) -> bool {
    matches!(
        sub,
        "exec" | "attach" | "portforward" | "proxy" | "ephemeralcontainers"
    )
}

/// Resources where any write can take over the cluster or widen someone's permissions.
fn is_break_glass_resource(resource: &str) -> bool {
    matches!(
        resource,
        "namespaces"
            | "nodes"
            | "persistentvolumes"
            | "customresourcedefinitions"
            | "apiservices"
            | "mutatingwebhookconfigurations"
            | "validatingwebhookconfigurations"
            | "validatingadmissionpolicies"
            | "validatingadmissionpolicybindings"
            | "mutatingadmissionpolicies"
            | "mutatingadmissionpolicybindings"
            | "roles"
            | "rolebindings"
            | "clusterroles"
            | "clusterrolebindings"
            | "certificatesigningrequests"
    )
}

/// Subresources a T2 write may target; writes to any other subresource are T3.
fn is_ordinary_subresource(sub: &str) -> bool {
    matches!(sub, "status" | "scale" | "resize")
}

/// Creating one of these only asks the apiserver what the caller itself may do or who it is.
fn is_self_review(group: &str, resource: &str) -> bool {
    matches!(
        (group, resource),
        (
            "authorization.k8s.io",
            "selfsubjectaccessreviews" | "selfsubjectrulesreviews"
        ) | ("authentication.k8s.io", "selfsubjectreviews")
    )
}

/// Classifies `info` for `agent` (runbooks in `policy` may lower T2 to T1 for that agent).
pub fn classify(info: &RequestInfo, policy: &Policy, agent: &str) -> Classification {
    let mut base = base_tier(info, policy);
    // Lowered in place: the reason (64 bytes inline) is not moved again.
    if base.tier == Tier::T2
        && let Some((_, runbook)) = policy.runbook_for(agent, info)
    {
        base.tier = Tier::T1;
        base.reason.push_str(runbook);
    }
    base
}

/// The tier before runbooks.
fn base_tier(info: &RequestInfo, policy: &Policy) -> Classification {
    let (Some(resource), Some(verb)) = (info.resource(), info.kube_verb()) else {
        return non_resource(info);
    };
    let sub = info.subresource();
    if let Some(found) = break_glass_subresource(verb, resource, sub) {
        return found;
    }
    let secret = resource == "secrets";
    if matches!(verb, Verb::Get | Verb::List | Verb::Watch) {
        return if secret {
            class(Tier::T3, reason(verb, resource, sub))
        } else if resource == "pods" && sub == Some("log") {
            class(Tier::T0, "read of pod logs".into())
        } else {
            class(Tier::T0, reason(verb, resource, sub))
        };
    }
    write_tier(info, policy, verb, resource, sub, secret)
}

fn write_tier(
    info: &RequestInfo,
    policy: &Policy,
    verb: Verb,
    resource: &str,
    sub: Option<&str>,
    secret: bool,
) -> Classification {
    let namespace = info.namespace();
    if verb == Verb::Create
        && namespace.is_none()
        && sub.is_none()
        && info.name().is_none()
        && is_self_review(info.api_group(), resource)
    {
        let mut why = reason(verb, resource, sub);
        why.push_str(" (asks what the agent may do)");
        return class(Tier::T0, why);
    }
    if info.dry_run && !secret {
        let mut why = Reason::from("dry-run ");
        push_reason(&mut why, verb, resource, sub);
        return class(Tier::T0, why);
    }
    if let Some(ns) = namespace.filter(|ns| policy.is_protected(ns)) {
        return class(
            Tier::T4,
            Reason::concat(&["write in protected namespace ", ns]),
        );
    }
    if is_break_glass_resource(resource) {
        return class(Tier::T4, reason(verb, resource, sub));
    }
    if namespace.is_none() {
        let mut why = reason(verb, resource, sub);
        why.push_str(" (cluster-scoped)");
        return class(Tier::T4, why);
    }
    if secret {
        return class(Tier::T3, reason(verb, resource, sub));
    }
    if resource == "pods" && sub == Some("eviction") {
        return class(Tier::T3, "eviction of a pod".into());
    }
    if matches!(verb, Verb::Delete | Verb::DeleteCollection) {
        return class(Tier::T3, reason(verb, resource, sub));
    }
    if sub.is_some_and(|sub| !is_ordinary_subresource(sub)) {
        let mut why = reason(verb, resource, sub);
        why.push_str(" (unusual subresource)");
        return class(Tier::T3, why);
    }
    class(Tier::T2, reason(verb, resource, sub))
}

/// Tunnels into workloads and token minting, whatever the verb or dry-run.
fn break_glass_subresource(
    verb: Verb,
    resource: &str,
    sub: Option<&str>,
) -> Option<Classification> {
    let reason = match (verb, resource, sub) {
        (Verb::Proxy, _, _) => Reason::concat(&["proxy to ", resource]),
        (_, "pods", Some("exec")) => "exec into a pod".into(),
        (_, "pods", Some("attach")) => "attach to a pod".into(),
        (_, "pods", Some("portforward")) => "port-forward to a pod".into(),
        (_, "pods", Some("ephemeralcontainers")) => "ephemeral container in a pod".into(),
        (_, "serviceaccounts", Some("token")) => "token for a service account".into(),
        (_, _, Some("proxy")) => Reason::concat(&["proxy to ", resource]),
        (_, _, Some(sub)) if is_break_glass_subresource(sub) => {
            Reason::concat(&[sub, " on ", resource])
        }
        _ => return None,
    };
    Some(class(Tier::T4, reason))
}

fn non_resource(info: &RequestInfo) -> Classification {
    match info.verb() {
        "get" | "head" => class(Tier::T0, Reason::concat(&["read of ", &info.path])),
        verb => class(
            Tier::T4,
            Reason::concat(&[verb, " to non-resource path ", &info.path]),
        ),
    }
}

/// "delete of pods", "read of secrets", "patch of deployments/scale".
fn reason(verb: Verb, resource: &str, sub: Option<&str>) -> Reason {
    let mut out = Reason::new();
    push_reason(&mut out, verb, resource, sub);
    out
}

fn push_reason(out: &mut Reason, verb: Verb, resource: &str, sub: Option<&str>) {
    // The verb and " of " in one copy.
    let verb_of = match verb {
        Verb::Get => "read of ",
        Verb::List => "list of ",
        Verb::Watch => "watch of ",
        Verb::Create => "create of ",
        Verb::Update => "update of ",
        Verb::Patch => "patch of ",
        Verb::Delete => "delete of ",
        Verb::DeleteCollection => "deletecollection of ",
        Verb::Proxy => "proxy of ",
    };
    out.push_str(verb_of);
    out.push_str(resource);
    if let Some(sub) = sub {
        out.push_str("/");
        out.push_str(sub);
    }
}

fn class(tier: Tier, reason: Reason) -> Classification {
    Classification { tier, reason }
}
