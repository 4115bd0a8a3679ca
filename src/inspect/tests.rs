//! Table tests: each baseline field on both sides of its boundary, each container list,
//! each workload kind, each patch type and each encoding.

use serde_json::{Value, json};

use super::*;

/// A change to a pod spec.
type Change = fn(&mut Value);

const KINDS: &[(&str, &str, Workload)] = &[
    ("", "pods", Workload::Pod),
    ("", "podtemplates", Workload::PodTemplate),
    ("", "replicationcontrollers", Workload::Template),
    ("apps", "deployments", Workload::Template),
    ("apps", "statefulsets", Workload::Template),
    ("apps", "daemonsets", Workload::Template),
    ("apps", "replicasets", Workload::Template),
    ("batch", "jobs", Workload::Template),
    ("batch", "cronjobs", Workload::CronJob),
];

/// A plain pod spec, with `change` applied to it.
fn spec_with(change: impl FnOnce(&mut Value)) -> Value {
    let mut spec = json!({"containers": [{"name": "app", "image": "nginx:1.27"}]});
    change(&mut spec);
    spec
}

/// The whole object of `workload` around a pod template.
pub(super) fn object(workload: Workload, metadata: Value, spec: Value) -> Value {
    let template = json!({"metadata": metadata, "spec": spec});
    match workload {
        Workload::Pod => template,
        Workload::Template => json!({"spec": {"template": template}}),
        Workload::CronJob => json!({"spec": {"jobTemplate": {"spec": {"template": template}}}}),
        Workload::PodTemplate => json!({"template": template}),
    }
}

fn rate_json(workload: Workload, resource: &str, object: &Value) -> Option<BodyTier> {
    let body = serde_json::to_vec(object).unwrap();
    judge(workload, resource, BodyKind::Object(Encoding::Json), &body).unwrap()
}

fn rate_pod(change: impl FnOnce(&mut Value)) -> Option<BodyTier> {
    let object = object(Workload::Pod, json!({}), spec_with(change));
    rate_json(Workload::Pod, "pods", &object)
}

fn tier_of(change: impl FnOnce(&mut Value)) -> Option<Tier> {
    rate_pod(change).map(|b| b.tier)
}

const ALLOWED: &[Change] = &[
    |s| s["hostNetwork"] = json!(false),
    |s| s["hostPID"] = json!(false),
    |s| s["hostIPC"] = json!(false),
    |s| s["containers"][0]["securityContext"] = json!({"privileged": false}),
    |s| {
        s["containers"][0]["securityContext"]["capabilities"] =
            json!({"add": pod_spec_capabilities(), "drop": ["ALL"]})
    },
    |s| s["containers"][0]["securityContext"]["procMount"] = json!("Default"),
    |s| s["containers"][0]["ports"] = json!([{"containerPort": 80, "hostPort": 0}]),
    |s| s["containers"][0]["ports"] = json!([{"containerPort": 80}]),
    |s| s["securityContext"]["seccompProfile"] = json!({"type": "RuntimeDefault"}),
    |s| {
        s["containers"][0]["securityContext"]["seccompProfile"] =
            json!({"type": "Localhost", "localhostProfile": "p.json"})
    },
    |s| s["securityContext"]["appArmorProfile"] = json!({"type": "RuntimeDefault"}),
    |s| s["containers"][0]["securityContext"]["appArmorProfile"] = json!({"type": "Localhost"}),
    |s| s["securityContext"]["seLinuxOptions"] = json!({"type": "container_t", "level": "s0:c1"}),
    |s| {
        s["containers"][0]["securityContext"]["seLinuxOptions"] =
            json!({"type": "container_init_t"})
    },
    |s| s["securityContext"]["seLinuxOptions"] = json!({"type": "container_kvm_t"}),
    |s| s["securityContext"]["seLinuxOptions"] = json!({"type": "container_engine_t"}),
    |s| s["securityContext"]["seLinuxOptions"] = json!({"type": "", "user": ""}),
    |s| s["securityContext"]["windowsOptions"] = json!({"hostProcess": false}),
    |s| {
        s["securityContext"]["sysctls"] = json!([
            {"name": "kernel.shm_rmid_forced", "value": "1"},
            {"name": "net.ipv4.ip_local_port_range", "value": "1024 65535"},
            {"name": "net.ipv4.tcp_keepalive_time", "value": "60"},
            {"name": "net.ipv4.tcp_wmem", "value": "4096 16384 4194304"},
        ])
    },
    |s| {
        s["volumes"] =
            json!([{"name": "c", "configMap": {"name": "x"}}, {"name": "e", "emptyDir": {}}])
    },
    |s| {
        s["volumes"] = json!([{"name": "p", "projected": {"sources": [
            {"configMap": {"name": "x"}}, {"serviceAccountToken": {"path": "t"}}
        ]}}])
    },
    |s| s["serviceAccountName"] = json!("default"),
    |s| s["nodeName"] = json!(""),
    |s| {
        s["containers"][0]["env"] =
            json!([{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "x", "key": "k"}}}])
    },
    |s| s["containers"][0]["livenessProbe"] = json!({"httpGet": {"path": "/", "port": 80}}),
    |s| s["containers"][0]["readinessProbe"] = json!({"tcpSocket": {"port": 80, "host": ""}}),
    |s| {
        s["containers"][0]["lifecycle"] =
            json!({"preStop": {"httpGet": {"path": "/q", "port": 80}}})
    },
];

