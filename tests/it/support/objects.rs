//! REST for the double's resources under /api/v1: create, get, list (and watch),
//! update, patch, delete, and pods/log, with kube-apiserver's status codes and
//! `Status` bodies.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Response, StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::apiserver::{Req, Shared};
use super::body::{self, Body, json_response, not_found, page_not_found, status_response};
use super::store::{Key, Resource, key_of, name_suffix, resource, stamp_new};
use super::{json_patch, protobuf, table, watch};

/// What a path under /api/v1 names.
struct Target {
    resource: &'static Resource,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

pub async fn handle(shared: &Arc<Shared>, req: Req) -> Response<Body> {
    let Some(target) = parse_path(&req.path) else {
        return page_not_found();
    };
    match (&req.method, &target.name, target.subresource.as_deref()) {
        (&Method::GET, None, None) if req.query_flag("watch") => {
            watch::serve(shared, &req, target.resource, target.namespace)
        }
        (&Method::GET, None, None) => list(shared, &req, &target),
        (&Method::POST, None, None) => create(shared, &req, &target),
        (&Method::GET, Some(_), None) => get(shared, &req, &target),
        (&Method::DELETE, Some(_), None) => delete(shared, &req, &target),
        (&Method::PUT, Some(_), None) => update(shared, &req, &target),
        (&Method::PATCH, Some(_), None) => patch(shared, &req, &target),
        (&Method::GET, Some(_), Some("log")) => logs(shared, &req, &target),
        (_, Some(_), Some("exec" | "attach" | "portforward")) => {
            status_response(400, "BadRequest", "Upgrade request required", None)
        }
        _ => status_response(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            None,
        ),
    }
}

/// Creates or replaces an object directly (for tests), broadcasting the change.
pub fn put(shared: &Shared, resource: &str, object: Value) {
    let mut store = shared.store.lock().unwrap();
    let kind = if store.get(&key_of(resource, &object)).is_some() {
        "MODIFIED"
    } else {
        "ADDED"
    };
    store.commit(&shared.events, kind, resource, stamp_new(object, resource));
}

/// Deletes an object directly (for tests), broadcasting the change.
pub fn remove(shared: &Shared, resource: &str, namespace: &str, name: &str) -> bool {
    let mut store = shared.store.lock().unwrap();
    let key = (resource.to_owned(), namespace.to_owned(), name.to_owned());
    let Some(object) = store.get(&key).cloned() else {
        return false;
    };
    store.commit(&shared.events, "DELETED", resource, object);
    true
}

fn parse_path(path: &str) -> Option<Target> {
    let segments: Vec<&str> = path.strip_prefix("/api/v1/")?.split('/').collect();
    let target = |r: &str, ns: Option<&str>, name: Option<&str>, sub: Option<&str>| {
        let resource = resource(r)?;
        (resource.namespaced == ns.is_some() || name.is_none()).then(|| Target {
            resource,
            namespace: ns.map(str::to_owned),
            name: name.map(str::to_owned),
            subresource: sub.map(str::to_owned),
        })
    };
    match segments[..] {
        ["namespaces", ns, r] if resource(r).is_some_and(|r| r.namespaced) => {
            target(r, Some(ns), None, None)
        }
        ["namespaces", ns, r, name] => target(r, Some(ns), Some(name), None),
        ["namespaces", ns, r, name, sub] => target(r, Some(ns), Some(name), Some(sub)),
        [r] => target(r, None, None, None),
        [r, name] => target(r, None, Some(name), None),
        [r, name, sub] => target(r, None, Some(name), Some(sub)),
        _ => None,
    }
}

fn key(target: &Target) -> Key {
    (
        target.resource.name.to_owned(),
        target.namespace.clone().unwrap_or_default(),
        target.name.clone().unwrap_or_default(),
    )
}

/// The object as the client asked for it: itself, or a Table row (`kubectl get`).
fn render(req: &Req, resource: &Resource, object: &Value, status: StatusCode) -> Response<Body> {
    if wants_table(req) {
        json_response(
            status,
            &table::table(resource, std::slice::from_ref(object), None),
        )
    } else {
        json_response(status, object)
    }
}

pub fn wants_table(req: &Req) -> bool {
    req.header("accept").contains("as=Table")
}

/// The request's `fieldSelector` and `labelSelector`.
pub fn selectors(req: &Req) -> (String, String) {
    let get = |k| req.query(k).unwrap_or("").to_owned();
    (get("fieldSelector"), get("labelSelector"))
}

/// `fieldSelector` (metadata.name, metadata.namespace) and `labelSelector`
/// (k=v or k, comma-separated) as kube-apiserver reads them, for what the double needs.
pub fn selects((fields, labels): &(String, String), object: &Value) -> bool {
    let meta = &object["metadata"];
    let field_ok = fields
        .split(',')
        .filter(|s| !s.is_empty())
        .all(|s| match s.split_once('=') {
            Some(("metadata.name", v)) => meta["name"] == v,
            Some(("metadata.namespace", v)) => meta["namespace"] == v,
            _ => true,
        });
    let label_ok = labels
        .split(',')
        .filter(|s| !s.is_empty())
        .all(|s| match s.split_once('=') {
            Some((k, v)) => meta["labels"][k.trim_end_matches('=')] == v,
            None => !meta["labels"][s].is_null(),
        });
    field_ok && label_ok
}

fn list(shared: &Shared, req: &Req, target: &Target) -> Response<Body> {
    let selectors = selectors(req);
    let store = shared.store.lock().unwrap();
    let items: Vec<Value> = store
        .list(target.resource.name, target.namespace.as_deref())
        .into_iter()
        .filter(|o| selects(&selectors, o))
        .collect();
    let rv = store.resource_version();
    if wants_table(req) {
        return json_response(
            StatusCode::OK,
            &table::table(target.resource, &items, Some(rv)),
        );
    }
    let list = json!({
        "kind": format!("{}List", target.resource.kind),
        "apiVersion": "v1",
        "metadata": {"resourceVersion": rv},
        "items": items,
    });
    json_response(StatusCode::OK, &list)
}

fn get(shared: &Shared, req: &Req, target: &Target) -> Response<Body> {
    let store = shared.store.lock().unwrap();
    match store.get(&key(target)) {
        Some(object) => render(req, target.resource, object, StatusCode::OK),
        None => not_found(target.resource.name, target.name.as_deref().unwrap_or("")),
    }
}

/// The request's object, from JSON or (typed clients) protobuf.
fn parse_body(req: &Req) -> Option<Value> {
    let decoded = if req
        .header("content-type")
        .starts_with("application/vnd.kubernetes.protobuf")
    {
        protobuf::decode(&req.body)
    } else {
        serde_json::from_slice::<Value>(&req.body).ok()
    };
    decoded.filter(Value::is_object)
}

fn bad_body() -> Response<Body> {
    status_response(
        400,
        "BadRequest",
        "the body of the request was in an unknown format",
        None,
    )
}

fn create(shared: &Shared, req: &Req, target: &Target) -> Response<Body> {
    let Some(mut object) = parse_body(req) else {
        return bad_body();
    };
    let resource = target.resource;
    object["apiVersion"] = json!("v1");
    object["kind"] = json!(resource.kind);
    if let Some(ns) = &target.namespace {
        object["metadata"]["namespace"] = json!(ns);
    }
    if object["metadata"]["name"].as_str().unwrap_or("").is_empty() {
        let Some(prefix) = object["metadata"]["generateName"].as_str() else {
            return status_response(
                422,
                "Invalid",
                &format!(
                    "{} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                    resource.kind
                ),
                None,
            );
        };
        object["metadata"]["name"] = json!(format!("{prefix}{}", name_suffix()));
    }
    let key = key_of(resource.name, &object);
    let mut store = shared.store.lock().unwrap();
    if let Some(ns) = &target.namespace
        && store
            .get(&("namespaces".to_owned(), String::new(), ns.clone()))
            .is_none()
    {
        return not_found("namespaces", ns);
    }
    if store.get(&key).is_some() {
        let message = format!("{} \"{}\" already exists", resource.name, key.2);
        return status_response(
            409,
            "AlreadyExists",
            &message,
            Some(json!({"name": key.2, "kind": resource.name})),
        );
    }
    let object = stamp_new(object, resource.name);
    if req.query("dryRun") == Some("All") {
        return render(req, resource, &object, StatusCode::CREATED);
    }
    let object = store.commit(&shared.events, "ADDED", resource.name, object);
    render(req, resource, &object, StatusCode::CREATED)
}

fn update(shared: &Shared, req: &Req, target: &Target) -> Response<Body> {
    let Some(object) = parse_body(req) else {
        return bad_body();
    };
    replace(shared, req, target, |_| object)
}

fn patch(shared: &Shared, req: &Req, target: &Target) -> Response<Body> {
    let content_type = req.header("content-type");
    if content_type.contains("json-patch") {
        let Ok(ops) = serde_json::from_slice::<Value>(&req.body) else {
            return bad_body();
        };
        // Tried on a copy first: a failed patch changes nothing, and the answer is 422.
        let current = shared.store.lock().unwrap().get(&key(target)).cloned();
        if let Some(mut copy) = current
            && let Err(why) = json_patch::apply(&mut copy, &ops)
        {
            return status_response(422, "Invalid", &why, None);
        }
        return replace(shared, req, target, |mut current| {
            // They applied to a copy above; a test changes an object from one place at a time.
            let _ = json_patch::apply(&mut current, &ops);
            current
        });
    }
    let Some(patch) = parse_body(req) else {
        return bad_body();
    };
    if !content_type.contains("merge-patch") && !content_type.contains("apply-patch") {
        return status_response(
            415,
            "UnsupportedMediaType",
            &format!("the double does not support {content_type} patches"),
            None,
        );
    }
    replace(shared, req, target, |mut current| {
        merge_patch(&mut current, &patch);
        current
    })
}

/// Replaces an existing object with `change(current)`, keeping what the server owns.
fn replace(
    shared: &Shared,
    req: &Req,
    target: &Target,
    change: impl FnOnce(Value) -> Value,
) -> Response<Body> {
    let mut store = shared.store.lock().unwrap();
    let Some(current) = store.get(&key(target)).cloned() else {
        return not_found(target.resource.name, target.name.as_deref().unwrap_or(""));
    };
    let mut object = change(current.clone());
    for field in ["uid", "creationTimestamp", "name", "namespace"] {
        object["metadata"][field] = current["metadata"][field].clone();
    }
    object["apiVersion"] = json!("v1");
    object["kind"] = json!(target.resource.kind);
    if req.query("dryRun") == Some("All") {
        return render(req, target.resource, &object, StatusCode::OK);
    }
    let object = store.commit(&shared.events, "MODIFIED", target.resource.name, object);
    render(req, target.resource, &object, StatusCode::OK)
}

/// RFC 7386 JSON merge patch (also used, approximately, for strategic merge patch).
fn merge_patch(target: &mut Value, patch: &Value) {
    let Some(fields) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    for (k, v) in fields {
        if v.is_null() {
            target.as_object_mut().unwrap().remove(k);
        } else {
            merge_patch(&mut target[k], v);
        }
    }
}

fn delete(shared: &Shared, req: &Req, target: &Target) -> Response<Body> {
    let mut store = shared.store.lock().unwrap();
    let Some(current) = store.get(&key(target)).cloned() else {
        return not_found(target.resource.name, target.name.as_deref().unwrap_or(""));
    };
    if dry_run_delete(req) {
        return json_response(StatusCode::OK, &current);
    }
    let object = store.commit(&shared.events, "DELETED", target.resource.name, current);
    json_response(StatusCode::OK, &object)
}

/// A delete's dry run is asked for in the query or, as kubectl does, in the DeleteOptions
/// body (`{"dryRun": ["All"]}`).
fn dry_run_delete(req: &Req) -> bool {
    let body = serde_json::from_slice::<Value>(&req.body).unwrap_or(Value::Null);
    req.query("dryRun") == Some("All") || body["dryRun"] == json!(["All"])
}

/// `pods/log`: three lines; with `follow=true` they trickle out, then the stream ends.
fn logs(shared: &Shared, req: &Req, target: &Target) -> Response<Body> {
    if target.resource.name != "pods" || shared.store.lock().unwrap().get(&key(target)).is_none() {
        return not_found("pods", target.name.as_deref().unwrap_or(""));
    }
    let lines: Vec<Bytes> = (1..=3)
        .map(|i| Bytes::from(format!("log line {i}\n")))
        .collect();
    let follow = req.query_flag("follow");
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(async move {
        for line in lines {
            if tx.send(line).await.is_err() {
                return;
            }
            if follow {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(body::channel(rx, ()))
        .unwrap()
}
