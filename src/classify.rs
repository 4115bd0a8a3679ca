//! [`RequestInfo`] → [`Classification`]: a risk tier T0..T4 with a human-readable reason.
//!
//! The highest tier that applies wins, so the checks run from T4 down and the first that
//! applies decides. Anything that *raises* a tier matches loosely (a resource name in any
//! group); anything that *lowers* one (self-reviews, dry-run, runbooks) matches exactly.
//!
//! Two of the rules come from the policy file: protected namespaces and runbooks. The
//! policy compiles them into a [`Classifier`] and holds it; this module knows nothing of
//! policy.

#[cfg(test)]
mod disguise_tests;
mod glob;
mod runbook;
#[cfg(test)]
mod table_tests;

use std::fmt;

pub use glob::Glob;
pub use runbook::{Operation, Runbook};

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

    /// The tier's number as text: "0" to "4".
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::T0 => "0",
            Tier::T1 => "1",
            Tier::T2 => "2",
            Tier::T3 => "3",
            Tier::T4 => "4",
        }
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
        f.write_str(self.as_str())
    }
}

/// A tier and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    pub tier: Tier,
    /// Short and human: "delete of pods", "read of secrets", "exec into a pod".
    pub reason: String,
}

impl Classification {
    fn new(tier: Tier, reason: impl Into<String>) -> Classification {
        Classification {
            tier,
            reason: reason.into(),
        }
    }

    /// The same, with `pieces` added to the reason.
    fn noting(mut self, pieces: &[&str]) -> Classification {
        for piece in pieces {
            self.reason.push_str(piece);
        }
        self
    }
}

/// The classification rules a policy file adds: which namespaces are protected (any write
/// there is T4) and which runbooks lower a T2 write to T1 for their agents.
#[derive(Debug, Clone)]
pub struct Classifier {
    protected: Vec<Glob>,
    runbooks: Vec<Runbook>,
}

impl Default for Classifier {
    /// Protects `kube-system`; no runbooks.
    fn default() -> Classifier {
        Classifier {
            // A constant, valid pattern: compiling it cannot fail.
            protected: Glob::new("kube-system").into_iter().collect(),
            runbooks: Vec::new(),
        }
    }
}

impl Classifier {
    pub fn new(protected: Vec<Glob>, runbooks: Vec<Runbook>) -> Classifier {
        Classifier {
            protected,
            runbooks,
        }
    }

    /// Classifies `info` for `agent` (a runbook may lower T2 to T1 for its agents).
    pub fn classify(&self, info: &RequestInfo, agent: &str) -> Classification {
        let class = self.base_class(info);
        if class.tier != Tier::T2 {
            return class;
        }
        match self.runbook_for(agent, info) {
            Some(runbook) => Classification {
                tier: Tier::T1,
                ..class.noting(&[" (runbook ", runbook.name(), ")"])
            },
            None => class,
        }
    }

    /// Whether writes in `namespace` are break-glass (`protected_namespaces`).
    pub fn is_protected(&self, namespace: &str) -> bool {
        self.protected.iter().any(|glob| glob.matches(namespace))
    }

    /// The first runbook that lets `agent` do `info`, if any.
    pub fn runbook_for(&self, agent: &str, info: &RequestInfo) -> Option<&Runbook> {
        self.runbooks.iter().find(|rb| rb.lets(agent, info))
    }

    /// The classification before runbooks.
    fn base_class(&self, info: &RequestInfo) -> Classification {
        let (Some(resource), Some(verb)) = (info.resource(), info.kube_verb()) else {
            return non_resource(info);
        };
        let sub = info.subresource();
        if let Some(class) = break_glass_subresource(verb, resource, sub) {
            return class;
        }
        if matches!(verb, Verb::Get | Verb::List | Verb::Watch) {
            return if resource == "secrets" {
                of(Tier::T3, verb, resource, sub)
            } else if resource == "pods" && sub == Some("log") {
                Classification::new(Tier::T0, "read of pod logs")
            } else {
                of(Tier::T0, verb, resource, sub)
            };
        }
        self.write_class(info, verb, resource, sub)
    }

