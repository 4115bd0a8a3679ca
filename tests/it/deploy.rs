//! deploy/ parses into k8s-openapi types and says what the issue promises: names, probes,
//! security context, the audit volume, the projected token, Service ports, NetworkPolicy,
//! RBAC for both modes, and a ConfigMap sluice itself accepts.
//!
//! With `kubectl` on the PATH the manifests are rendered by `kubectl kustomize deploy/`
//! (what `kubectl apply -k` applies); without it, the files kustomization.yaml lists are read.

use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn parse_docs(text: &str, origin: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .unwrap_or_else(|e| panic!("{origin}: {e}"))
        .into_iter()
        .filter(|v| !v.is_null())
        .collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `resources:` of a kustomization, read without kubectl.
fn resources(dir: &Path) -> Vec<String> {
    let k = &parse_docs(&read(&dir.join("kustomization.yaml")), "kustomization.yaml")[0];
    k["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect()
}

fn objects_in(dir: &Path) -> Vec<Value> {
    let rendered = Command::new("kubectl").arg("kustomize").arg(dir).output();
    match rendered {
        Ok(out) => {
            assert!(
                out.status.success(),
                "kubectl kustomize {}: {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            parse_docs(&String::from_utf8(out.stdout).unwrap(), "kubectl kustomize")
        }
        Err(_) => {
            eprintln!("kubectl not found: reading the files kustomization.yaml lists");
            resources(dir)
                .iter()
                .flat_map(|r| parse_docs(&read(&dir.join(r)), r))
                .collect()
        }
    }
}

fn objects() -> Vec<Value> {
    objects_in(&deploy_dir())
}

/// The one object of `kind` named `name`, as a typed k8s-openapi value.
fn get<T: DeserializeOwned>(objects: &[Value], kind: &str, name: &str) -> T {
    let found: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "{kind}/{name} should appear exactly once");
    serde_json::from_value(found[0].clone()).unwrap_or_else(|e| panic!("{kind}/{name}: {e}"))
}

#[test]
fn every_object_is_in_namespace_sluice_or_cluster_scoped() {
    let objects = objects();
    let _: Namespace = get(&objects, "Namespace", "sluice");
    let sa: ServiceAccount = get(&objects, "ServiceAccount", "sluice");
    assert_eq!(sa.automount_service_account_token, Some(false));
    for o in &objects {
        let kind = o["kind"].as_str().unwrap();
        let namespaced = !matches!(kind, "Namespace" | "ClusterRole" | "ClusterRoleBinding");
        if namespaced {
            assert_eq!(o["metadata"]["namespace"], "sluice", "{kind}");
        }
    }
}

#[test]
fn deployment_is_locked_down_and_probed_on_the_admin_port() {
    let d: Deployment = get(&objects(), "Deployment", "sluice");
    let spec = d.spec.unwrap();
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(spec.strategy.unwrap().type_.as_deref(), Some("Recreate"));
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("sluice"));
    assert_eq!(pod.automount_service_account_token, Some(false));
    let psc = pod.security_context.unwrap();
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(psc.run_as_user, Some(65532));
    assert_eq!(psc.seccomp_profile.unwrap().type_, "RuntimeDefault");

    let c = &pod.containers[0];
    let sc = c.security_context.clone().unwrap();
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.capabilities.unwrap().drop, Some(vec!["ALL".to_owned()]));
    let resources = c.resources.clone().unwrap();
    for key in ["cpu", "memory"] {
        assert!(resources.requests.as_ref().unwrap().contains_key(key));
        assert!(resources.limits.as_ref().unwrap().contains_key(key));
    }
    let ports = c.ports.clone().unwrap();
    let port = |name: &str| {
        ports
            .iter()
            .find(|p| p.name.as_deref() == Some(name))
            .map(|p| p.container_port)
    };
    assert_eq!(port("agents"), Some(8443));
    assert_eq!(port("admin"), Some(9443));
    for (probe, path) in [
        (c.liveness_probe.clone(), "/healthz"),
        (c.readiness_probe.clone(), "/readyz"),
    ] {
        let get = probe.unwrap().http_get.unwrap();
        assert_eq!(get.path.as_deref(), Some(path));
        assert_eq!(get.port, IntOrString::String("admin".into()));
        assert_eq!(get.scheme.as_deref(), Some("HTTPS"));
    }
}

