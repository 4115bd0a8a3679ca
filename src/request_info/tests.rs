//! RequestInfo derivation, field by field, and what is refused.

use super::*;

fn parse(method: &str, uri: &str) -> Result<RequestInfo, RequestInfoError> {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    RequestInfo::parse(&method, &uri.parse().unwrap(), false)
}

/// (method, uri, [verb, group, version, namespace, resource, subresource, name])
type Row = (&'static str, &'static str, [&'static str; 7]);

/// Requests and the fields the apiserver derives for them.
const ROWS: &[Row] = &[
    (
        "GET",
        "/api/v1/namespaces/d/pods",
        ["list", "", "v1", "d", "pods", "", ""],
    ),
    (
        "GET",
        "/api/v1/namespaces/d/pods/p",
        ["get", "", "v1", "d", "pods", "", "p"],
    ),
    (
        "GET",
        "/api/v1/pods?watch=1",
        ["watch", "", "v1", "", "pods", "", ""],
    ),
    (
        "GET",
        "/api/v1/watch/namespaces/d/pods",
        ["watch", "", "v1", "d", "pods", "", ""],
    ),
    (
        "GET",
        "/api/v1/watch/pods/p",
        ["watch", "", "v1", "", "pods", "", "p"],
    ),
    (
        "GET",
        "/api/v1/proxy/namespaces/d/pods/p/x/y",
        ["proxy", "", "v1", "d", "pods", "", "p"],
    ),
    (
        "GET",
        "/api/v1/namespaces/d",
        ["get", "", "v1", "d", "namespaces", "", "d"],
    ),
    (
        "PUT",
        "/api/v1/namespaces/d/finalize",
        ["update", "", "v1", "d", "namespaces", "finalize", "d"],
    ),
    (
        "GET",
        "/api/v1/namespaces",
        ["list", "", "v1", "", "namespaces", "", ""],
    ),
    (
        "POST",
        "/apis/apps/v1/namespaces/d/deployments",
        ["create", "apps", "v1", "d", "deployments", "", ""],
    ),
    (
        "PATCH",
        "/apis/apps/v1/namespaces/d/deployments/w/scale",
        ["patch", "apps", "v1", "d", "deployments", "scale", "w"],
    ),
    (
        "DELETE",
        "/apis/apps/v1/namespaces/d/deployments",
        ["deletecollection", "apps", "v1", "d", "deployments", "", ""],
    ),
    (
        "DELETE",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/r",
        [
            "delete",
            "rbac.authorization.k8s.io",
            "v1",
            "",
            "clusterroles",
            "",
            "r",
        ],
    ),
    (
        "HEAD",
        "/api/v1/nodes/n",
        ["get", "", "v1", "", "nodes", "", "n"],
    ),
    (
        "GET",
        "/api/v1/namespaces/d/pods/p/log/extra",
        ["get", "", "v1", "d", "pods", "log", "p"],
    ),
    // A segment that starts with a dot is a name, not a dot segment.
    (
        "GET",
        "/api/v1/namespaces/d/services/s/proxy/.well-known/x",
        ["get", "", "v1", "d", "services", "proxy", "s"],
    ),
    (
        "GET",
        "/api/v1/namespaces/d/configmaps/.x..",
        ["get", "", "v1", "d", "configmaps", "", ".x.."],
    ),
    // The same after decoding: the general path's split must accept it too.
    (
        "GET",
        "/api/v1/namespaces/d/configmaps/%2Ex%2E%2E",
        ["get", "", "v1", "d", "configmaps", "", ".x.."],
    ),
];

#[test]
fn derives_fields_like_the_apiserver() {
    let rows = ROWS;
    for (method, uri, want) in rows {
        let info = parse(method, uri).unwrap();
        let opt = |o: Option<&str>| o.unwrap_or_default().to_owned();
        let got = [
            info.verb().to_owned(),
            info.api_group().to_owned(),
            info.api_version().to_owned(),
            opt(info.namespace()),
            opt(info.resource()),
            opt(info.subresource()),
            opt(info.name()),
        ];
        assert_eq!(got.map(|s| s), want.map(str::to_owned), "{method} {uri}");
        assert!(info.is_resource_request(), "{uri}");
    }
}

/// Watches and logs stream for as long as the client wants; they get their own upstream
/// connections (see `forward::Upstream`).
#[test]
fn watches_and_logs_are_long_lived() {
    for (method, uri, long_lived) in [
        ("GET", "/api/v1/namespaces/d/pods?watch=true", true),
        ("GET", "/api/v1/watch/namespaces/d/pods", true),
        ("GET", "/api/v1/namespaces/d/pods/p/log?follow=true", true),
        ("GET", "/api/v1/namespaces/d/pods", false),
        ("GET", "/api/v1/namespaces/d/pods/p", false),
        ("GET", "/api/v1/namespaces/d/pods?watch=false", false),
        ("POST", "/api/v1/namespaces/d/pods/p/exec", false),
        ("GET", "/version", false),
        // An extension method named like the verb is no watch: only a kube watch streams.
        ("WATCH", "/healthz", false),
    ] {
        let info = parse(method, uri).unwrap();
        assert_eq!(info.is_long_lived(), long_lived, "{method} {uri}");
    }
}

#[test]
fn short_or_foreign_paths_are_non_resource() {
    for uri in [
        "/",
        "/api",
        "/api/v1",
        "/apis",
        "/apis/apps",
        "/apis/apps/v1",
        "/version",
        "/openapi/v3/apis/apps/v1",
        "/healthz/etcd",
    ] {
        let info = parse("GET", uri).unwrap();
        assert!(!info.is_resource_request(), "{uri}");
        assert_eq!(info.verb(), "get");
        assert_eq!(info.resource(), None);
    }
    assert_eq!(parse("POST", "/api").unwrap().verb(), "post");
    assert_eq!(parse("PROPFIND", "/api").unwrap().verb(), "propfind");
}

#[test]
fn dry_run_only_for_create_update_patch() {
    assert!(
        parse("POST", "/api/v1/namespaces/d/pods?dryRun=All")
            .unwrap()
            .dry_run
    );
    assert!(
        parse("PATCH", "/api/v1/namespaces/d/pods/p?dryRun=All")
            .unwrap()
            .dry_run
    );
    assert!(
        !parse("DELETE", "/api/v1/namespaces/d/pods/p?dryRun=All")
            .unwrap()
            .dry_run
    );
    assert!(
        !parse("GET", "/api/v1/namespaces/d/pods?dryRun=All")
            .unwrap()
            .dry_run
    );
    assert!(
        !parse("POST", "/api/v1/namespaces/d/pods?dryRun=None")
            .unwrap()
            .dry_run
    );
}

#[test]
fn refuses_ambiguous_requests() {
    for (method, uri) in [
        ("GET", "/API/v1/namespaces/d/secrets"),
        ("GET", "/Apis/apps/v1/deployments"),
        ("GET", "/api/v1/namespaces/d/Secrets"),
        ("GET", "/api/V1/pods"),
        ("GET", "/api/v1/namespaces/KUBE-SYSTEM/pods"),
        ("GET", "/api/v1/namespaces/d/pods/p/EXEC"),
        ("OPTIONS", "/api/v1/pods"),
        ("GET", "/api/v1/watch"),
        ("GET", "/api/v1/proxy"),
    ] {
        let err = parse(method, uri).unwrap_err();
        assert!(
            err.0.starts_with("sluice: ") && err.0.ends_with("refused"),
            "{uri}: {err}"
        );
    }
}

#[test]
fn upgrade_is_kept() {
    let uri = "/api/v1/namespaces/d/pods/p/exec?command=sh"
        .parse()
        .unwrap();
    let info = RequestInfo::parse(&Method::GET, &uri, true).unwrap();
    assert!(info.upgrade);
    assert_eq!(info.subresource(), Some("exec"));
}

/// Long paths (a 63-byte namespace, a 253-byte name, a decoded one) read back field for
/// field; "/" is a non-resource request.
#[test]
fn long_paths_and_the_root() {
    let namespace = "n".repeat(63);
    let name = "x".repeat(253);
    for (uri, decoded) in [
        (
            format!("/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"),
            false,
        ),
        (
            format!("/apis/apps/v1/namespaces/{namespace}/deployments/{name}%41/scale/"),
            true,
        ),
    ] {
        let info = parse("PATCH", &uri).unwrap();
        assert!(info.path.len() > 330, "{uri}");
        assert_eq!(info.verb(), "patch");
        assert_eq!(info.api_group(), "apps");
        assert_eq!(info.namespace(), Some(namespace.as_str()));
        assert_eq!(info.resource(), Some("deployments"));
        let expected = if decoded {
            format!("{name}A")
        } else {
            name.clone()
        };
        assert_eq!(info.name(), Some(expected.as_str()));
        assert_eq!(info.subresource(), Some("scale"));
    }
    let root = RequestInfo::parse(&Method::GET, &Uri::from_static("/"), false).unwrap();
    assert_eq!(
        (&*root.path, root.verb(), root.is_resource_request()),
        ("/", "get", false)
    );
}

/// Every verb reads back from its own name, and the name is what the verb string says.
#[test]
fn each_verb_reads_back_from_its_name() {
    for verb in Verb::ALL {
        assert_eq!(Verb::from_name(verb.as_str()), Some(verb));
    }
    assert_eq!(Verb::from_name("GET"), None);
    assert_eq!(Verb::from_name("post"), None);
    let cases = [
        (Method::GET, "/api/v1/namespaces/a/pods/p", Some(Verb::Get)),
        (Method::GET, "/api/v1/pods?watch=true", Some(Verb::Watch)),
        (Method::GET, "/api/v1/watch/pods", Some(Verb::Watch)),
        (Method::GET, "/api/v1/proxy/nodes/n", Some(Verb::Proxy)),
        (
            Method::DELETE,
            "/api/v1/namespaces/a/pods",
            Some(Verb::DeleteCollection),
        ),
        (Method::POST, "/version", None),
    ];
    for (method, target, verb) in cases {
        let info = RequestInfo::parse(&method, &target.parse().unwrap(), false).unwrap();
        assert_eq!(info.kube_verb(), verb, "{method} {target}");
        if let Some(verb) = verb {
            assert_eq!(info.verb(), verb.as_str(), "{method} {target}");
        }
    }
}
