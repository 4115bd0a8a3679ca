//! Kubernetes protobuf bodies (`application/vnd.kubernetes.protobuf`, what kubectl's typed
//! commands send): the `k8s\0` envelope around a `runtime.Unknown`, whose `raw` is the typed
//! object. The object is decoded with k8s-pb's generated types and the fields the pod-spec
//! judge reads are laid out in the same JSON shape a JSON body has, so one judge serves
//! every encoding.

use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message;
use serde_json::{Value, json};

use super::Workload;

/// The four bytes that open every Kubernetes protobuf body.
const MAGIC: &[u8] = b"k8s\0";

/// The object in `body` as JSON holding what the pod-spec judge reads, or what is wrong.
pub fn decode(body: &[u8], workload: Workload) -> Result<Value, String> {
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or("a protobuf body does not start with the k8s magic bytes")?;
    let unknown = Unknown::decode(envelope).map_err(|e| format!("protobuf envelope: {e}"))?;
    if unknown
        .content_encoding
        .as_deref()
        .is_some_and(|e| !e.is_empty())
    {
        return Err("a protobuf body with a content encoding".into());
    }
    let raw = unknown.raw.unwrap_or_default();
    let kind = unknown.type_meta.and_then(|t| t.kind).unwrap_or_default();
    let bad = |e: prost::DecodeError| format!("protobuf {kind}: {e}");
    let template = |t: Option<core::PodTemplateSpec>| {
        let t = t.unwrap_or_default();
        json!({"metadata": meta(t.metadata), "spec": pod_spec(t.spec.unwrap_or_default())})
    };
    Ok(match (workload, kind.as_str()) {
        (Workload::Pod, "Pod") => {
            let pod = core::Pod::decode(raw.as_slice()).map_err(bad)?;
            json!({"metadata": meta(pod.metadata), "spec": pod_spec(pod.spec.unwrap_or_default())})
        }
        (Workload::PodTemplate, "PodTemplate") => {
            let object = core::PodTemplate::decode(raw.as_slice()).map_err(bad)?;
            json!({"template": template(object.template)})
        }
        (Workload::CronJob, "CronJob") => {
            let object = k8s_pb::api::batch::v1::CronJob::decode(raw.as_slice()).map_err(bad)?;
            let job = object
                .spec
                .and_then(|s| s.job_template)
                .and_then(|j| j.spec);
            json!({"spec": {"jobTemplate": {"spec": {"template": template(job.and_then(|j| j.template))}}}})
        }
        (Workload::Template, kind) => {
            json!({"spec": {"template": template(workload_template(kind, &raw)?)}})
        }
        (_, kind) => {
            return Err(format!(
                "a protobuf {kind:?} where sluice expects another kind"
            ));
        }
    })
}

/// The `dryRun` of a protobuf `DeleteOptions`.
pub fn delete_options_dry_run(body: &[u8]) -> Option<Vec<String>> {
    let unknown = Unknown::decode(body.strip_prefix(MAGIC)?).ok()?;
    let raw = unknown.raw.unwrap_or_default();
    let options =
        k8s_pb::apimachinery::pkg::apis::meta::v1::DeleteOptions::decode(raw.as_slice()).ok()?;
    Some(options.dry_run)
}

/// The pod template of a Deployment, StatefulSet, DaemonSet, ReplicaSet, Job or
/// ReplicationController.
fn workload_template(kind: &str, raw: &[u8]) -> Result<Option<core::PodTemplateSpec>, String> {
    use k8s_pb::api::{apps::v1 as apps, batch::v1 as batch};
    let bad = |e: prost::DecodeError| format!("protobuf {kind}: {e}");
    Ok(match kind {
        "Deployment" => apps::Deployment::decode(raw)
            .map_err(bad)?
            .spec
            .and_then(|s| s.template),
        "StatefulSet" => apps::StatefulSet::decode(raw)
            .map_err(bad)?
            .spec
            .and_then(|s| s.template),
        "DaemonSet" => apps::DaemonSet::decode(raw)
            .map_err(bad)?
            .spec
            .and_then(|s| s.template),
        "ReplicaSet" => apps::ReplicaSet::decode(raw)
            .map_err(bad)?
            .spec
            .and_then(|s| s.template),
        "Job" => batch::Job::decode(raw)
            .map_err(bad)?
            .spec
            .and_then(|s| s.template),
        "ReplicationController" => core::ReplicationController::decode(raw)
            .map_err(bad)?
            .spec
            .and_then(|s| s.template),
        other => {
            return Err(format!(
                "a protobuf {other:?} where sluice expects a workload"
            ));
        }
    })
}

fn meta(meta: Option<ObjectMeta>) -> Value {
    json!({"annotations": meta.unwrap_or_default().annotations})
}

