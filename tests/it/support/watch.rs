//! Watch streams: `?watch=true` on a collection answers with a chunked
//! `application/json` stream of `{"type":...,"object":...}` lines, one per
//! change, each sent the moment the change is committed. A watch from a
//! resourceVersion first replays what changed since; without one (or "0") it
//! starts with an ADDED event per existing object, as kube-apiserver does.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::apiserver::{Open, Req, Shared};
use super::body::{self, Body};
use super::objects::{selectors, selects, wants_table};
use super::store::{Key, Resource};
use super::table;

/// One committed change.
#[derive(Clone, Debug)]
pub struct Event {
    pub resource_version: u64,
    pub kind: &'static str,
    pub key: Key,
    pub object: Value,
}

pub fn serve(
    shared: &Arc<Shared>,
    req: &Req,
    resource: &'static Resource,
    namespace: Option<String>,
) -> Response<Body> {
    let selectors = selectors(req);
    let as_table = wants_table(req);
    let timeout = req
        .query("timeoutSeconds")
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs);
    let from: Option<u64> = req
        .query("resourceVersion")
        .and_then(|s| s.parse().ok())
        .filter(|rv| *rv != 0);
    let in_scope = move |e: &Event| {
        e.key.0 == resource.name
            && namespace.as_ref().is_none_or(|ns| *ns == e.key.1)
            && selects(&selectors, &e.object)
    };
    let (initial, changes) = snapshot_and_subscribe(shared, resource, from);
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let encode = move |e: &Event| encode(resource, e, as_table);
    tokio::spawn(send_events(tx, initial, changes, timeout, in_scope, encode));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(body::channel(rx, Open::count(&shared.open_watches)))
        .unwrap()
}

/// The events a new watch starts with (what changed since `from`, or an ADDED per existing
/// object), and a subscription to the changes after them.
fn snapshot_and_subscribe(
    shared: &Shared,
    resource: &'static Resource,
    from: Option<u64>,
) -> (Vec<Event>, broadcast::Receiver<Event>) {
    // Snapshot and subscribe under the store lock: commits also happen under it,
    // so no change falls between the two.
    let store = shared.store.lock().unwrap();
    let initial: Vec<Event> = match from {
        Some(rv) => store.history_since(rv),
        None => store
            .list(resource.name, None)
            .into_iter()
            .map(|object| Event {
                resource_version: 0,
                kind: "ADDED",
                key: super::store::key_of(resource.name, &object),
                object,
            })
            .collect(),
    };
    (initial, shared.events.subscribe())
}

/// Sends the initial events in scope, then each change in scope as it is committed, until
/// the client goes away, the changes end or the watch's timeout passes.
async fn send_events(
    tx: mpsc::Sender<Bytes>,
    initial: Vec<Event>,
    mut changes: broadcast::Receiver<Event>,
    timeout: Option<Duration>,
    in_scope: impl Fn(&Event) -> bool,
    encode: impl Fn(&Event) -> Bytes,
) {
    let deadline = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    for event in initial.iter().filter(|e| in_scope(e)) {
        if tx.send(encode(event)).await.is_err() {
            return;
        }
    }
    loop {
        let event = tokio::select! {
            event = changes.recv() => match event {
                Ok(event) => event,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tx.closed() => return,
            _ = &mut deadline => return,
        };
        if in_scope(&event) && tx.send(encode(&event)).await.is_err() {
            return;
        }
    }
}

fn encode(resource: &Resource, event: &Event, as_table: bool) -> Bytes {
    let object = if as_table {
        table::table(resource, std::slice::from_ref(&event.object), None)
    } else {
        event.object.clone()
    };
    let mut line = serde_json::to_vec(&json!({"type": event.kind, "object": object})).unwrap();
    line.push(b'\n');
    Bytes::from(line)
}
