//! Tiers that read the body: a create, update or patch of a pod, or of a resource that
//! carries a pod template, is rated by what its pod spec asks for, not only by its URL. A
//! privileged container smuggled through a T2 create of a Deployment is T4 like exec; a
//! pod that mounts a Secret is T3 like reading it.
//!
//! [`Workload::of`] says whether a request's body is read at all (everything else streams
//! untouched); [`judge`] decodes the body (JSON, YAML or protobuf; an object or one of the
//! four patch types) and returns the body tier with a reason that names the field. Only
//! what the body sets is judged: the live object is never fetched.

mod patch;
mod pod_spec;
mod protobuf;

use serde_json::Value;

use crate::classify::{Classification, Tier};
use crate::request_info::{RequestInfo, Verb};
pub use pod_spec::Violation;

/// What a request's body can change about how it is rated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    /// Nothing: the body streams on untouched.
    Nothing,
    /// A create, update or patch of a pod or workload: its pod spec sets a body tier.
    PodSpec(Workload),
    /// A DELETE: its `DeleteOptions`, when it has a body, say whether it is a dry run.
    DeleteOptions,
}

impl Reads {
    /// What to read of `info`'s body. A dry-run write changes nothing, so its body is not
    /// judged; a subresource (`status`, `scale`, `ephemeralcontainers`) is rated by its path.
    pub fn of(info: &RequestInfo) -> Reads {
        match info.kube_verb() {
            Some(Verb::Create | Verb::Update | Verb::Patch)
                if info.subresource().is_none() && !info.dry_run =>
            {
                match Workload::of(info.api_group(), info.resource().unwrap_or("")) {
                    Some(workload) => Reads::PodSpec(workload),
                    None => Reads::Nothing,
                }
            }
            Some(Verb::Delete | Verb::DeleteCollection) => Reads::DeleteOptions,
            _ => Reads::Nothing,
        }
    }
}

/// The body tier of a pod or workload write of `info`, from its `Content-Type` and body.
pub fn judge_request(
    info: &RequestInfo,
    workload: Workload,
    content_type: &str,
    body: &[u8],
) -> Result<Option<BodyTier>, BodyError> {
    let kind = BodyKind::of(info.kube_verb() == Some(Verb::Patch), content_type)?;
    judge(workload, info.resource().unwrap_or(""), kind, body)
}

/// The path tier, raised to the body tier when the body asks for more.
pub fn raise(class: Classification, body: Option<BodyTier>) -> Classification {
    match body {
        Some(body) if body.tier > class.tier => Classification {
            tier: body.tier,
            reason: body.reason,
        },
        _ => class,
    }
}

/// A resource whose writes carry a pod spec, by where the spec sits in its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// A pod: `spec`.
    Pod,
    /// Deployments, StatefulSets, DaemonSets, ReplicaSets, ReplicationControllers and Jobs:
    /// `spec.template.spec`.
    Template,
    /// A CronJob: `spec.jobTemplate.spec.template.spec`.
    CronJob,
    /// A PodTemplate: `template.spec`.
    PodTemplate,
}

impl Workload {
    /// The workload `resource` of API `group` is, if its writes carry a pod spec. Every
    /// group that ever served these resources is listed (`extensions` and the apps betas
    /// are gone from current apiservers, but an old one behind sluice may serve them).
    pub fn of(group: &str, resource: &str) -> Option<Workload> {
        match (group, resource) {
            ("", "pods") => Some(Workload::Pod),
            ("", "podtemplates") => Some(Workload::PodTemplate),
            ("", "replicationcontrollers") => Some(Workload::Template),
            ("apps" | "extensions", "deployments" | "daemonsets" | "replicasets") => {
                Some(Workload::Template)
            }
            ("apps", "statefulsets") => Some(Workload::Template),
            ("batch", "jobs") => Some(Workload::Template),
            ("batch", "cronjobs") => Some(Workload::CronJob),
            _ => None,
        }
    }

    /// The path of the pod template object (its `metadata` and `spec`), empty for a pod.
    fn template(self) -> &'static [&'static str] {
        match self {
            Workload::Pod => &[],
            Workload::Template => &["spec", "template"],
            Workload::CronJob => &["spec", "jobTemplate", "spec", "template"],
            Workload::PodTemplate => &["template"],
        }
    }
}

/// How a write's body is to be read, from its method and `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// A whole object (create, update) in JSON, YAML or protobuf.
    Object(Encoding),
    /// RFC 7386 merge patch or a strategic merge patch: a partial object in JSON.
    MergePatch,
    /// RFC 6902 JSON patch: a list of operations.
    JsonPatch,
    /// Server-side apply: a partial object in YAML (JSON is YAML).
    Apply,
}

/// The encoding of a whole object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Json,
    Yaml,
    Protobuf,
}

/// The body tier and the reason that names the field, e.g. `privileged container in
/// deployments (spec.template.spec.containers[1])`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyTier {
    pub tier: Tier,
    pub reason: String,
}

/// A body sluice refuses to judge: the request is refused, never rated lower.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The body is not what its `Content-Type` says (400).
    #[error("sluice cannot decode the request body: {0}")]
    Undecodable(String),
    /// A `Content-Type` sluice does not read for these resources (415).
    #[error("sluice does not read request bodies of type {0:?} for pods and workloads")]
    UnsupportedType(String),
}