#[test]
fn deployment_mounts_audit_pvc_config_and_projected_token() {
    let objects = objects();
    let d: Deployment = get(&objects, "Deployment", "sluice");
    let pod = d.spec.unwrap().template.spec.unwrap();
    let mounts = pod.containers[0].volume_mounts.clone().unwrap();
    let volumes = pod.volumes.unwrap();
    let volume_at = |path: &str| {
        let m = mounts.iter().find(|m| m.mount_path == path).unwrap();
        volumes.iter().find(|v| v.name == m.name).unwrap().clone()
    };
    let audit = volume_at("/var/lib/sluice");
    let claim = audit.persistent_volume_claim.unwrap().claim_name;
    let _: k8s_openapi::api::core::v1::PersistentVolumeClaim =
        get(&objects, "PersistentVolumeClaim", &claim);
    assert_eq!(volume_at("/etc/sluice").config_map.unwrap().name, "sluice");
    assert_eq!(
        volume_at("/etc/sluice/secret")
            .secret
            .unwrap()
            .secret_name
            .as_deref(),
        Some("sluice")
    );
    let token = volume_at("/var/run/secrets/kubernetes.io/serviceaccount");
    let sources = token.projected.unwrap().sources.unwrap();
    let sat = sources
        .iter()
        .find_map(|s| s.service_account_token.clone())
        .unwrap();
    assert_eq!(sat.path, "token");
    assert!(sat.expiration_seconds.unwrap() >= 600);
    let ca = sources.iter().find_map(|s| s.config_map.clone()).unwrap();
    assert_eq!(ca.name, "kube-root-ca.crt");
    assert!(sources.iter().any(|s| s.downward_api.is_some()));
}

#[test]
fn service_maps_443_to_agents_and_exposes_admin() {
    let s: Service = get(&objects(), "Service", "sluice");
    let ports = s.spec.unwrap().ports.unwrap();
    let find = |name: &str| {
        ports
            .iter()
            .find(|p| p.name.as_deref() == Some(name))
            .unwrap()
    };
    assert_eq!(find("agents").port, 443);
    assert_eq!(
        find("agents").target_port,
        Some(IntOrString::String("agents".into()))
    );
    assert_eq!(find("admin").port, 9443);
}

#[test]
fn network_policy_admits_agents_and_operators_only() {
    let np: NetworkPolicy = get(&objects(), "NetworkPolicy", "sluice");
    let spec = np.spec.unwrap();
    let ingress = spec.ingress.unwrap();
    let rule_for = |port: i32| {
        ingress
            .iter()
            .find(|r| r.ports.as_ref().unwrap()[0].port == Some(IntOrString::Int(port)))
            .unwrap()
            .from
            .clone()
            .unwrap()
    };
    let agents = &rule_for(8443)[0];
    assert_eq!(
        agents
            .pod_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap()["sluice.dev/agent"],
        "true"
    );
    let ops = &rule_for(9443)[0];
    assert!(ops.pod_selector.is_none());
    assert_eq!(
        ops.namespace_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap()["sluice.dev/operator"],
        "true"
    );
    let egress = spec.egress.unwrap();
    let egress_ports: Vec<_> = egress
        .iter()
        .flat_map(|r| r.ports.clone().unwrap())
        .filter_map(|p| p.port)
        .collect();
    for port in [53, 443, 6443] {
        assert!(egress_ports.contains(&IntOrString::Int(port)), "{port}");
    }
}

