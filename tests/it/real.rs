//! The proxy core against the real kube-apiserver (`support::kas`): real kubectl → sluice →
//! kube-apiserver v1.36 with etcd. Each test works in a namespace of its own and asserts
//! what the apiserver did (read back directly as admin), and that every request sluice
//! forwarded has an event in the apiserver's own audit log under sluice's request id, with
//! the same verb and object as sluice recorded.
//!
//! Without `SLUICE_TEST_KUBE_APISERVER` each test says on one line that it did not run.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use serde_json::Value;

use crate::support::kas::{Kas, kas, with_stdin};
use crate::support::sluice::{Options, Sluice};
use crate::support::{Kubectl, kubectl};

mod body_tiers;

/// sluice in front of the real apiserver, an agent kubeconfig, and the test's namespace.
pub(super) struct Real {
    pub kas: &'static Kas,
    pub sluice: Sluice,
    pub kc: PathBuf,
    pub ns: String,
}

impl Real {
    pub async fn start(test: &str, options: Options) -> Option<Real> {
        let kas = kas(test)?;
        let ns = kas.namespace(&test.replace('_', "-")).await;
        let sluice = Sluice::start_with(kas, options).await;
        let kc = sluice.agent_kubeconfig();
        Some(Real {
            kas,
            sluice,
            kc,
            ns,
        })
    }

    /// `kubectl -n NS ARGS...` through sluice; panics unless it succeeds.
    pub async fn kubectl(&self, args: &[&str]) -> String {
        self.kubectl_stdin(args, "").await
    }

