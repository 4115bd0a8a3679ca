//! The Pod Security Standards **baseline** profile, field by field, over a pod spec held as
//! JSON (objects of any encoding, and merge, strategic and apply patches, are all read into
//! that shape), plus the two things sluice adds: a Secret read or a non-default service
//! account (T3) and `nodeName` (T4, it bypasses the scheduler).
//!
//! A patch is judged by what it sets, so every check reads only what is present: a missing
//! field is the allowed "undefined/nil" of the profile, and `null` (a merge patch deleting a
//! field) sets nothing.

use serde_json::Value;

use crate::classify::Tier;

/// One field outside what a tier allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub tier: Tier,
    /// What is wrong, e.g. `privileged container`.
    pub what: String,
    /// Where, e.g. `spec.template.spec.containers[1]`.
    pub path: String,
}

/// Capabilities a container may add under the baseline profile.
const BASELINE_CAPABILITIES: &[&str] = &[
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
    "SYS_CHROOT",
];

/// The "safe" sysctls of the baseline profile (as of Kubernetes 1.32 and later).
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
];

/// SELinux types a pod or container may ask for (an empty type is the default).
const SELINUX_TYPES: &[&str] = &[
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

const CONTAINER_LISTS: &[&str] = &["containers", "initContainers", "ephemeralContainers"];

const APPARMOR_ANNOTATION: &str = "container.apparmor.security.beta.kubernetes.io/";

/// Every violation in a pod template: `metadata` (for the AppArmor annotations) and `spec`,
/// with `at` the path of the spec (`spec`, `spec.template.spec`, ...).
pub fn violations(metadata: &Value, spec: &Value, at: &str) -> Vec<Violation> {
    let mut found = Found {
        violations: Vec::new(),
    };
    found.pod(spec, at);
    found.annotations(metadata, &parent_of(at));
    for list in CONTAINER_LISTS {
        for (i, container) in items(&spec[*list]) {
            found.container(container, &format!("{at}.{list}[{i}]"));
        }
    }
    found.violations
}

struct Found {
    violations: Vec<Violation>,
}

impl Found {
    fn add(&mut self, tier: Tier, what: impl Into<String>, path: impl Into<String>) {
        self.violations.push(Violation {
            tier,
            what: what.into(),
            path: path.into(),
        });
    }

    /// Pod-level fields.
    fn pod(&mut self, spec: &Value, at: &str) {
        for field in ["hostNetwork", "hostPID", "hostIPC"] {
            if is_true(&spec[field]) {
                self.add(Tier::T4, field, format!("{at}.{field}"));
            }
        }
        if is_set(&spec["nodeName"]) {
            self.add(Tier::T4, "nodeName set", format!("{at}.nodeName"));
        }
        let context = &spec["securityContext"];
        self.security_context(context, &format!("{at}.securityContext"), "pod");
        for (i, sysctl) in items(&context["sysctls"]) {
            let name = text(&sysctl["name"]).unwrap_or("(null)");
            if !SAFE_SYSCTLS.contains(&name) {
                let path = format!("{at}.securityContext.sysctls[{i}]");
                self.add(Tier::T4, format!("unsafe sysctl {name}"), path);
            }
        }
        for (i, volume) in items(&spec["volumes"]) {
            self.volume(volume, &format!("{at}.volumes[{i}]"));
        }
        for field in ["serviceAccountName", "serviceAccount"] {
            if let Some(name) = text(&spec[field])
                && !name.is_empty()
                && name != "default"
            {
                let what = format!("runs as service account {name}");
                self.add(Tier::T3, what, format!("{at}.{field}"));
            }
        }
    }

    fn volume(&mut self, volume: &Value, at: &str) {
        if is_set(&volume["hostPath"]) {
            self.add(Tier::T4, "hostPath volume", at);
        }
        if is_set(&volume["secret"]) {
            self.add(Tier::T3, "secret volume", at);
        }
        for (i, source) in items(&volume["projected"]["sources"]) {
            if is_set(&source["secret"]) {
                let path = format!("{at}.projected.sources[{i}]");
                self.add(Tier::T3, "projected secret volume", path);
            }
        }
    }

    fn container(&mut self, container: &Value, at: &str) {
        let context = &container["securityContext"];
        if is_true(&context["privileged"]) {
            self.add(Tier::T4, "privileged container", at);
        }
        for capability in context["capabilities"]["add"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = text(capability).unwrap_or("(null)");
            if !BASELINE_CAPABILITIES.contains(&name) {
                self.add(Tier::T4, format!("capability {name} added"), at);
            }
        }
        if let Some(mount) = text(&context["procMount"])
            && !mount.is_empty()
            && mount != "Default"
        {
            self.add(Tier::T4, format!("procMount {mount}"), at);
        }
        self.security_context(context, &format!("{at}.securityContext"), "container");
        for (i, port) in items(&container["ports"]) {
            let port = &port["hostPort"];
            if !port.is_null() && port.as_f64() != Some(0.0) {
                self.add(Tier::T4, "hostPort", format!("{at}.ports[{i}]"));
            }
        }
        self.probe_hosts(container, at);
        self.secret_env(container, at);
    }

    /// The fields a pod and a container security context share.
    fn security_context(&mut self, context: &Value, at: &str, whose: &str) {
        if is_true(&context["windowsOptions"]["hostProcess"]) {
            self.add(Tier::T4, format!("Windows hostProcess {whose}"), at);
        }
        let selinux = &context["seLinuxOptions"];
        if let Some(kind) = text(&selinux["type"])
            && !kind.is_empty()
            && !SELINUX_TYPES.contains(&kind)
        {
            self.add(Tier::T4, format!("SELinux type {kind}"), at);
        }
        for field in ["user", "role"] {
            if text(&selinux[field]).is_some_and(|v| !v.is_empty()) {
                self.add(Tier::T4, format!("SELinux {field} set"), at);
            }
        }
        if let Some(kind) = text(&context["seccompProfile"]["type"])
            && !matches!(kind, "RuntimeDefault" | "Localhost")
        {
            self.add(Tier::T4, format!("seccomp profile {kind}"), at);
        }
        if let Some(kind) = text(&context["appArmorProfile"]["type"])
            && !matches!(kind, "RuntimeDefault" | "Localhost")
        {
            self.add(Tier::T4, format!("AppArmor profile {kind}"), at);
        }
    }

    /// Probes and lifecycle hooks that point at another host (the baseline's "Host Probes /
    /// Lifecycle Hooks": they let a pod reach hosts on the node's network).
    fn probe_hosts(&mut self, container: &Value, at: &str) {
        let handlers = [
            ("livenessProbe", &container["livenessProbe"]),
            ("readinessProbe", &container["readinessProbe"]),
            ("startupProbe", &container["startupProbe"]),
            ("lifecycle.postStart", &container["lifecycle"]["postStart"]),
            ("lifecycle.preStop", &container["lifecycle"]["preStop"]),
        ];
        for (name, handler) in handlers {
            for action in ["httpGet", "tcpSocket"] {
                if text(&handler[action]["host"]).is_some_and(|h| !h.is_empty()) {
                    let path = format!("{at}.{name}.{action}.host");
                    self.add(Tier::T4, format!("{name} on another host"), path);
                }
            }
        }
    }

    fn secret_env(&mut self, container: &Value, at: &str) {
        for (i, env) in items(&container["env"]) {
            if is_set(&env["valueFrom"]["secretKeyRef"]) {
                self.add(
                    Tier::T3,
                    "reads a Secret into env",
                    format!("{at}.env[{i}]"),
                );
            }
        }
        for (i, source) in items(&container["envFrom"]) {
            if is_set(&source["secretRef"]) {
                let path = format!("{at}.envFrom[{i}]");
                self.add(Tier::T3, "reads a Secret into env", path);
            }
        }
    }

    /// The deprecated AppArmor annotations, still honoured by the kubelet.
    fn annotations(&mut self, metadata: &Value, at: &str) {
        let Some(annotations) = metadata["annotations"].as_object() else {
            return;
        };
        for (key, value) in annotations {
            if let Some(container) = key.strip_prefix(APPARMOR_ANNOTATION) {
                let Some(profile) = text(value) else {
                    continue;
                };
                if profile != "runtime/default" && !profile.starts_with("localhost/") {
                    let what = format!("AppArmor profile {profile} for container {container}");
                    self.add(Tier::T4, what, format!("{at}metadata.annotations"));
                }
            }
        }
    }
}

/// The elements of a JSON array with their indexes (nothing for anything else).
fn items(value: &Value) -> impl Iterator<Item = (usize, &Value)> {
    value.as_array().into_iter().flatten().enumerate()
}

/// A boolean switched on. Anything but `false` or absent counts: the apiserver refuses a
/// non-boolean, and a value sluice cannot read must never rate lower.
fn is_true(value: &Value) -> bool {
    !matches!(value, Value::Null | Value::Bool(false))
}

/// A string field's value; a non-string reads as a value no allow-list holds.
fn text(value: &Value) -> Option<&str> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s),
        _ => Some("(not a string)"),
    }
}

/// Present and not null (a merge patch's null removes a field, which sets nothing).
fn is_set(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

/// `spec.template.` for `spec.template.spec`, empty for `spec`.
fn parent_of(at: &str) -> String {
    match at.rsplit_once('.') {
        Some((parent, _)) => format!("{parent}."),
        None => String::new(),
    }
}
