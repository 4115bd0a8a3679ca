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
    // The reason (64 bytes inline) is written where it stays: built in a callee and moved
    // out, it cost a copy, and the copy's wide loads stall on the narrow stores that built
    // it.
    let mut class = Classification {
        tier: Tier::T0,
        reason: Reason::new(),
    };
    class.tier = base_tier(info, policy, &mut class.reason);
    if class.tier == Tier::T2
        && let Some((_, runbook)) = policy.runbook_for(agent, info)
    {
        class.tier = Tier::T1;
        class.reason.push_str(runbook);
    }
    class
}

/// The tier before runbooks; its reason is written to `why`.
fn base_tier(info: &RequestInfo, policy: &Policy, why: &mut Reason) -> Tier {
    let (Some(resource), Some(verb)) = (info.resource(), info.kube_verb()) else {
        return non_resource(info, why);
    };
    let sub = info.subresource();
    if let Some(tier) = break_glass_subresource(verb, resource, sub, why) {
        return tier;
    }
    let secret = resource == "secrets";
    if matches!(verb, Verb::Get | Verb::List | Verb::Watch) {
        return if secret {
            of(why, Tier::T3, verb, resource, sub)
        } else if resource == "pods" && sub == Some("log") {
            said(why, Tier::T0, &["read of pod logs"])
        } else {
            of(why, Tier::T0, verb, resource, sub)
        };
    }
    write_tier(info, policy, verb, resource, sub, secret, why)
}

fn write_tier(
    info: &RequestInfo,
    policy: &Policy,
    verb: Verb,
    resource: &str,
    sub: Option<&str>,
    secret: bool,
    why: &mut Reason,
) -> Tier {
    let namespace = info.namespace();
    if verb == Verb::Create
        && namespace.is_none()
        && sub.is_none()
        && info.name().is_none()
        && is_self_review(info.api_group(), resource)
    {
        let tier = of(why, Tier::T0, verb, resource, sub);
        return said(why, tier, &[" (asks what the agent may do)"]);
    }
    if info.dry_run && !secret {
        why.push_str("dry-run ");
        return of(why, Tier::T0, verb, resource, sub);
    }
    if let Some(ns) = namespace.filter(|ns| policy.is_protected(ns)) {
        return said(why, Tier::T4, &["write in protected namespace ", ns]);
    }
    if is_break_glass_resource(resource) {
        return of(why, Tier::T4, verb, resource, sub);
    }
    if namespace.is_none() {
        let tier = of(why, Tier::T4, verb, resource, sub);
        return said(why, tier, &[" (cluster-scoped)"]);
    }
    if secret {
        return of(why, Tier::T3, verb, resource, sub);
    }
    if resource == "pods" && sub == Some("eviction") {
        return said(why, Tier::T3, &["eviction of a pod"]);
    }
    if matches!(verb, Verb::Delete | Verb::DeleteCollection) {
        return of(why, Tier::T3, verb, resource, sub);
    }
    if sub.is_some_and(|sub| !is_ordinary_subresource(sub)) {
        let tier = of(why, Tier::T3, verb, resource, sub);
        return said(why, tier, &[" (unusual subresource)"]);
    }
    of(why, Tier::T2, verb, resource, sub)
}

/// Tunnels into workloads and token minting, whatever the verb or dry-run: T4, with its
/// reason written to `why`; `None` (and nothing written) for anything else.
fn break_glass_subresource(
    verb: Verb,
    resource: &str,
    sub: Option<&str>,
    why: &mut Reason,
) -> Option<Tier> {
    let pieces: &[&str] = match (verb, resource, sub) {
        (Verb::Proxy, _, _) => &["proxy to ", resource],
        (_, "pods", Some("exec")) => &["exec into a pod"],
        (_, "pods", Some("attach")) => &["attach to a pod"],
        (_, "pods", Some("portforward")) => &["port-forward to a pod"],
        (_, "pods", Some("ephemeralcontainers")) => &["ephemeral container in a pod"],
        (_, "serviceaccounts", Some("token")) => &["token for a service account"],
        (_, _, Some("proxy")) => &["proxy to ", resource],
        (_, _, Some(sub)) if is_break_glass_subresource(sub) => &[sub, " on ", resource],
        _ => return None,
    };
    Some(said(why, Tier::T4, pieces))
}

fn non_resource(info: &RequestInfo, why: &mut Reason) -> Tier {
    match info.verb() {
        "get" | "head" => said(why, Tier::T0, &["read of ", &info.path]),
        verb => said(why, Tier::T4, &[verb, " to non-resource path ", &info.path]),
    }
}

/// Writes "delete of pods", "read of secrets", "patch of deployments/scale" to `why`;
/// returns `tier`.
fn of(why: &mut Reason, tier: Tier, verb: Verb, resource: &str, sub: Option<&str>) -> Tier {
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
    why.push_str(verb_of);
    why.push_str(resource);
    if let Some(sub) = sub {
        why.push_str("/");
        why.push_str(sub);
    }
    tier
}

/// Writes `pieces` to `why`; returns `tier`.
fn said(why: &mut Reason, tier: Tier, pieces: &[&str]) -> Tier {
    why.push_strs(pieces);
    tier
}
