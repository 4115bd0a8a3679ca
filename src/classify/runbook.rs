//! Runbooks: named operations that an agent may do at T1 instead of T2 (`scale-web`: patch
//! `deployments/scale` in `dev-*`). Only ever a lowering of an ordinary write, matched
//! exactly.

use super::Glob;
use crate::request_info::{RequestInfo, Verb};

/// A compiled runbook: who may use it and what it covers.
#[derive(Debug, Clone)]
pub struct Runbook {
    name: Box<str>,
    /// Sorted: a runbook may list thousands of agents, and every T2 write looks its agent up.
    agents: Vec<Box<str>>,
    operations: Vec<Operation>,
}

/// One operation a runbook covers; every field given must match.
#[derive(Debug, Clone)]
pub struct Operation {
    verbs: Vec<Verb>,
    /// `(resource, subresource)`: `deployments/scale` → `("deployments", Some("scale"))`.
    resources: Vec<(Box<str>, Option<Box<str>>)>,
    api_groups: Option<Vec<Box<str>>>,
    namespaces: Option<Vec<Glob>>,
}

impl Runbook {
    pub fn new<'a>(
        name: &str,
        agents: impl IntoIterator<Item = &'a str>,
        operations: Vec<Operation>,
    ) -> Runbook {
        let mut agents: Vec<Box<str>> = agents.into_iter().map(Box::from).collect();
        agents.sort();
        agents.dedup();
        Runbook {
            name: name.into(),
            agents,
            operations,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this runbook lets `agent` do `info`.
    pub(super) fn lets(&self, agent: &str, info: &RequestInfo) -> bool {
        self.agents.binary_search_by(|a| (**a).cmp(agent)).is_ok()
            && self.operations.iter().any(|op| op.covers(info))
    }
}

impl Operation {
    /// `verbs` never include the legacy proxy verb in a policy file (always T4 anyway).
    pub fn new(
        verbs: Vec<Verb>,
        resources: Vec<(Box<str>, Option<Box<str>>)>,
        api_groups: Option<Vec<Box<str>>>,
        namespaces: Option<Vec<Glob>>,
    ) -> Operation {
        Operation {
            verbs,
            resources,
            api_groups,
            namespaces,
        }
    }

    fn covers(&self, info: &RequestInfo) -> bool {
        let (Some(verb), Some((resource, sub))) = (info.kube_verb(), info.resource_path()) else {
            return false;
        };
        self.verbs.contains(&verb)
            && self
                .resources
                .iter()
                .any(|(r, s)| **r == *resource && s.as_deref() == sub)
            && self
                .api_groups
                .as_ref()
                .is_none_or(|groups| groups.iter().any(|g| **g == *info.api_group()))
            && self
                .namespaces
                .as_ref()
                .is_none_or(|globs| match info.namespace() {
                    None => globs.iter().any(Glob::is_any),
                    Some(ns) => globs.iter().any(|glob| glob.matches(ns)),
                })
    }
}

#[cfg(test)]
mod tests {
    use http::Method;

    use super::*;

    /// An operation covers the verbs it names and no other.
    #[test]
    fn an_operation_covers_its_verbs_and_no_other() {
        let requests = [
            (Method::GET, "/api/v1/namespaces/x/pods/p", Verb::Get),
            (Method::GET, "/api/v1/namespaces/x/pods", Verb::List),
            (
                Method::GET,
                "/api/v1/namespaces/x/pods?watch=1",
                Verb::Watch,
            ),
            (Method::POST, "/api/v1/namespaces/x/pods", Verb::Create),
            (Method::PUT, "/api/v1/namespaces/x/pods/p", Verb::Update),
            (Method::PATCH, "/api/v1/namespaces/x/pods/p", Verb::Patch),
            (Method::DELETE, "/api/v1/namespaces/x/pods/p", Verb::Delete),
            (
                Method::DELETE,
                "/api/v1/namespaces/x/pods",
                Verb::DeleteCollection,
            ),
        ];
        for (_, _, named) in &requests {
            let op = Operation::new(vec![*named], vec![("pods".into(), None)], None, None);
            for (method, target, verb) in &requests {
                let info = RequestInfo::parse(method, &target.parse().unwrap(), false).unwrap();
                assert_eq!(info.kube_verb(), Some(*verb), "{method} {target}");
                assert_eq!(
                    op.covers(&info),
                    verb == named,
                    "{named:?} against {verb:?}"
                );
            }
        }
    }
}