#[test]
fn configmap_holds_a_config_and_policy_sluice_accepts() {
    let cm: ConfigMap = get(&objects(), "ConfigMap", "sluice");
    let data = cm.data.unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in &data {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let config = sluice::config::Config::load(&dir.path().join("sluice.yaml")).unwrap();
    assert_eq!(config.listen.to_string(), "0.0.0.0:8443");
    assert_eq!(config.admin.listen.to_string(), "0.0.0.0:9443");
    assert!(config.admin.tls, "probes use HTTPS");
    assert!(config.audit.path.starts_with("/var/lib/sluice"));
    assert!(config.credentials.starts_with("/etc/sluice/secret"));
    assert!(config.tls.cert.starts_with("/etc/sluice/secret"));
    assert_eq!(config.upstream.target, sluice::config::Upstream::InCluster);
    sluice::policy::Policy::load(&config.policy).unwrap();
}

#[test]
fn secret_template_has_every_file_the_config_names_and_is_not_applied() {
    let dir = deploy_dir();
    assert!(!resources(&dir).iter().any(|r| r.contains("secret")));
    let docs = parse_docs(
        &read(&dir.join("secret.example.yaml")),
        "secret.example.yaml",
    );
    let secret: Secret = get(&docs, "Secret", "sluice");
    let data = secret.string_data.unwrap();
    for key in ["credentials.yaml", "tls.crt", "tls.key"] {
        assert!(data.contains_key(key), "{key}");
    }
}

#[test]
fn plain_mode_binds_the_ceiling_to_sluices_service_account() {
    let objects = objects();
    let _: ClusterRole = get(&objects, "ClusterRole", "sluice-ceiling");
    let b: ClusterRoleBinding = get(&objects, "ClusterRoleBinding", "sluice-ceiling");
    assert_eq!(b.role_ref.name, "sluice-ceiling");
    let s = &b.subjects.unwrap()[0];
    assert_eq!(
        (s.kind.as_str(), s.name.as_str(), s.namespace.as_deref()),
        ("ServiceAccount", "sluice", Some("sluice"))
    );
    assert!(
        !objects
            .iter()
            .any(|o| o["metadata"]["name"] == "sluice-impersonate")
    );
}

#[test]
fn impersonate_mode_may_only_impersonate_sluice_agents() {
    let dir = deploy_dir().join("impersonate");
    let docs = parse_docs(&read(&dir.join("rbac.yaml")), "impersonate/rbac.yaml");
    let role: ClusterRole = get(&docs, "ClusterRole", "sluice-impersonate");
    for rule in role.rules.unwrap() {
        assert_eq!(rule.verbs, vec!["impersonate".to_owned()]);
        let names = rule.resource_names.expect("resourceNames: never any user");
        match rule.resources.unwrap()[0].as_str() {
            "users" => assert!(names.iter().all(|n| n.starts_with("sluice:agent:"))),
            "groups" => assert_eq!(names, vec!["sluice:agents".to_owned()]),
            other => panic!("unexpected resource {other}"),
        }
    }
    let agents: ClusterRoleBinding = get(&docs, "ClusterRoleBinding", "sluice-agents-ceiling");
    assert_eq!(agents.subjects.unwrap()[0].name, "sluice:agents");

    // Rendered as a component, sluice's own ServiceAccount loses the ceiling.
    if Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok()
    {
        let overlay = tempfile::tempdir().unwrap();
        // Kustomize wants relative paths: climb from the overlay to / and descend.
        let up = "../".repeat(overlay.path().components().count() - 1);
        let base = format!(
            "{up}{}",
            deploy_dir().display().to_string().trim_start_matches('/')
        );
        std::fs::write(
            overlay.path().join("kustomization.yaml"),
            format!(
                "resources: [{b}]\ncomponents: [{b}/impersonate]\n",
                b = base
            ),
        )
        .unwrap();
        let out = Command::new("kubectl")
            .args(["kustomize", "--load-restrictor", "LoadRestrictionsNone"])
            .arg(overlay.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let objects = parse_docs(&String::from_utf8(out.stdout).unwrap(), "overlay");
        let names: Vec<&str> = objects
            .iter()
            .filter(|o| o["kind"] == "ClusterRoleBinding")
            .map(|o| o["metadata"]["name"].as_str().unwrap())
            .collect();
        assert!(!names.contains(&"sluice-ceiling"), "{names:?}");
        assert!(names.contains(&"sluice-impersonate"), "{names:?}");
    }
}

#[test]
fn dockerfile_runs_serve_as_nonroot_on_distroless() {
    let text = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile"));
    assert!(text.contains("FROM rust:1-bookworm AS build"));
    assert!(text.contains("cargo build --release --locked"));
    assert!(text.contains("FROM gcr.io/distroless/cc-debian12:nonroot"));
    assert!(
        text.contains(r#"ENTRYPOINT ["/sluice", "serve", "--config", "/etc/sluice/sluice.yaml"]"#)
    );
}

/// What `kubectl apply -k deploy/` would do, asked of the real apiserver: a server-side dry
/// run, which runs its validation and admission on every object without storing any.
#[tokio::test]
async fn the_real_apiserver_accepts_every_object_of_deploy_in_a_server_dry_run() {
    let Some(kas) = crate::support::kas::kas("deploy_server_dry_run") else {
        return;
    };
    // Namespaced objects need their namespace to exist, even in a dry run.
    kas.admin(&["create", "namespace", "sluice"]).await;
    let dir = deploy_dir();
    let out = kas
        .admin(&["apply", "--dry-run=server", "-k", dir.to_str().unwrap()])
        .await;
    for object in objects() {
        let kind = object["kind"].as_str().unwrap().to_lowercase();
        let name = object["metadata"]["name"].as_str().unwrap();
        assert!(
            out.lines().any(|l| l.starts_with(&kind)
                && l.contains(&format!("/{name} "))
                && l.ends_with("(server dry run)")),
            "{kind}/{name} not accepted:\n{out}"
        );
    }
    assert!(
        !kas.exists("sluice", "deployment/sluice").await,
        "a dry run stores nothing"
    );
}
