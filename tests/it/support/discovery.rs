//! Discovery as kubectl 1.32 uses it: /version, /api, /apis, /api/v1, and the
//! OpenAPI v3 documents kubectl reads to learn that the server validates fields
//! itself (so `kubectl create`/`apply` send `fieldValidation=Strict` and skip
//! client-side schema validation). Aggregated discovery
//! (`Accept: ...;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList`) is answered
//! with the legacy documents and `Content-Type: application/json`, which kubectl
//! accepts as "this server predates aggregated discovery".

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

/// Answers discovery paths; `None` for anything else.
pub fn handle(req: &Req) -> Option<Response<Body>> {
    if req.method != Method::GET {
        return None;
    }
    let body = match req.path.as_str() {
        "/version" => version(),
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