#[test]
fn a_plain_pod_and_every_allowed_value_keep_their_tier() {
    assert_eq!(tier_of(|_| {}), None);
    for (i, change) in ALLOWED.iter().enumerate() {
        assert_eq!(tier_of(change), None, "allowed case {i}");
    }
}

fn pod_spec_capabilities() -> Value {
    json!([
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT"
    ])
}

const VIOLATIONS: &[(&str, Change)] = &[
    ("hostNetwork in pods (spec.hostNetwork)", |s| {
        s["hostNetwork"] = json!(true)
    }),
    ("hostPID in pods (spec.hostPID)", |s| {
        s["hostPID"] = json!(true)
    }),
    ("hostIPC in pods (spec.hostIPC)", |s| {
        s["hostIPC"] = json!(true)
    }),
    ("privileged container in pods (spec.containers[0])", |s| {
        s["containers"][0]["securityContext"] = json!({"privileged": true})
    }),
    (
        "capability SYS_ADMIN added in pods (spec.containers[0])",
        |s| {
            s["containers"][0]["securityContext"]["capabilities"] =
                json!({"add": ["CHOWN", "SYS_ADMIN"]})
        },
    ),
    (
        "capability NET_RAW added in pods (spec.containers[0])",
        |s| s["containers"][0]["securityContext"]["capabilities"] = json!({"add": ["NET_RAW"]}),
    ),
    ("capability CAP_CHOWN added", |s| {
        s["containers"][0]["securityContext"]["capabilities"] = json!({"add": ["CAP_CHOWN"]})
    }),
    (
        "hostPath volume in pods (spec.volumes[1])",
        |s| {
            s["volumes"] =
                json!([{"name": "e", "emptyDir": {}}, {"name": "root", "hostPath": {"path": "/"}}])
        },
    ),
    ("hostPort in pods (spec.containers[0].ports[0])", |s| {
        s["containers"][0]["ports"] = json!([{"containerPort": 80, "hostPort": 80}])
    }),
    ("procMount Unmasked in pods (spec.containers[0])", |s| {
        s["containers"][0]["securityContext"]["procMount"] = json!("Unmasked")
    }),
    (
        "seccomp profile Unconfined in pods (spec.securityContext)",
        |s| s["securityContext"]["seccompProfile"] = json!({"type": "Unconfined"}),
    ),
    (
        "seccomp profile Unconfined in pods (spec.containers[0].securityContext)",
        |s| s["containers"][0]["securityContext"]["seccompProfile"] = json!({"type": "Unconfined"}),
    ),
    (
        "AppArmor profile Unconfined in pods (spec.securityContext)",
        |s| s["securityContext"]["appArmorProfile"] = json!({"type": "Unconfined"}),
    ),
    (
        "AppArmor profile Unconfined in pods (spec.containers[0].securityContext)",
        |s| {
            s["containers"][0]["securityContext"]["appArmorProfile"] = json!({"type": "Unconfined"})
        },
    ),
    ("SELinux type spc_t in pods (spec.securityContext)", |s| {
        s["securityContext"]["seLinuxOptions"] = json!({"type": "spc_t"})
    }),
    (
        "SELinux user set in pods (spec.containers[0].securityContext)",
        |s| s["containers"][0]["securityContext"]["seLinuxOptions"] = json!({"user": "system_u"}),
    ),
    ("SELinux role set in pods (spec.securityContext)", |s| {
        s["securityContext"]["seLinuxOptions"] = json!({"role": "system_r"})
    }),
    (
        "unsafe sysctl kernel.msgmax in pods (spec.securityContext.sysctls[1])",
        |s| s["securityContext"]["sysctls"] = json!([{"name": "net.ipv4.tcp_syncookies", "value": "1"}, {"name": "kernel.msgmax", "value": "1"}]),
    ),
    (
        "Windows hostProcess pod in pods (spec.securityContext)",
        |s| s["securityContext"]["windowsOptions"] = json!({"hostProcess": true}),
    ),
    (
        "Windows hostProcess container in pods (spec.containers[0].securityContext)",
        |s| s["containers"][0]["securityContext"]["windowsOptions"] = json!({"hostProcess": true}),
    ),
    (
        "livenessProbe on another host in pods (spec.containers[0].livenessProbe.httpGet.host)",
        |s| {
            s["containers"][0]["livenessProbe"] =
                json!({"httpGet": {"host": "169.254.169.254", "port": 80}})
        },
    ),
    (
        "startupProbe on another host in pods (spec.containers[0].startupProbe.tcpSocket.host)",
        |s| {
            s["containers"][0]["startupProbe"] =
                json!({"tcpSocket": {"host": "10.0.0.1", "port": 22}})
        },
    ),
    (
        "lifecycle.postStart on another host in pods (spec.containers[0].lifecycle.postStart.httpGet.host)",
        |s| {
            s["containers"][0]["lifecycle"] =
                json!({"postStart": {"httpGet": {"host": "kubelet", "port": 10250}}})
        },
    ),
    ("nodeName set in pods (spec.nodeName)", |s| {
        s["nodeName"] = json!("node-1")
    }),
    ("privileged container in pods (spec.containers[0])", |s| {
        s["containers"][0]["securityContext"] = json!({"privileged": "yes"})
    }),
];

