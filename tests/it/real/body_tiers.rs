//! Tiers that read the body, end to end: real kubectl through sluice to the real apiserver.
//! An agent allowed T0–T2 in its namespace (T3 and T4 denied) tries to smuggle break-glass
//! settings and Secret reads through ordinary creates, applies and patches, in each
//! encoding kubectl uses; each attempt is refused with the field named, and the apiserver
//! never sees the object. A plain workload still goes through.

use std::process::Output;

use super::Real;
use crate::support::sluice::Options;
use crate::support::{Kubectl, kubectl};

const T2_ONLY: &str = "default: deny
agents:
  claude-code:
    rules:
      - namespaces: [\"*\"]
        tiers: {0: allow, 1: allow, 2: allow, 3: deny, 4: deny}
";

async fn start(test: &str) -> Option<Real> {
    Real::start(test, Options::with_policy(T2_ONLY)).await
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

impl Real {
    /// `kubectl -n NS ARGS...` through sluice, expected to be refused by sluice's policy for
    /// `reason` at `tier`; returns stderr.
    async fn refused(&self, args: &[&str], stdin: &str, tier: u8, reason: &str) -> String {
        let out = self.run(args, stdin).await;
        let err = stderr(&out);
        assert!(!out.status.success(), "kubectl {args:?} was let through");
        assert!(
            err.contains(&format!("tier {tier} ({reason})")),
            "kubectl {args:?}: expected tier {tier} ({reason}), got: {err}\n{}",
            self.sluice.log()
        );
        let event = self
            .sluice
            .wait_for_event("the body-tier decision", |e| {
                e["stage"] == "decision" && e["reason"] == reason
            })
            .await;
        assert_eq!(
            (event["tier"].as_u64(), event["decision"].as_str()),
            (Some(tier.into()), Some("deny"))
        );
        err
    }
}

const HOSTPATH_DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: rooted}
spec:
  selector: {matchLabels: {app: rooted}}
  template:
    metadata: {labels: {app: rooted}}
    spec:
      containers: [{name: app, image: nginx:1.27, volumeMounts: [{name: root, mountPath: /host}]}]
      volumes: [{name: root, hostPath: {path: /}}]
";

const PRIVILEGED_CRONJOB: &str = "apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: \"0 3 * * *\"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
            - {name: ok, image: busybox:1.36}
            - {name: root, image: busybox:1.36, securityContext: {privileged: true}}
";

const SECRET_POD: &str = "apiVersion: v1
kind: Pod
metadata: {name: reader}
spec:
  containers: [{name: app, image: busybox:1.36, volumeMounts: [{name: s, mountPath: /s}]}]
  volumes: [{name: s, secret: {secretName: db}}]
";

#[tokio::test]
async fn privileged_pods_and_workloads_are_refused_in_every_encoding() {
    let Some(t) = start("real_body_refused").await else {
        return;
    };
    // kubectl run sends the pod in protobuf.
    t.refused(
        &["run", "root", "--image=busybox:1.36", "--privileged"],
        "",
        4,
        "privileged container in pods (spec.containers[0])",
    )
    .await;
    assert!(!t.exists("pod/root").await);

    t.refused(
        &["apply", "-f", "-"],
        HOSTPATH_DEPLOYMENT,
        4,
        "hostPath volume in deployments (spec.template.spec.volumes[0])",
    )
    .await;
    assert!(!t.exists("deployment/rooted").await);

    t.refused(
        &["apply", "--server-side", "-f", "-"],
        PRIVILEGED_CRONJOB,
        4,
        "privileged container in cronjobs (spec.jobTemplate.spec.template.spec.containers[1])",
    )
    .await;
    assert!(!t.exists("cronjob/nightly").await);

    t.refused(
        &["create", "-f", "-"],
        SECRET_POD,
        3,
        "secret volume in pods (spec.volumes[0])",
    )
    .await;
    assert!(!t.exists("pod/reader").await);
}

#[tokio::test]
async fn a_patch_adding_host_network_is_refused_in_each_patch_type() {
    let Some(t) = start("real_body_patch").await else {
        return;
    };
    t.kubectl(&["create", "deployment", "web", "--image=nginx:1.27"])
        .await;
    let reason = "hostNetwork in deployments (spec.template.spec.hostNetwork)";
    let merge = r#"{"spec":{"template":{"spec":{"hostNetwork":true}}}}"#;
    for kind in ["merge", "strategic"] {
        let args = ["patch", "deployment", "web", "--type", kind, "-p", merge];
        t.refused(&args, "", 4, reason).await;
    }
    let ops = r#"[{"op":"add","path":"/spec/template/spec/hostNetwork","value":true}]"#;
    t.refused(
        &["patch", "deployment", "web", "--type=json", "-p", ops],
        "",
        4,
        reason,
    )
    .await;
    let spec = &t.object("deployment/web").await["spec"]["template"]["spec"];
    assert!(
        spec["hostNetwork"].is_null(),
        "the apiserver's object is unchanged: {spec}"
    );
    // A patch that changes nothing risky still goes through.
    t.kubectl(&[
        "patch",
        "deployment",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":2}}"#,
    ])
    .await;
    assert_eq!(t.object("deployment/web").await["spec"]["replicas"], 2);
}

#[tokio::test]
async fn a_plain_workload_is_still_created_in_json_yaml_and_protobuf() {
    let Some(t) = start("real_body_plain").await else {
        return;
    };
    // Typed commands (protobuf), a YAML manifest, and server-side apply.
    t.kubectl(&["create", "deployment", "plain", "--image=nginx:1.27"])
        .await;
    t.kubectl(&["run", "plain-pod", "--image=nginx:1.27"]).await;
    let manifest = HOSTPATH_DEPLOYMENT
        .replace("rooted", "safe")
        .replace(
            "volumeMounts: [{name: root, mountPath: /host}]",
            "ports: [{containerPort: 80}]",
        )
        .replace(
            "volumes: [{name: root, hostPath: {path: /}}]",
            "securityContext: {runAsNonRoot: true}",
        );
    t.kubectl_stdin(&["apply", "-f", "-"], &manifest).await;
    t.kubectl_stdin(
        &["apply", "--server-side", "-f", "-"],
        &manifest.replace("safe", "ssa"),
    )
    .await;
    for object in [
        "deployment/plain",
        "pod/plain-pod",
        "deployment/safe",
        "deployment/ssa",
    ] {
        assert!(t.exists(object).await, "{object} was not created");
    }
    let out = kubectl(&t.kc, &["-n", &t.ns, "get", "deployments", "-o", "name"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    t.assert_joined().await;
}

const ESCALATE_T4: &str = "default: deny
agents:
  claude-code:
    rules:
      - namespaces: [\"*\"]
        tiers: {0: allow, 1: allow, 2: allow, 3: deny, 4: escalate}
";

/// A body tier that escalates: the approver sees the field that raised it, and once they
/// approve, the body sluice read (twice: to rate it, then to hold it) reaches the apiserver
/// intact.
#[tokio::test]
async fn the_approver_sees_the_field_and_an_approved_pod_arrives_intact() {
    use crate::approvals::admin::{ALICE, Admin};
    let options = Options {
        policy: ESCALATE_T4.into(),
        approvers: vec![("alice".into(), ALICE.into())],
        ..Options::default()
    };
    let Some(t) = Real::start("real_body_escalate", options).await else {
        return;
    };
    let admin = Admin::new(&t.sluice);
    let create = Kubectl::new(&t.kc)
        .args(&[
            "-n",
            &t.ns,
            "run",
            "debug",
            "--image=busybox:1.36",
            "--privileged",
        ])
        .run();
    let decide = async {
        let held = admin.wait_for_pending(1).await.remove(0);
        assert_eq!(held["tier"], 4, "{held}");
        assert_eq!(
            held["reason"], "privileged container in pods (spec.containers[0])",
            "{held}"
        );
        let (status, body) = admin.post(&held, "approve", ALICE, "").await;
        assert_eq!(status, http::StatusCode::OK, "{body}");
    };
    let (out, ()) = tokio::join!(create, decide);
    assert!(out.status.success(), "{}", stderr(&out));
    let pod = t.object("pod/debug").await;
    assert_eq!(
        pod["spec"]["containers"][0]["securityContext"]["privileged"], true,
        "the approved body reached the apiserver as sent"
    );
}
