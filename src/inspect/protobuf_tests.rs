//! Protobuf bodies made the way kubectl makes them: real objects of k8s-pb's generated types,
//! encoded by prost and wrapped in the `k8s\0` + `runtime.Unknown` envelope.

use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::batch::v1 as batch;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use prost::Message;

use super::*;

/// `object` as a Kubernetes protobuf body.
pub(super) fn envelope(api_version: &str, kind: &str, object: &impl Message) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(object.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut body = b"k8s\0".to_vec();
    body.extend(unknown.encode_to_vec());
    body
}

fn template(spec: core::PodSpec) -> Option<core::PodTemplateSpec> {
    Some(core::PodTemplateSpec {
        metadata: Some(ObjectMeta::default()),
        spec: Some(spec),
    })
}

/// An apps/v1 object of kind `$object` whose `$spec` holds the pod template `$template`.
macro_rules! apps {
    ($object:ident, $spec:ident, $template:expr) => {
        apps::$object {
            spec: Some(apps::$spec {
                template: $template,
                ..Default::default()
            }),
            ..Default::default()
        }
    };
}

/// `spec` inside each workload kind, with its resource name, encoded.
pub(super) fn every_kind(spec: core::PodSpec) -> Vec<(&'static str, Workload, Vec<u8>)> {
    [core_kinds(&spec), apps_kinds(&spec), batch_kinds(&spec)].concat()
}