fn pod_spec(spec: core::PodSpec) -> Value {
    let context = spec.security_context.unwrap_or_default();
    let containers =
        |list: Vec<core::Container>| -> Vec<Value> { list.into_iter().map(container).collect() };
    json!({
        "hostNetwork": spec.host_network,
        "hostPID": spec.host_pid,
        "hostIPC": spec.host_ipc,
        "nodeName": spec.node_name,
        "serviceAccountName": spec.service_account_name,
        "serviceAccount": spec.service_account,
        "securityContext": {
            "windowsOptions": windows(context.windows_options),
            "seLinuxOptions": selinux(context.se_linux_options),
            "seccompProfile": {"type": context.seccomp_profile.and_then(|p| p.r#type)},
            "appArmorProfile": {"type": context.app_armor_profile.and_then(|p| p.r#type)},
            "sysctls": context.sysctls.into_iter().map(|s| json!({"name": s.name})).collect::<Vec<_>>(),
        },
        "volumes": spec.volumes.into_iter().map(volume).collect::<Vec<_>>(),
        "containers": containers(spec.containers),
        "initContainers": containers(spec.init_containers),
        "ephemeralContainers": spec.ephemeral_containers.into_iter()
            .map(|c| ephemeral(c.ephemeral_container_common.unwrap_or_default()))
            .collect::<Vec<_>>(),
    })
}

fn volume(volume: core::Volume) -> Value {
    let source = volume.volume_source.unwrap_or_default();
    let projected: Vec<Value> = source
        .projected
        .map(|p| p.sources)
        .unwrap_or_default()
        .into_iter()
        .map(|s| json!({"secret": s.secret.map(|_| json!({}))}))
        .collect();
    json!({
        "hostPath": source.host_path.map(|_| json!({})),
        "secret": source.secret.map(|_| json!({})),
        "projected": {"sources": projected},
    })
}

/// The fields a container and an ephemeral container share, as JSON.
macro_rules! container_json {
    ($c:expr) => {{
        let c = $c;
        let context = c.security_context.unwrap_or_default();
        json!({
            "securityContext": {
                "privileged": context.privileged,
                "capabilities": {"add": context.capabilities.map(|c| c.add).unwrap_or_default()},
                "procMount": context.proc_mount,
                "windowsOptions": windows(context.windows_options),
                "seLinuxOptions": selinux(context.se_linux_options),
                "seccompProfile": {"type": context.seccomp_profile.and_then(|p| p.r#type)},
                "appArmorProfile": {"type": context.app_armor_profile.and_then(|p| p.r#type)},
            },
            "ports": c.ports.into_iter().map(|p| json!({"hostPort": p.host_port})).collect::<Vec<_>>(),
            "livenessProbe": probe(c.liveness_probe),
            "readinessProbe": probe(c.readiness_probe),
            "startupProbe": probe(c.startup_probe),
            "lifecycle": lifecycle(c.lifecycle),
            "env": c.env.into_iter().map(|e| json!({"valueFrom": {
                "secretKeyRef": e.value_from.and_then(|v| v.secret_key_ref).map(|_| json!({}))
            }})).collect::<Vec<_>>(),
            "envFrom": c.env_from.into_iter().map(|e| json!({
                "secretRef": e.secret_ref.map(|_| json!({}))
            })).collect::<Vec<_>>(),
        })
    }};
}

fn container(c: core::Container) -> Value {
    container_json!(c)
}

fn ephemeral(c: core::EphemeralContainerCommon) -> Value {
    container_json!(c)
}

fn windows(options: Option<core::WindowsSecurityContextOptions>) -> Value {
    json!({"hostProcess": options.and_then(|o| o.host_process)})
}

fn selinux(options: Option<core::SeLinuxOptions>) -> Value {
    let o = options.unwrap_or_default();
    json!({"type": o.r#type, "user": o.user, "role": o.role})
}

fn hosts(http_get: Option<core::HttpGetAction>, tcp: Option<core::TcpSocketAction>) -> Value {
    json!({
        "httpGet": {"host": http_get.and_then(|h| h.host)},
        "tcpSocket": {"host": tcp.and_then(|t| t.host)},
    })
}

fn probe(probe: Option<core::Probe>) -> Value {
    let handler = probe.and_then(|p| p.handler).unwrap_or_default();
    hosts(handler.http_get, handler.tcp_socket)
}

fn lifecycle(lifecycle: Option<core::Lifecycle>) -> Value {
    let lifecycle = lifecycle.unwrap_or_default();
    let hook = |h: Option<core::LifecycleHandler>| {
        let h = h.unwrap_or_default();
        hosts(h.http_get, h.tcp_socket)
    };
    json!({"postStart": hook(lifecycle.post_start), "preStop": hook(lifecycle.pre_stop)})
}