#[test]
fn every_baseline_violation_is_tier_four_and_named() {
    let cases = VIOLATIONS;
    for (reason, change) in cases {
        let rated = rate_pod(change).unwrap_or_else(|| panic!("{reason}: not raised"));
        assert_eq!(rated.tier, Tier::T4, "{reason}");
        assert!(
            rated.reason.starts_with(reason),
            "{} is not {reason}",
            rated.reason
        );
    }
}

#[test]
fn apparmor_annotations_are_judged_on_the_template_metadata() {
    let key = "container.apparmor.security.beta.kubernetes.io/app";
    for (profile, tier) in [
        ("runtime/default", None),
        ("localhost/my-profile", None),
        ("unconfined", Some(Tier::T4)),
    ] {
        let object = object(
            Workload::Template,
            json!({"annotations": {key: profile}}),
            spec_with(|_| {}),
        );
        let rated = rate_json(Workload::Template, "deployments", &object);
        assert_eq!(rated.as_ref().map(|r| r.tier), tier, "{profile}");
        if let Some(rated) = rated {
            assert_eq!(
                rated.reason,
                "AppArmor profile unconfined for container app in deployments \
                 (spec.template.metadata.annotations)"
            );
        }
    }
}

const SECRET_READS: &[(&str, Change)] = &[
    ("secret volume in pods (spec.volumes[0])", |s| {
        s["volumes"] = json!([{"name": "s", "secret": {"secretName": "db"}}])
    }),
    (
        "projected secret volume in pods (spec.volumes[0].projected.sources[1])",
        |s| s["volumes"] = json!([{"name": "p", "projected": {"sources": [{"configMap": {"name": "c"}}, {"secret": {"name": "db"}}]}}]),
    ),
    (
        "reads a Secret into env in pods (spec.containers[0].env[1])",
        |s| s["containers"][0]["env"] = json!([{"name": "A", "value": "1"}, {"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]),
    ),
    (
        "reads a Secret into env in pods (spec.containers[0].envFrom[0])",
        |s| s["containers"][0]["envFrom"] = json!([{"secretRef": {"name": "db"}}]),
    ),
    (
        "runs as service account deployer in pods (spec.serviceAccountName)",
        |s| s["serviceAccountName"] = json!("deployer"),
    ),
    (
        "runs as service account old in pods (spec.serviceAccount)",
        |s| s["serviceAccount"] = json!("old"),
    ),
];

#[test]
fn secrets_and_service_accounts_are_tier_three() {
    let cases = SECRET_READS;
    for (reason, change) in cases {
        let rated = rate_pod(change).unwrap_or_else(|| panic!("{reason}: not raised"));
        assert_eq!((rated.tier, rated.reason.as_str()), (Tier::T3, *reason));
    }
    // A T4 field outranks a T3 one, and the reason says how many more there are.
    let both = rate_pod(|s| {
        s["volumes"] = json!([{"name": "s", "secret": {"secretName": "db"}}]);
        s["hostPID"] = json!(true);
        s["hostIPC"] = json!(true);
    })
    .unwrap();
    assert_eq!(both.tier, Tier::T4);
    assert_eq!(both.reason, "hostPID in pods (spec.hostPID) and 1 more");
}

#[test]
fn every_container_list_and_every_workload_kind_is_read() {
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        for (group, resource, workload) in KINDS {
            assert_eq!(Workload::of(group, resource), Some(*workload));
            let spec = json!({list: [{"name": "a"}, {"name": "b", "securityContext": {"privileged": true}}]});
            let object = object(*workload, json!({}), spec);
            let rated = rate_json(*workload, resource, &object).unwrap();
            let at = match workload {
                Workload::Pod => "spec",
                Workload::Template => "spec.template.spec",
                Workload::CronJob => "spec.jobTemplate.spec.template.spec",
                Workload::PodTemplate => "template.spec",
            };
            assert_eq!(
                rated.reason,
                format!("privileged container in {resource} ({at}.{list}[1])")
            );
            assert_eq!(rated.tier, Tier::T4);
        }
    }
    for (group, resource) in [
        ("", "configmaps"),
        ("apps", "controllerrevisions"),
        ("", "deployments"),
        ("example.com", "pods"),
    ] {
        assert_eq!(Workload::of(group, resource), None, "{group}/{resource}");
    }
}
