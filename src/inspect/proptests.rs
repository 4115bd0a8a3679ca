//! Property: adding any baseline violation to any valid pod spec, in any workload kind, at
//! any encoding (JSON, YAML, protobuf, merge patch, server-side apply, JSON patch), never
//! yields a tier below T4. A valid spec is generated as parameters and rendered both as
//! JSON and as k8s-pb objects, so the protobuf cases are real encoded objects too.

use k8s_pb::api::core::v1 as core;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::protobuf_tests::{container, every_kind};
use super::tests::object;
use super::*;

const LISTS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];
const SAFE_CAPS: [&str; 4] = ["CHOWN", "KILL", "NET_BIND_SERVICE", "SETUID"];

/// A container of a valid spec: which list it is in, and the allowed settings it carries.
#[derive(Debug, Clone)]
struct Plain {
    list: usize,
    caps: Vec<&'static str>,
    port: bool,
    seccomp: Option<&'static str>,
}

/// One baseline violation, at container `usize` where it is a container's.
#[derive(Debug, Clone)]
enum Risk {
    HostNamespace(&'static str),
    Privileged(usize),
    Capability(usize, &'static str),
    HostPath,
    HostPort(usize, i32),
    ProcMount(usize),
    SeccompUnconfined(Option<usize>),
    SelinuxUser(Option<usize>),
    SelinuxType(&'static str),
    Sysctl(&'static str),
    HostProcess(Option<usize>),
    ProbeHost(usize),
    NodeName,
}

fn plain() -> impl Strategy<Value = Plain> {
    (
        0..3usize,
        proptest::sample::subsequence(SAFE_CAPS.to_vec(), 0..=4),
        any::<bool>(),
        proptest::option::of(prop_oneof![Just("RuntimeDefault"), Just("Localhost")]),
    )
        .prop_map(|(list, caps, port, seccomp)| Plain {
            list,
            caps,
            port,
            seccomp,
        })
}

fn risk(containers: usize) -> impl Strategy<Value = Risk> {
    let at = 0..containers;
    let maybe = proptest::option::of(0..containers);
    prop_oneof![
        prop_oneof![Just("hostNetwork"), Just("hostPID"), Just("hostIPC")]
            .prop_map(Risk::HostNamespace),
        at.clone().prop_map(Risk::Privileged),
        (
            at.clone(),
            prop_oneof![
                Just("SYS_ADMIN"),
                Just("NET_ADMIN"),
                Just("NET_RAW"),
                Just("SYS_PTRACE"),
                Just("ALL")
            ]
        )
            .prop_map(|(i, c)| Risk::Capability(i, c)),
        Just(Risk::HostPath),
        (at.clone(), 1..65536i32).prop_map(|(i, p)| Risk::HostPort(i, p)),
        at.clone().prop_map(Risk::ProcMount),
        maybe.clone().prop_map(Risk::SeccompUnconfined),
        maybe.clone().prop_map(Risk::SelinuxUser),
        prop_oneof![Just("spc_t"), Just("unconfined_t")].prop_map(Risk::SelinuxType),
        prop_oneof![
            Just("kernel.msgmax"),
            Just("vm.swappiness"),
            Just("net.core.somaxconn")
        ]
        .prop_map(Risk::Sysctl),
        maybe.prop_map(Risk::HostProcess),
        at.prop_map(Risk::ProbeHost),
        Just(Risk::NodeName),
    ]
}

fn case() -> impl Strategy<Value = (Vec<Plain>, Risk)> {
    proptest::collection::vec(plain(), 1..5).prop_flat_map(|mut plains| {
        plains[0].list = 0; // a pod has at least one ordinary container
        let n = plains.len();
        (Just(plains), risk(n))
    })
}

fn json_spec(plains: &[Plain], risk: Option<&Risk>) -> Value {
    let mut spec = json!({"volumes": [{"name": "c", "configMap": {"name": "x"}}],
        "securityContext": {"sysctls": [{"name": "net.ipv4.tcp_syncookies", "value": "1"}]}});
    for (i, p) in plains.iter().enumerate() {
        let mut c = json!({"name": format!("c{i}"), "image": "nginx",
            "securityContext": {"capabilities": {"add": p.caps, "drop": ["ALL"]}}});
        if p.port {
            c["ports"] = json!([{"containerPort": 8080, "hostPort": 0}]);
        }
        if let Some(kind) = p.seccomp {
            c["securityContext"]["seccompProfile"] = json!({"type": kind});
        }
        spec[LISTS[p.list]]
            .as_array_mut()
            .map(|l| l.push(c.clone()))
            .unwrap_or_else(|| {
                spec[LISTS[p.list]] = json!([c]);
            });
    }
    if let Some(risk) = risk {
        add_json_risk(&mut spec, plains, risk);
    }
    spec
}

fn add_json_risk(spec: &mut Value, plains: &[Plain], risk: &Risk) {
    match risk {
        Risk::HostNamespace(field) => spec[*field] = json!(true),
        Risk::Privileged(i) => {
            container_at(spec, plains, *i)["securityContext"]["privileged"] = json!(true)
        }
        Risk::Capability(i, cap) => {
            let caps = container_at(spec, plains, *i)["securityContext"]["capabilities"]["add"]
                .as_array_mut()
                .unwrap();
            caps.push(json!(cap));
        }
        Risk::HostPath => spec["volumes"] = json!([{"name": "h", "hostPath": {"path": "/"}}]),
        Risk::HostPort(i, port) => {
            container_at(spec, plains, *i)["ports"] =
                json!([{"containerPort": 80, "hostPort": port}])
        }
        Risk::ProcMount(i) => {
            container_at(spec, plains, *i)["securityContext"]["procMount"] = json!("Unmasked")
        }
        Risk::SeccompUnconfined(None) => {
            spec["securityContext"]["seccompProfile"] = json!({"type": "Unconfined"})
        }
        Risk::SeccompUnconfined(Some(i)) => {
            container_at(spec, plains, *i)["securityContext"]["seccompProfile"] =
                json!({"type": "Unconfined"})
        }
        Risk::SelinuxUser(None) => {
            spec["securityContext"]["seLinuxOptions"] = json!({"user": "root"})
        }
        Risk::SelinuxUser(Some(i)) => {
            container_at(spec, plains, *i)["securityContext"]["seLinuxOptions"] =
                json!({"user": "root"})
        }
        Risk::SelinuxType(kind) => {
            spec["securityContext"]["seLinuxOptions"] = json!({"type": kind})
        }
        Risk::Sysctl(name) => spec["securityContext"]["sysctls"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": name, "value": "1"})),
        Risk::HostProcess(None) => {
            spec["securityContext"]["windowsOptions"] = json!({"hostProcess": true})
        }
        Risk::HostProcess(Some(i)) => {
            container_at(spec, plains, *i)["securityContext"]["windowsOptions"] =
                json!({"hostProcess": true})
        }
        Risk::ProbeHost(i) => {
            container_at(spec, plains, *i)["livenessProbe"] =
                json!({"tcpSocket": {"host": "10.0.0.1", "port": 22}})
        }
        Risk::NodeName => spec["nodeName"] = json!("node-1"),
    }
}

/// The JSON of container `i` of `plains` in `spec`.
fn container_at<'a>(spec: &'a mut Value, plains: &[Plain], i: usize) -> &'a mut Value {
    let p = &plains[i];
    let index = plains[..i].iter().filter(|q| q.list == p.list).count();
    &mut spec[LISTS[p.list]][index]
}

fn pb_spec(plains: &[Plain], risk: &Risk) -> core::PodSpec {
    let mut spec = core::PodSpec::default();
    let context = |p: &Plain, i: usize| {
        let mut c = container(&format!("c{i}"));
        c.security_context = Some(core::SecurityContext {
            capabilities: Some(core::Capabilities {
                add: p.caps.iter().map(|c| c.to_string()).collect(),
                drop: vec!["ALL".into()],
            }),
            seccomp_profile: p.seccomp.map(|k| core::SeccompProfile {
                r#type: Some(k.into()),
                localhost_profile: None,
            }),
            ..Default::default()
        });
        if p.port {
            c.ports = vec![core::ContainerPort {
                container_port: Some(8080),
                host_port: Some(0),
                ..Default::default()
            }];
        }
        c
    };
    let mut all: Vec<(usize, core::Container)> = plains
        .iter()
        .enumerate()
        .map(|(i, p)| (p.list, context(p, i)))
        .collect();
    add_pb_risk(&mut spec, &mut all, risk);
    for (list, c) in all {
        match list {
            0 => spec.containers.push(c),
            1 => spec.init_containers.push(c),
            _ => spec.ephemeral_containers.push(ephemeral(c)),
        }
    }
    spec
}

fn add_pb_risk(spec: &mut core::PodSpec, all: &mut [(usize, core::Container)], risk: &Risk) {
    let pod_context = spec.security_context.get_or_insert_with(Default::default);
    match risk {
        Risk::HostNamespace("hostNetwork") => spec.host_network = Some(true),
        Risk::HostNamespace("hostPID") => spec.host_pid = Some(true),
        Risk::HostNamespace(_) => spec.host_ipc = Some(true),
        Risk::Privileged(i) => sc(&mut all[*i].1).privileged = Some(true),
        Risk::Capability(i, cap) => sc(&mut all[*i].1)
            .capabilities
            .get_or_insert_with(Default::default)
            .add
            .push(cap.to_string()),
        Risk::HostPath => spec.volumes.push(core::Volume {
            name: Some("h".into()),
            volume_source: Some(core::VolumeSource {
                host_path: Some(Default::default()),
                ..Default::default()
            }),
        }),
        Risk::HostPort(i, port) => {
            all[*i].1.ports = vec![core::ContainerPort {
                host_port: Some(*port),
                ..Default::default()
            }]
        }
        Risk::ProcMount(i) => sc(&mut all[*i].1).proc_mount = Some("Unmasked".into()),
        Risk::SeccompUnconfined(None) => pod_context.seccomp_profile = Some(unconfined()),
        Risk::SeccompUnconfined(Some(i)) => sc(&mut all[*i].1).seccomp_profile = Some(unconfined()),
        Risk::SelinuxUser(None) => pod_context.se_linux_options = Some(selinux_user()),
        Risk::SelinuxUser(Some(i)) => sc(&mut all[*i].1).se_linux_options = Some(selinux_user()),
        Risk::SelinuxType(kind) => {
            pod_context.se_linux_options = Some(core::SeLinuxOptions {
                r#type: Some(kind.to_string()),
                ..Default::default()
            })
        }
        Risk::Sysctl(name) => pod_context.sysctls.push(core::Sysctl {
            name: Some(name.to_string()),
            value: Some("1".into()),
        }),
        Risk::HostProcess(None) => pod_context.windows_options = Some(host_process()),
        Risk::HostProcess(Some(i)) => sc(&mut all[*i].1).windows_options = Some(host_process()),
        Risk::ProbeHost(i) => all[*i].1.liveness_probe = Some(probe_on_another_host()),
        Risk::NodeName => spec.node_name = Some("node-1".into()),
    }
}

fn selinux_user() -> core::SeLinuxOptions {
    core::SeLinuxOptions {
        user: Some("root".into()),
        ..Default::default()
    }
}

fn probe_on_another_host() -> core::Probe {
    core::Probe {
        handler: Some(core::ProbeHandler {
            tcp_socket: Some(core::TcpSocketAction {
                host: Some("10.0.0.1".into()),
                port: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn sc(c: &mut core::Container) -> &mut core::SecurityContext {
    c.security_context.get_or_insert_with(Default::default)
}

fn unconfined() -> core::SeccompProfile {
    core::SeccompProfile {
        r#type: Some("Unconfined".into()),
        localhost_profile: None,
    }
}

fn host_process() -> core::WindowsSecurityContextOptions {
    core::WindowsSecurityContextOptions {
        host_process: Some(true),
        ..Default::default()
    }
}

fn ephemeral(c: core::Container) -> core::EphemeralContainer {
    core::EphemeralContainer {
        ephemeral_container_common: Some(core::EphemeralContainerCommon {
            name: c.name,
            security_context: c.security_context,
            ports: c.ports,
            liveness_probe: c.liveness_probe,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The JSON-shaped bodies of `object`: as an object in JSON and YAML, as a merge patch, as
/// server-side apply, and as a JSON patch that adds the pod spec field by field.
fn json_bodies(workload: Workload, object: &Value, spec: &Value) -> Vec<(BodyKind, Vec<u8>)> {
    let yaml = serde_saphyr::to_string(object).unwrap().into_bytes();
    let json = serde_json::to_vec(object).unwrap();
    let mut base = String::new();
    for key in workload.template() {
        base += &format!("/{key}");
    }
    let ops: Vec<Value> = spec
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| json!({"op": "add", "path": format!("{base}/spec/{k}"), "value": v}))
        .collect();
    vec![
        (BodyKind::Object(Encoding::Json), json.clone()),
        (BodyKind::Object(Encoding::Yaml), yaml.clone()),
        (BodyKind::MergePatch, json),
        (BodyKind::Apply, yaml),
        (BodyKind::JsonPatch, serde_json::to_vec(&ops).unwrap()),
    ]
}

const WORKLOADS: [(&str, Workload); 4] = [
    ("pods", Workload::Pod),
    ("deployments", Workload::Template),
    ("cronjobs", Workload::CronJob),
    ("podtemplates", Workload::PodTemplate),
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_baseline_violation_rates_below_t4((plains, risk) in case()) {
        let valid = json_spec(&plains, None);
        let risky = json_spec(&plains, Some(&risk));
        for (resource, workload) in WORKLOADS {
            // Without the risk the generated spec raises nothing.
            let body = serde_json::to_vec(&object(workload, json!({}), valid.clone())).unwrap();
            let plain = judge(workload, resource, BodyKind::Object(Encoding::Json), &body).unwrap();
            prop_assert_eq!(plain, None);
            let whole = object(workload, json!({}), risky.clone());
            for (kind, body) in json_bodies(workload, &whole, &risky) {
                let rated = judge(workload, resource, kind, &body).unwrap();
                prop_assert_eq!(rated.map(|r| r.tier), Some(Tier::T4), "{:?} {} {:?}", kind, resource, risk);
            }
        }
        for (resource, workload, body) in every_kind(pb_spec(&plains, &risk)) {
            let rated = judge(workload, resource, BodyKind::Object(Encoding::Protobuf), &body).unwrap();
            prop_assert_eq!(rated.map(|r| r.tier), Some(Tier::T4), "protobuf {} {:?}", resource, risk);
        }
    }
}
