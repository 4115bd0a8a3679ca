//! What reading the body costs a pod or workload write: decoding and judging a typical
//! Deployment (three containers with probes, env, volumes and a security context) sent as
//! JSON (kubectl apply), YAML (server-side apply), protobuf (kubectl's typed commands) and
//! a strategic merge patch. Requests of other resources never reach this code.
//!
//!     cargo bench --bench inspect

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use prost::Message;
use serde_json::{Value, json};
use sluice::inspect::{BodyKind, Encoding, Workload, judge};

fn container(name: &str) -> Value {
    json!({
        "name": name, "image": format!("registry.example/{name}:1.4.2"),
        "ports": [{"containerPort": 8080, "name": "http"}],
        "env": [{"name": "MODE", "value": "prod"}, {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "level"}}}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 10},
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8080}},
        "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}, {"name": "tmp", "mountPath": "/tmp"}],
        "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}},
    })
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "dev-1", "labels": {"app": "web", "tier": "frontend"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}, "annotations": {"prometheus.io/scrape": "true"}},
                "spec": {
                    "containers": [container("web"), container("sidecar"), container("metrics")],
                    "volumes": [{"name": "config", "configMap": {"name": "web"}}, {"name": "tmp", "emptyDir": {}}],
                    "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
                }
            }
        }
    })
}

fn protobuf() -> Vec<u8> {
    let pb_container = |name: &str| core::Container {
        name: Some(name.into()),
        image: Some(format!("registry.example/{name}:1.4.2")),
        ports: vec![core::ContainerPort {
            container_port: Some(8080),
            name: Some("http".into()),
            ..Default::default()
        }],
        env: vec![core::EnvVar {
            name: Some("MODE".into()),
            value: Some("prod".into()),
            ..Default::default()
        }],
        security_context: Some(core::SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(core::Capabilities {
                add: vec!["NET_BIND_SERVICE".into()],
                drop: vec!["ALL".into()],
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let deployment = apps::Deployment {
        spec: Some(apps::DeploymentSpec {
            replicas: Some(3),
            template: Some(core::PodTemplateSpec {
                metadata: None,
                spec: Some(core::PodSpec {
                    containers: vec![
                        pb_container("web"),
                        pb_container("sidecar"),
                        pb_container("metrics"),
                    ],
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some("apps/v1".into()),
            kind: Some("Deployment".into()),
        }),
        raw: Some(deployment.encode_to_vec()),
        ..Default::default()
    };
    let mut body = b"k8s\0".to_vec();
    body.extend(unknown.encode_to_vec());
    body
}

fn bench(c: &mut Criterion) {
    let object = deployment();
    let patch = json!({"spec": {"template": {"spec": {"containers": [container("web")]}}}});
    let bodies = [
        (
            "deployment_json",
            BodyKind::Object(Encoding::Json),
            serde_json::to_vec(&object).unwrap(),
        ),
        (
            "deployment_yaml",
            BodyKind::Apply,
            serde_saphyr::to_string(&object).unwrap().into_bytes(),
        ),
        (
            "deployment_protobuf",
            BodyKind::Object(Encoding::Protobuf),
            protobuf(),
        ),
        (
            "strategic_patch",
            BodyKind::MergePatch,
            serde_json::to_vec(&patch).unwrap(),
        ),
    ];
    let mut group = c.benchmark_group("inspect");
    for (name, kind, body) in &bodies {
        assert_eq!(
            judge(Workload::Template, "deployments", *kind, body).unwrap(),
            None,
            "{name}"
        );
        group.bench_function(*name, |b| {
            b.iter(|| judge(Workload::Template, "deployments", *kind, black_box(body)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