type Encoded = (&'static str, Workload, Vec<u8>);

fn core_kinds(spec: &core::PodSpec) -> Vec<Encoded> {
    let pod = core::Pod {
        spec: Some(spec.clone()),
        ..Default::default()
    };
    let pod_template = core::PodTemplate {
        template: template(spec.clone()),
        ..Default::default()
    };
    let rc_spec = core::ReplicationControllerSpec {
        template: template(spec.clone()),
        ..Default::default()
    };
    let rc = core::ReplicationController {
        spec: Some(rc_spec),
        ..Default::default()
    };
    vec![
        ("pods", Workload::Pod, envelope("v1", "Pod", &pod)),
        (
            "podtemplates",
            Workload::PodTemplate,
            envelope("v1", "PodTemplate", &pod_template),
        ),
        (
            "replicationcontrollers",
            Workload::Template,
            envelope("v1", "ReplicationController", &rc),
        ),
    ]
}

fn apps_kinds(spec: &core::PodSpec) -> Vec<Encoded> {
    let t = || template(spec.clone());
    let deployment = apps!(Deployment, DeploymentSpec, t());
    let statefulset = apps!(StatefulSet, StatefulSetSpec, t());
    let daemonset = apps!(DaemonSet, DaemonSetSpec, t());
    let replicaset = apps!(ReplicaSet, ReplicaSetSpec, t());
    vec![
        (
            "deployments",
            Workload::Template,
            envelope("apps/v1", "Deployment", &deployment),
        ),
        (
            "statefulsets",
            Workload::Template,
            envelope("apps/v1", "StatefulSet", &statefulset),
        ),
        (
            "daemonsets",
            Workload::Template,
            envelope("apps/v1", "DaemonSet", &daemonset),
        ),
        (
            "replicasets",
            Workload::Template,
            envelope("apps/v1", "ReplicaSet", &replicaset),
        ),
    ]
}

fn batch_kinds(spec: &core::PodSpec) -> Vec<Encoded> {
    let job_spec = batch::JobSpec {
        template: template(spec.clone()),
        ..Default::default()
    };
    let job_template = batch::JobTemplateSpec {
        spec: Some(job_spec.clone()),
        ..Default::default()
    };
    let cron_spec = batch::CronJobSpec {
        job_template: Some(job_template),
        ..Default::default()
    };
    let cron = batch::CronJob {
        spec: Some(cron_spec),
        ..Default::default()
    };
    let job = batch::Job {
        spec: Some(job_spec),
        ..Default::default()
    };
    vec![
        (
            "jobs",
            Workload::Template,
            envelope("batch/v1", "Job", &job),
        ),
        (
            "cronjobs",
            Workload::CronJob,
            envelope("batch/v1", "CronJob", &cron),
        ),
    ]
}

pub(super) fn container(name: &str) -> core::Container {
    core::Container {
        name: Some(name.into()),
        image: Some("nginx:1.27".into()),
        ..Default::default()
    }
}

fn rate(resource: &str, workload: Workload, body: &[u8]) -> Option<BodyTier> {
    judge(
        workload,
        resource,
        BodyKind::Object(Encoding::Protobuf),
        body,
    )
    .unwrap()
}

#[test]
fn a_plain_workload_in_protobuf_raises_nothing() {
    let spec = core::PodSpec {
        containers: vec![container("app")],
        ..Default::default()
    };
    for (resource, workload, body) in every_kind(spec) {
        assert_eq!(rate(resource, workload, &body), None, "{resource}");
    }
}

#[test]
fn a_privileged_container_in_each_list_and_kind_is_tier_four() {
    let privileged = core::Container {
        security_context: Some(core::SecurityContext {
            privileged: Some(true),
            ..Default::default()
        }),
        ..container("root")
    };
    let specs = [
        (
            "containers",
            core::PodSpec {
                containers: vec![container("app"), privileged.clone()],
                ..Default::default()
            },
        ),
        (
            "initContainers",
            core::PodSpec {
                containers: vec![container("app")],
                init_containers: vec![container("init"), privileged.clone()],
                ..Default::default()
            },
        ),
    ];
    for (list, spec) in specs {
        for (resource, workload, body) in every_kind(spec) {
            let rated = rate(resource, workload, &body).unwrap();
            assert_eq!(rated.tier, Tier::T4);
            assert!(
                rated.reason.starts_with("privileged container in"),
                "{}",
                rated.reason
            );
            assert!(
                rated.reason.ends_with(&format!("{list}[1])")),
                "{}",
                rated.reason
            );
        }
    }
    let ephemeral = core::EphemeralContainer {
        ephemeral_container_common: Some(core::EphemeralContainerCommon {
            name: Some("debug".into()),
            security_context: privileged.security_context.clone(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let spec = core::PodSpec {
        containers: vec![container("app")],
        ephemeral_containers: vec![ephemeral],
        ..Default::default()
    };
    let (resource, workload, body) = every_kind(spec).remove(0);
    let rated = rate(resource, workload, &body).unwrap();
    assert_eq!(
        rated.reason,
        "privileged container in pods (spec.ephemeralContainers[0])"
    );
}

fn host_path_volume() -> core::Volume {
    core::Volume {
        name: Some("root".into()),
        volume_source: Some(core::VolumeSource {
            host_path: Some(core::HostPathVolumeSource {
                path: Some("/".into()),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

fn secret_env_container() -> core::Container {
    core::Container {
        env: vec![core::EnvVar {
            name: Some("P".into()),
            value_from: Some(core::EnvVarSource {
                secret_key_ref: Some(core::SecretKeySelector::default()),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..container("app")
    }
}

fn pod_level_cases() -> Vec<(&'static str, Tier, core::PodSpec)> {
    vec![
        (
            "hostPath volume",
            Tier::T4,
            core::PodSpec {
                containers: vec![container("app")],
                volumes: vec![host_path_volume()],
                ..Default::default()
            },
        ),
        (
            "hostNetwork",
            Tier::T4,
            core::PodSpec {
                containers: vec![container("app")],
                host_network: Some(true),
                ..Default::default()
            },
        ),
        (
            "unsafe sysctl kernel.msgmax",
            Tier::T4,
            core::PodSpec {
                containers: vec![container("app")],
                security_context: Some(core::PodSecurityContext {
                    sysctls: vec![core::Sysctl {
                        name: Some("kernel.msgmax".into()),
                        value: Some("1".into()),
                    }],
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
        (
            "capability SYS_ADMIN added",
            Tier::T4,
            core::PodSpec {
                containers: vec![core::Container {
                    security_context: Some(core::SecurityContext {
                        capabilities: Some(core::Capabilities {
                            add: vec!["CHOWN".into(), "SYS_ADMIN".into()],
                            drop: vec![],
                        }),
                        ..Default::default()
                    }),
                    ..container("app")
                }],
                ..Default::default()
            },
        ),
    ]
}

fn tier_three_cases() -> Vec<(&'static str, Tier, core::PodSpec)> {
    vec![
        (
            "reads a Secret into env",
            Tier::T3,
            core::PodSpec {
                containers: vec![secret_env_container()],
                ..Default::default()
            },
        ),
        (
            "runs as service account deployer",
            Tier::T3,
            core::PodSpec {
                containers: vec![container("app")],
                service_account_name: Some("deployer".into()),
                ..Default::default()
            },
        ),
    ]
}

#[test]
fn pod_level_fields_volumes_and_secret_reads_are_read_from_protobuf() {
    for (what, tier, spec) in [pod_level_cases(), tier_three_cases()].concat() {
        for (resource, workload, body) in every_kind(spec.clone()) {
            let rated =
                rate(resource, workload, &body).unwrap_or_else(|| panic!("{what} {resource}"));
            assert_eq!(rated.tier, tier, "{what} {resource}");
            assert!(
                rated.reason.starts_with(&format!("{what} in {resource} (")),
                "{}",
                rated.reason
            );
        }
    }
}

#[test]
fn a_protobuf_kind_that_does_not_match_the_resource_is_refused() {
    let body = envelope("v1", "ConfigMap", &core::ConfigMap::default());
    let outcome = judge(
        Workload::Template,
        "deployments",
        BodyKind::Object(Encoding::Protobuf),
        &body,
    );
    assert!(
        matches!(outcome, Err(BodyError::Undecodable(_))),
        "{outcome:?}"
    );
}
