//! Discovery as kubectl 1.32 uses it: /version, /api, /apis, /api/v1, and the
//! OpenAPI v3 documents kubectl reads to learn that the server validates fields
//! itself (so `kubectl create`/`apply` send `fieldValidation=Strict` and skip
//! client-side schema validation). Like kube-apiserver 1.32, /api and /apis
//! answer in the aggregated form (apidiscovery.k8s.io/v2) when the client asks
//! for it, so kubectl learns every resource from those two requests.

use http::{Method, Response, StatusCode};
use serde_json::{Value, json};

use super::apiserver::Req;
use super::body::{Body, json_response, page_not_found};
use super::store::RESOURCES;

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Pods' subresources: (name, kind, verbs).
const POD_SUBRESOURCES: [(&str, &str, &[&str]); 5] = [
    ("log", "Pod", &["get"]),
    ("exec", "PodExecOptions", &["create", "get"]),
    ("attach", "PodAttachOptions", &["create", "get"]),
    ("portforward", "PodPortForwardOptions", &["create", "get"]),
    ("status", "Pod", &["get", "patch", "update"]),
];

const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Answers discovery paths; `None` for anything else.
pub fn handle(req: &Req) -> Option<Response<Body>> {
    if req.method != Method::GET {
        return None;
    }
    let aggregated = req
        .header("accept")
        .contains("g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList");
    let body = match req.path.as_str() {
        "/version" => version(),
        "/api" if aggregated => return Some(aggregated_response(vec![core_group_discovery()])),
        "/apis" if aggregated => return Some(aggregated_response(Vec::new())),
        "/api" => json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}],
        }),
        "/apis" => json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}),
        "/api/v1" => core_v1_resources(),
        "/openapi/v3" => {
            json!({"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=0123456789ABCDEF"}}})
        }
        "/openapi/v3/api/v1" => openapi_v3_core(),
        path if path.starts_with("/openapi/") => return Some(page_not_found()),
        _ => return None,
    };
    Some(json_response(StatusCode::OK, &body))
}

fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.0",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2024-12-11T00:00:00Z",
        "goVersion": "go1.23.3",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

fn core_v1_resources() -> Value {
    let mut resources = Vec::new();
    for r in RESOURCES {
        resources.push(json!({
            "name": r.name,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": VERBS,
            "shortNames": r.short_names,
            "storageVersionHash": "AAAAAAAAAAA=",
        }));
    }
    for (sub, kind, verbs) in [
        ("pods/log", "Pod", vec!["get"]),
        ("pods/exec", "PodExecOptions", vec!["create", "get"]),
        ("pods/attach", "PodAttachOptions", vec!["create", "get"]),
        (
            "pods/portforward",
            "PodPortForwardOptions",
            vec!["create", "get"],
        ),
        ("pods/status", "Pod", vec!["get", "patch", "update"]),
    ] {
        resources.push(json!({"name": sub, "singularName": "", "namespaced": true, "kind": kind, "verbs": verbs}));
    }
    json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": resources})
}

fn aggregated_response(groups: Vec<Value>) -> Response<Body> {
    let list = json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": groups,
    });
    let mut response = json_response(StatusCode::OK, &list);
    let content_type = http::HeaderValue::from_static(AGGREGATED_CONTENT_TYPE);
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, content_type);
    response
}

/// The core group ("") in aggregated form: every resource with its subresources.
fn core_group_discovery() -> Value {
    let kind = |kind: &str| json!({"group": "", "version": "v1", "kind": kind});
    let resources: Vec<Value> = RESOURCES
        .iter()
        .map(|r| {
            let subresources: Vec<Value> = POD_SUBRESOURCES
                .iter()
                .filter(|_| r.name == "pods")
                .map(|(sub, k, verbs)| json!({"subresource": sub, "responseKind": kind(k), "verbs": verbs}))
                .collect();
            json!({
                "resource": r.name,
                "responseKind": kind(r.kind),
                "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                "singularResource": r.singular,
                "verbs": VERBS,
                "shortNames": r.short_names,
                "subresources": subresources,
            })
        })
        .collect();
    json!({
        "metadata": {"creationTimestamp": null},
        "versions": [{"version": "v1", "resources": resources, "freshness": "Current"}],
    })
}

/// Just enough OpenAPI v3 for kubectl's field-validation check: for each kind, a
/// PATCH operation tagged with its group-version-kind that takes `fieldValidation`.
fn openapi_v3_core() -> Value {
    let mut paths = serde_json::Map::new();
    for r in RESOURCES {
        let path = if r.namespaced {
            format!("/api/v1/namespaces/{{namespace}}/{}/{{name}}", r.name)
        } else {
            format!("/api/v1/{}/{{name}}", r.name)
        };
        let operation = json!({
            "operationId": format!("patchCoreV1{}", r.kind),
            "parameters": [
                {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            ],
            "responses": {"200": {"description": "OK"}},
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": {"group": "", "version": "v1", "kind": r.kind},
        });
        paths.insert(path, json!({"patch": operation}));
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": {}},
    })
}