    fn write_class(
        &self,
        info: &RequestInfo,
        verb: Verb,
        resource: &str,
        sub: Option<&str>,
    ) -> Classification {
        let namespace = info.namespace();
        let secret = resource == "secrets";
        if verb == Verb::Create
            && namespace.is_none()
            && sub.is_none()
            && info.name().is_none()
            && is_self_review(info.api_group(), resource)
        {
            return of(Tier::T0, verb, resource, sub).noting(&[" (asks what the agent may do)"]);
        }
        if info.dry_run && !secret {
            let class = of(Tier::T0, verb, resource, sub);
            return Classification::new(class.tier, ["dry-run ", &class.reason].concat());
        }
        if let Some(ns) = namespace.filter(|ns| self.is_protected(ns)) {
            return Classification::new(Tier::T4, ["write in protected namespace ", ns].concat());
        }
        if is_break_glass_resource(resource) {
            return of(Tier::T4, verb, resource, sub);
        }
        if namespace.is_none() {
            return of(Tier::T4, verb, resource, sub).noting(&[" (cluster-scoped)"]);
        }
        if secret {
            return of(Tier::T3, verb, resource, sub);
        }
        if resource == "pods" && sub == Some("eviction") {
            return Classification::new(Tier::T3, "eviction of a pod");
        }
        if resource == "bindings" || (resource == "pods" && sub == Some("binding")) {
            // Binding a pod to a node is what setting nodeName does: past the scheduler.
            return Classification::new(Tier::T4, "binding a pod to a node");
        }
        if matches!(verb, Verb::Delete | Verb::DeleteCollection) {
            return of(Tier::T3, verb, resource, sub);
        }
        if sub.is_some_and(|sub| !is_ordinary_subresource(sub)) {
            return of(Tier::T3, verb, resource, sub).noting(&[" (unusual subresource)"]);
        }
        of(Tier::T2, verb, resource, sub)
    }
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

/// Tunnels into workloads and token minting, whatever the verb or dry-run: T4; `None` for
/// anything else.
fn break_glass_subresource(
    verb: Verb,
    resource: &str,
    sub: Option<&str>,
) -> Option<Classification> {
    let reason = match (verb, resource, sub) {
        (Verb::Proxy, _, _) | (_, _, Some("proxy")) => ["proxy to ", resource].concat(),
        (_, "pods", Some("exec")) => "exec into a pod".into(),
        (_, "pods", Some("attach")) => "attach to a pod".into(),
        (_, "pods", Some("portforward")) => "port-forward to a pod".into(),
        (_, "pods", Some("ephemeralcontainers")) => "ephemeral container in a pod".into(),
        (_, "serviceaccounts", Some("token")) => "token for a service account".into(),
        (_, _, Some(sub)) if is_break_glass_subresource(sub) => [sub, " on ", resource].concat(),
        _ => return None,
    };
    Some(Classification::new(Tier::T4, reason))
}

fn non_resource(info: &RequestInfo) -> Classification {
    match info.verb() {
        "get" | "head" => Classification::new(Tier::T0, ["read of ", &info.path].concat()),
        verb => Classification::new(
            Tier::T4,
            [verb, " to non-resource path ", &info.path].concat(),
        ),
    }
}

/// "delete of pods", "read of secrets", "patch of deployments/scale", at `tier`.
fn of(tier: Tier, verb: Verb, resource: &str, sub: Option<&str>) -> Classification {
    let verb = match verb {
        Verb::Get => "read",
        other => other.as_str(),
    };
    let reason = match sub {
        Some(sub) => [verb, " of ", resource, "/", sub].concat(),
        None => [verb, " of ", resource].concat(),
    };
    Classification::new(tier, reason)
}
