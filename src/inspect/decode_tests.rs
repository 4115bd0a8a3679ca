//! Table tests of how bodies are read: each patch type, bodies sluice cannot read, YAML as
//! the apiserver reads it, and a delete's options.

use serde_json::json;

use super::*;

#[test]
fn each_patch_type_is_judged_by_what_it_sets() {
    let privileged = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "web", "securityContext": {"privileged": true}}
    ]}}}});
    let body = serde_json::to_vec(&privileged).unwrap();
    for content_type in [
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
    ] {
        let kind = BodyKind::of(true, content_type).unwrap();
        let rated = judge(Workload::Template, "deployments", kind, &body)
            .unwrap()
            .unwrap();
        assert_eq!(rated.tier, Tier::T4, "{content_type}");
    }
    let apply = "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      hostNetwork: true\n";
    let kind = BodyKind::of(true, "application/apply-patch+yaml").unwrap();
    let rated = judge(Workload::Template, "deployments", kind, apply.as_bytes())
        .unwrap()
        .unwrap();
    assert_eq!(
        rated.reason,
        "hostNetwork in deployments (spec.template.spec.hostNetwork)"
    );

    let kind = BodyKind::of(true, "application/json-patch+json").unwrap();
    let ops = br#"[{"op":"add","path":"/spec/template/spec/containers/2/securityContext","value":{"privileged":true}}]"#;
    let rated = judge(Workload::Template, "deployments", kind, ops)
        .unwrap()
        .unwrap();
    assert_eq!(
        rated.reason,
        "privileged container in deployments (spec.template.spec.containers[2])"
    );
    let moved = br#"[{"op":"copy","from":"/metadata/labels","path":"/spec/template/spec/securityContext"}]"#;
    let rated = judge(Workload::Template, "deployments", kind, moved)
        .unwrap()
        .unwrap();
    assert_eq!(
        (rated.tier, rated.reason.as_str()),
        (Tier::T4, "patch sluice cannot read")
    );
    // A patch that sets nothing risky, or removes a risky field, raises nothing.
    let harmless = br#"{"spec":{"replicas":3,"template":{"spec":{"hostNetwork":null}}}}"#;
    let kind = BodyKind::of(true, "application/merge-patch+json").unwrap();
    assert_eq!(
        judge(Workload::Template, "deployments", kind, harmless).unwrap(),
        None
    );
}

#[test]
fn bodies_that_cannot_be_read_are_refused_not_rated_lower() {
    let json_kind = BodyKind::Object(Encoding::Json);
    for (kind, body) in [
        (json_kind, &b"{not json"[..]),
        (BodyKind::Object(Encoding::Yaml), b"a: [unclosed"),
        (
            BodyKind::Object(Encoding::Yaml),
            b"spec: {}\nspec: {hostNetwork: true}\n",
        ),
        (BodyKind::Object(Encoding::Protobuf), b"not protobuf"),
        (BodyKind::Object(Encoding::Protobuf), b"k8s\0\xff\xff\xff"),
        (BodyKind::JsonPatch, br#"{"op":"add"}"#),
    ] {
        let outcome = judge(Workload::Pod, "pods", kind, body);
        assert!(
            matches!(outcome, Err(BodyError::Undecodable(_))),
            "{kind:?} {body:?}: {outcome:?}"
        );
    }
    for (is_patch, content_type) in [
        (false, "application/cbor"),
        (false, "text/plain"),
        (true, "application/json"),
        (true, "application/apply-patch+cbor"),
    ] {
        assert!(matches!(
            BodyKind::of(is_patch, content_type),
            Err(BodyError::UnsupportedType(_))
        ));
    }
    assert_eq!(
        BodyKind::of(false, "application/json; charset=utf-8").unwrap(),
        BodyKind::Object(Encoding::Json)
    );
}

#[test]
fn yaml_merge_keys_are_expanded_as_the_apiserver_does() {
    let yaml = "base: &risky {privileged: true}\nspec:\n  containers:\n    - name: a\n      securityContext:\n        <<: *risky\n";
    let rated = judge(
        Workload::Pod,
        "pods",
        BodyKind::Object(Encoding::Yaml),
        yaml.as_bytes(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        rated.reason,
        "privileged container in pods (spec.containers[0])"
    );
}

#[test]
fn a_delete_is_a_dry_run_only_when_its_options_say_exactly_all() {
    let json = "application/json";
    assert_eq!(
        delete_dry_run(br#"{"kind":"DeleteOptions","dryRun":["All"]}"#, json),
        Some(true)
    );
    assert_eq!(
        delete_dry_run(br#"{"propagationPolicy":"Background"}"#, json),
        Some(false)
    );
    assert_eq!(
        delete_dry_run(br#"{"dryRun":["All","All"]}"#, json),
        Some(false)
    );
    assert_eq!(delete_dry_run(br#"{"dryRun":"All"}"#, json), None);
    assert_eq!(delete_dry_run(b"{not json", json), None);
    assert_eq!(
        delete_dry_run(b"dryRun: [All]\n", "application/yaml"),
        Some(true)
    );
    let options = k8s_pb::apimachinery::pkg::apis::meta::v1::DeleteOptions {
        dry_run: vec!["All".into()],
        ..Default::default()
    };
    let body = super::protobuf_tests::envelope("v1", "DeleteOptions", &options);
    assert_eq!(
        delete_dry_run(&body, "application/vnd.kubernetes.protobuf"),
        Some(true)
    );
}