impl BodyKind {
    /// The kind of body a `patch` (or, otherwise, a create or update) carries.
    pub fn of(is_patch: bool, content_type: &str) -> Result<BodyKind, BodyError> {
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let kind = match (is_patch, media.as_str()) {
            (false, "application/json" | "") => BodyKind::Object(Encoding::Json),
            (false, "application/yaml") => BodyKind::Object(Encoding::Yaml),
            (false, "application/vnd.kubernetes.protobuf") => BodyKind::Object(Encoding::Protobuf),
            (true, "application/merge-patch+json" | "application/strategic-merge-patch+json") => {
                BodyKind::MergePatch
            }
            (true, "application/json-patch+json") => BodyKind::JsonPatch,
            (true, "application/apply-patch+yaml") => BodyKind::Apply,
            _ => return Err(BodyError::UnsupportedType(media)),
        };
        Ok(kind)
    }
}

/// Rates the body of a write to `resource` (a `workload`): `None` when nothing in it
/// raises the tier.
pub fn judge(
    workload: Workload,
    resource: &str,
    kind: BodyKind,
    body: &[u8],
) -> Result<Option<BodyTier>, BodyError> {
    let object = match kind {
        BodyKind::Object(Encoding::Json) | BodyKind::MergePatch => json(body)?,
        BodyKind::Object(Encoding::Yaml) | BodyKind::Apply => yaml(body)?,
        BodyKind::Object(Encoding::Protobuf) => {
            protobuf::decode(body, workload).map_err(BodyError::Undecodable)?
        }
        BodyKind::JsonPatch => match patch::written(&json(body)?, workload.template()) {
            Ok(sparse) => sparse,
            Err(patch::Unreadable::Malformed(why)) => return Err(BodyError::Undecodable(why)),
            Err(patch::Unreadable::HiddenValue) => {
                return Ok(Some(BodyTier {
                    tier: Tier::T4,
                    reason: "patch sluice cannot read".into(),
                }));
            }
        },
    };
    Ok(rate(&violations(&object, workload), resource))
}

/// Settles whether a DELETE is a dry run, as the apiserver does: by the options in its body
/// when it has one, else by its query. A body sluice cannot read makes it no dry run.
pub fn settle_delete_dry_run(info: &mut RequestInfo, body: &[u8], content_type: &str) {
    info.dry_run = if body.is_empty() {
        info.dry_run_in_query
    } else {
        delete_dry_run(body, content_type).unwrap_or(false)
    };
}

/// Whether a DELETE's body (its `DeleteOptions`, in JSON, YAML or protobuf) asks for a dry
/// run: `Some(true)` only for exactly `dryRun: [All]`, as the apiserver reads it; `None`
/// when the body cannot be read (the delete then keeps its tier).
pub fn delete_dry_run(body: &[u8], content_type: &str) -> Option<bool> {
    let media = content_type.split(';').next().unwrap_or("").trim();
    let dry_run: Vec<String> = match media {
        "application/vnd.kubernetes.protobuf" => protobuf::delete_options_dry_run(body)?,
        "application/yaml" => {
            serde_json::from_value(yaml(body).ok()?.get("dryRun")?.clone()).ok()?
        }
        _ => {
            let options: Value = serde_json::from_slice(body).ok()?;
            match options.get("dryRun") {
                None | Some(Value::Null) => Vec::new(),
                Some(list) => serde_json::from_value(list.clone()).ok()?,
            }
        }
    };
    Some(dry_run == ["All"])
}

/// Every violation in `object`'s pod template.
pub fn violations(object: &Value, workload: Workload) -> Vec<Violation> {
    let mut template = object;
    for key in workload.template() {
        template = &template[*key];
    }
    let at = match workload.template() {
        [] => "spec".to_owned(),
        path => format!("{}.spec", path.join(".")),
    };
    pod_spec::violations(&template["metadata"], &template["spec"], &at)
}

/// The highest tier among `violations`, named by its first field (and how many more).
fn rate(violations: &[Violation], resource: &str) -> Option<BodyTier> {
    let tier = violations.iter().map(|v| v.tier).max()?;
    let mut at_tier = violations.iter().filter(|v| v.tier == tier);
    let first = at_tier.next()?;
    let more = at_tier.count();
    let mut reason = format!("{} in {resource} ({})", first.what, first.path);
    if more > 0 {
        reason += &format!(" and {more} more");
    }
    Some(BodyTier { tier, reason })
}

fn json(body: &[u8]) -> Result<Value, BodyError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| BodyError::Undecodable(format!("JSON: {e}")))?;
    Ok(value)
}

/// YAML as the apiserver reads it (sigs.k8s.io/yaml): merge keys expanded, a duplicate key
/// refused (so no key can mean one thing to sluice and another to the apiserver).
fn yaml(body: &[u8]) -> Result<Value, BodyError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| BodyError::Undecodable("YAML that is not UTF-8".into()))?;
    let options = serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
    };
    serde_saphyr::from_str_with_options(text, options)
        .map_err(|e| BodyError::Undecodable(format!("YAML: {e}")))
}

#[cfg(test)]
mod decode_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod protobuf_tests;
#[cfg(test)]
mod tests;