    pub async fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> String {
        let out = self.run(args, stdin).await;
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}\nsluice log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.sluice.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl -n NS ARGS...` through sluice, `stdin` fed to it unless empty; whatever it does.
    pub async fn run(&self, args: &[&str], stdin: &str) -> std::process::Output {
        let command = Kubectl::new(&self.kc).args(&["-n", &self.ns]).args(args);
        with_stdin(command, stdin).run().await
    }

    pub async fn exists(&self, object: &str) -> bool {
        self.kas.exists(&self.ns, object).await
    }

    pub async fn object(&self, object: &str) -> Value {
        self.kas.get_json(&self.ns, object).await
    }

    /// Every request sluice let through has the apiserver's own audit event under the same
    /// id, naming the same verb, resource, namespace, name and subresource; returns the
    /// apiserver's events by id.
    pub async fn assert_joined(&self) -> Vec<(Value, Value)> {
        let forwarded = self.forwarded_requests().await;
        assert!(!forwarded.is_empty(), "sluice forwarded nothing");
        let ids: Vec<String> = forwarded
            .iter()
            .map(|e| e["request_id"].as_str().unwrap().to_owned())
            .collect();
        let theirs = self.kas.audit_events_for(&ids).await;
        let mut pairs = Vec::new();
        for ours in forwarded {
            let id = ours["request_id"].as_str().unwrap();
            let Some(event) = theirs
                .iter()
                .find(|e| e["auditID"] == id && e["stage"] == "ResponseComplete")
            else {
                panic!("the apiserver has no audit event for sluice's {id}: {ours}");
            };
            assert_same_request(&ours, event);
            pairs.push((ours, event.clone()));
        }
        pairs
    }

    /// sluice's decision events for requests it forwarded, once each has completed.
    async fn forwarded_requests(&self) -> Vec<Value> {
        let forwarded = |events: &[Value]| -> Vec<Value> {
            events
                .iter()
                .filter(|e| e["stage"] == "decision" && e["decision"] == "allow")
                .cloned()
                .collect()
        };
        for _ in 0..200 {
            let events = self.sluice.audit_events();
            let decisions = forwarded(&events);
            let all_complete = decisions.iter().all(|d| {
                events
                    .iter()
                    .any(|e| e["stage"] == "complete" && e["request_id"] == d["request_id"])
            });
            if all_complete {
                return decisions;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("some forwarded requests never completed in sluice's audit log");
    }
}

/// sluice's RequestInfo and the apiserver's agree on what the request was.
fn assert_same_request(ours: &Value, theirs: &Value) {
    let context = || format!("sluice: {ours}\napiserver: {theirs}");
    assert_eq!(ours["verb"], theirs["verb"], "verb; {}", context());
    assert_eq!(
        theirs["user"]["username"],
        "sluice",
        "forwarded as sluice; {}",
        context()
    );
    let object = &theirs["objectRef"];
    for (field, their_field) in [
        ("resource", "resource"),
        ("namespace", "namespace"),
        ("subresource", "subresource"),
    ] {
        let their_value = object.get(their_field).cloned().unwrap_or(Value::Null);
        assert_eq!(ours[field], their_value, "{field}; {}", context());
    }
    // The apiserver names a created object from its body; sluice's request info, like the
    // apiserver's own RequestInfo, has no name for a create.
    let their_name = object.get("name").cloned().unwrap_or(Value::Null);
    if !(ours["verb"] == "create" && ours["name"].is_null()) {
        assert_eq!(ours["name"], their_name, "name; {}", context());
    }
    let group = object.get("apiGroup").cloned().unwrap_or(Value::Null);
    let ours_group = match &ours["api_group"] {
        Value::String(g) if g.is_empty() => Value::Null,
        other => other.clone(),
    };
    assert_eq!(ours_group, group, "api group; {}", context());
    let status = theirs["responseStatus"]["code"].as_u64();
    assert!(status.is_some(), "no response status; {}", context());
}

#[tokio::test]
async fn configmaps_secrets_deployments_and_pods_are_created_read_and_deleted() {
    let Some(t) = Real::start("real_crud", Options::default()).await else {
        return;
    };
    t.kubectl(&["create", "configmap", "cfg", "--from-literal=a=b"])
        .await;
    t.kubectl(&[
        "create",
        "secret",
        "generic",
        "creds",
        "--from-literal=password=hunter2",
    ])
    .await;
    t.kubectl(&["create", "deployment", "web", "--image=nginx:1.27"])
        .await;
    t.kubectl(&["run", "pod-a", "--image=nginx:1.27"]).await;

    assert_eq!(t.object("configmap/cfg").await["data"]["a"], "b");
    let password = base64::engine::general_purpose::STANDARD.encode("hunter2");
    assert_eq!(t.object("secret/creds").await["data"]["password"], password);
    let web = t.object("deployment/web").await;
    assert_eq!(
        web["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    assert_eq!(
        t.object("pod/pod-a").await["spec"]["containers"][0]["name"],
        "pod-a"
    );

    let listed = t
        .kubectl(&["get", "configmaps,secrets,deployments,pods", "-o", "name"])
        .await;
    for name in [
        "configmap/cfg",
        "secret/creds",
        "deployment.apps/web",
        "pod/pod-a",
    ] {
        assert!(listed.contains(name), "{name} not in {listed}");
    }
    assert_eq!(
        t.kubectl(&["get", "configmap", "cfg", "-o", "jsonpath={.data.a}"])
            .await,
        "b"
    );

    for object in [
        "configmap/cfg",
        "secret/creds",
        "deployment/web",
        "pod/pod-a",
    ] {
        t.kubectl(&["delete", object]).await;
        assert!(!t.exists(object).await, "{object} still exists");
    }
    t.assert_joined().await;
}

const APPLIED: &str = "apiVersion: v1
kind: ConfigMap
metadata: {name: applied}
data: {a: \"VALUE\"}
";

const SERVER_APPLIED: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: ssa}
spec:
  replicas: REPLICAS
  selector: {matchLabels: {app: ssa}}
  template:
    metadata: {labels: {app: ssa}}
    spec:
      containers: [{name: web, image: nginx:1.27}]
";

#[tokio::test]
async fn apply_client_side_and_server_side_create_then_update() {
    let Some(t) = Real::start("real_apply", Options::default()).await else {
        return;
    };
    for value in ["1", "2"] {
        t.kubectl_stdin(&["apply", "-f", "-"], &APPLIED.replace("VALUE", value))
            .await;
        let object = t.object("configmap/applied").await;
        assert_eq!(object["data"]["a"], value);
        let last =
            &object["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"];
        assert!(last.as_str().unwrap().contains(value), "{object}");
    }
    for replicas in ["1", "3"] {
        let manifest = SERVER_APPLIED.replace("REPLICAS", replicas);
        t.kubectl_stdin(&["apply", "--server-side", "-f", "-"], &manifest)
            .await;
        let object = t
            .kas
            .get_json(&t.ns, "deployment/ssa --show-managed-fields")
            .await;
        assert_eq!(object["spec"]["replicas"].to_string(), replicas);
        let managers = object["metadata"]["managedFields"].as_array().unwrap();
        assert!(
            managers
                .iter()
                .any(|m| m["manager"] == "kubectl" && m["operation"] == "Apply"),
            "server-side apply recorded its field manager: {managers:?}"
        );
    }
    let pairs = t.assert_joined().await;
    let applies: Vec<&Value> = pairs
        .iter()
        .filter(|(ours, _)| ours["verb"] == "patch" && ours["resource"] == "deployments")
        .map(|(_, theirs)| theirs)
        .collect();
    assert_eq!(
        applies.len(),
        2,
        "two server-side applies reached the apiserver"
    );
}

const TWO_CONTAINERS: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: patched}
spec:
  selector: {matchLabels: {app: patched}}
  template:
    metadata: {labels: {app: patched}}
    spec:
      containers:
        - {name: web, image: nginx:1.27}
        - {name: sidecar, image: busybox:1.36}
";

#[tokio::test]
async fn patches_of_all_three_types_change_the_object_as_the_apiserver_defines() {
    let Some(t) = Real::start("real_patch", Options::default()).await else {
        return;
    };
    t.kubectl(&["create", "configmap", "cfg", "--from-literal=a=1"])
        .await;
    t.kubectl(&[
        "patch",
        "configmap",
        "cfg",
        "--type=merge",
        "-p",
        r#"{"data":{"m":"2"}}"#,
    ])
    .await;
    t.kubectl(&[
        "patch",
        "configmap",
        "cfg",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/data/a","value":"3"}]"#,
    ])
    .await;
    let data = &t.object("configmap/cfg").await["data"];
    assert_eq!(
        (data["a"].as_str(), data["m"].as_str()),
        (Some("3"), Some("2"))
    );

    t.kubectl_stdin(&["create", "-f", "-"], TWO_CONTAINERS)
        .await;
    // A strategic merge patch merges containers by name: the sidecar stays (a merge patch
    // would have replaced the whole list).
    t.kubectl(&[
        "patch",
        "deployment",
        "patched",
        "--type=strategic",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.28"}]}}}}"#,
    ])
    .await;
    let spec = &t.object("deployment/patched").await["spec"]["template"]["spec"];
    let images: Vec<&str> = spec["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["image"].as_str().unwrap())
        .collect();
    assert_eq!(images, ["nginx:1.28", "busybox:1.36"]);
    t.assert_joined().await;
}

#[tokio::test]
async fn a_watch_through_sluice_receives_the_apiservers_event() {
    let Some(t) = Real::start("real_watch", Options::default()).await else {
        return;
    };
    t.kubectl(&["create", "configmap", "before", "--from-literal=x=y"])
        .await;
    let mut watch = Kubectl::new(&t.kc)
        .args(&["-n", &t.ns, "get", "configmaps", "-w", "-o", "name"])
        .spawn();
    // The list comes first; the watch resumes from its resourceVersion, so a change made
    // after this line is delivered however soon the watch request itself goes out.
    watch.line_containing("configmap/before").await;
    t.kas
        .admin(&["-n", &t.ns, "create", "configmap", "watched"])
        .await;
    let line = watch.line_containing("watched").await;
    assert_eq!(line, "configmap/watched");
    watch.kill().await;
    let pairs = t.assert_joined().await;
    assert!(
        pairs.iter().any(|(ours, _)| ours["verb"] == "watch"),
        "the watch went through sluice as a watch"
    );
}

#[tokio::test]
async fn a_list_of_520_objects_pages_through_sluice() {
    let Some(t) = Real::start("real_list", Options::default()).await else {
        return;
    };
    let items: Vec<String> = (0..520)
        .map(|i| {
            format!(
                "{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"cm-{i:03}\"}},\"data\":{{\"i\":\"{i}\"}}}}"
            )
        })
        .collect();
    let list = format!(
        "{{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[{}]}}",
        items.join(",")
    );
    t.kas
        .admin_stdin(&["-n", &t.ns, "create", "-f", "-"], &list)
        .await;
    let names = t.kubectl(&["get", "configmaps", "-o", "name"]).await;
    let listed: Vec<&str> = names
        .lines()
        .filter(|l| l.starts_with("configmap/cm-"))
        .collect();
    assert_eq!(listed.len(), 520);
    assert_eq!(
        (listed[0], listed[519]),
        ("configmap/cm-000", "configmap/cm-519")
    );
    // kubectl asks 500 at a time; the second page goes through sluice with the apiserver's
    // continue token.
    let pairs = t.assert_joined().await;
    let pages: Vec<&str> = pairs
        .iter()
        .filter(|(ours, _)| ours["verb"] == "list" && ours["resource"] == "configmaps")
        .map(|(_, theirs)| theirs["requestURI"].as_str().unwrap())
        .collect();
    assert_eq!(pages.len(), 2, "{pages:?}");
    assert!(pages[1].contains("continue="), "{pages:?}");
}

#[tokio::test]
async fn server_dry_run_create_and_delete_change_nothing_and_are_tier_zero() {
    let Some(t) = Real::start("real_dry_run", Options::default()).await else {
        return;
    };
    t.kubectl(&[
        "create",
        "configmap",
        "dry",
        "--dry-run=server",
        "--from-literal=a=b",
    ])
    .await;
    assert!(
        !t.exists("configmap/dry").await,
        "a dry run created nothing"
    );
    t.kubectl(&["create", "configmap", "kept"]).await;
    t.kubectl(&["delete", "configmap", "kept", "--dry-run=server"])
        .await;
    assert!(
        t.exists("configmap/kept").await,
        "a dry-run delete deleted nothing"
    );
    let pairs = t.assert_joined().await;
    let dry_create = pairs
        .iter()
        .find(|(ours, _)| {
            ours["verb"] == "create" && ours["path"].as_str().unwrap().contains("dryRun")
        })
        .map(|(ours, _)| ours)
        .expect("the dry-run create went through sluice");
    assert_eq!(dry_create["tier"], 0, "{dry_create}");
    // kubectl puts a delete's dryRun in its DeleteOptions body, which the apiserver reads
    // instead of the query: sluice reads it too, and a dry-run delete changes nothing.
    let dry_delete = pairs
        .iter()
        .find(|(ours, _)| ours["verb"] == "delete" && ours["name"] == "kept")
        .map(|(ours, _)| ours)
        .expect("the dry-run delete went through sluice");
    assert_eq!(
        (dry_delete["tier"].as_u64(), dry_delete["reason"].as_str()),
        (Some(0), Some("dry-run delete of configmaps")),
        "{dry_delete}"
    );
}

#[tokio::test]
async fn impersonation_mode_shows_the_agent_in_the_apiservers_audit_log_and_rbac() {
    let Some(kas) = kas("real_impersonation") else {
        return;
    };
    let upstream = format!(
        "upstream: {{server: \"{}\", ca: upstream-ca.crt, token_file: upstream-token, impersonate: true}}\n",
        kas.url()
    );
    let Some(t) = Real::start("real_impersonation", Options::with_upstream(upstream)).await else {
        return;
    };
    t.kubectl(&["create", "configmap", "as-agent"]).await;
    assert!(t.exists("configmap/as-agent").await);
    // The shipped ceiling lets the agents' group read Secrets but not write them; the
    // apiserver's RBAC now judges the agent, not sluice.
    let out = kubectl(
        &t.kc,
        &[
            "-n",
            &t.ns,
            "create",
            "secret",
            "generic",
            "nope",
            "--from-literal=a=b",
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{:?}", t.object("secret/nope").await);
    assert!(
        stderr.contains("is forbidden: User \"sluice:agent:claude-code\""),
        "{stderr}"
    );
    assert!(!t.exists("secret/nope").await);
    for (ours, theirs) in t.assert_joined().await {
        assert_eq!(theirs["user"]["username"], "sluice", "{ours}");
        assert_eq!(
            theirs["impersonatedUser"]["username"], "sluice:agent:claude-code",
            "{theirs}"
        );
        let groups = theirs["impersonatedUser"]["groups"].as_array().unwrap();
        assert!(groups.iter().any(|g| g == "sluice:agents"), "{theirs}");
    }
}
