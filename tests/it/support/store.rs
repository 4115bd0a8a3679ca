//! The double's in-memory object store: every change gets the next
//! resourceVersion, is kept in a history (so a watch from an older
//! resourceVersion misses nothing) and is broadcast to open watches.

use std::collections::BTreeMap;
use std::time::SystemTime;

use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::watch::Event;

/// A resource the double serves, all in the core group (v1).
pub struct Resource {
    pub name: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
}

pub const RESOURCES: &[Resource] = &[
    Resource {
        name: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        namespaced: false,
        short_names: &["ns"],
    },
    Resource {
        name: "pods",
        singular: "pod",
        kind: "Pod",
        namespaced: true,
        short_names: &["po"],
    },
    Resource {
        name: "configmaps",
        singular: "configmap",
        kind: "ConfigMap",
        namespaced: true,
        short_names: &["cm"],
    },
    Resource {
        name: "secrets",
        singular: "secret",
        kind: "Secret",
        namespaced: true,
        short_names: &[],
    },
];

pub fn resource(name: &str) -> Option<&'static Resource> {
    RESOURCES.iter().find(|r| r.name == name)
}

/// (resource, namespace or "", name)
pub type Key = (String, String, String);

pub struct Store {
    resource_version: u64,
    objects: BTreeMap<Key, Value>,
    history: Vec<Event>,
}

impl Store {
    /// Namespace `default` and a running pod `web-0` in it (one container, `app`).
    pub fn seeded() -> Store {
        let mut store = Store {
            resource_version: 1000,
            objects: BTreeMap::new(),
            history: Vec::new(),
        };
        let (tx, _) = broadcast::channel(1);
        for ns in ["default", "kube-system"] {
            let object = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            store.commit(&tx, "ADDED", "namespaces", stamp_new(object, "namespaces"));
        }
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web-0", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10", "ports": [{"containerPort": 8080}]}]},
            "status": {
                "phase": "Running",
                "podIP": "10.0.0.10",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "started": true,
                    "image": "registry.k8s.io/pause:3.10", "imageID": "", "state": {"running": {"startedAt": now()}}}],
            },
        });
        store.commit(&tx, "ADDED", "pods", stamp_new(pod, "pods"));
        store
    }

    pub fn resource_version(&self) -> String {
        self.resource_version.to_string()
    }

    pub fn get(&self, key: &Key) -> Option<&Value> {
        self.objects.get(key)
    }

    /// Objects of `resource`, in `namespace` if given, in key order.
    pub fn list(&self, resource: &str, namespace: Option<&str>) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|((r, ns, _), _)| r == resource && namespace.is_none_or(|n| n == ns))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Changes after `resource_version`, for a watch that resumes from it.
    pub fn history_since(&self, resource_version: u64) -> Vec<Event> {
        self.history
            .iter()
            .filter(|e| e.resource_version > resource_version)
            .cloned()
            .collect()
    }

    /// Records a change: the object gets the next resourceVersion; ADDED and
    /// MODIFIED store it, DELETED removes it. Returns the object as stored.
    pub fn commit(
        &mut self,
        events: &broadcast::Sender<Event>,
        kind: &'static str,
        resource: &str,
        mut object: Value,
    ) -> Value {
        self.resource_version += 1;
        object["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
        let key = key_of(resource, &object);
        if kind == "DELETED" {
            self.objects.remove(&key);
        } else {
            self.objects.insert(key.clone(), object.clone());
        }
        let event = Event {
            resource_version: self.resource_version,
            kind,
            key,
            object: object.clone(),
        };
        self.history.push(event.clone());
        let _ = events.send(event);
        object
    }
}

pub fn key_of(resource: &str, object: &Value) -> Key {
    let meta = &object["metadata"];
    let field = |f: &str| meta[f].as_str().unwrap_or("").to_owned();
    (resource.to_owned(), field("namespace"), field("name"))
}

/// Fills in what the apiserver sets on create: uid, creationTimestamp, and the
/// status a fresh object of that kind has.
pub fn stamp_new(mut object: Value, resource: &str) -> Value {
    let meta = &mut object["metadata"];
    meta["uid"] = json!(uid());
    meta["creationTimestamp"] = json!(now());
    match resource {
        "namespaces" => {
            object["spec"] = json!({"finalizers": ["kubernetes"]});
            object["status"] = json!({"phase": "Active"});
        }
        "pods" if object["status"].is_null() => {
            object["status"] = json!({"phase": "Pending"});
        }
        "secrets" if object["type"].is_null() => object["type"] = json!("Opaque"),
        _ => {}
    }
    object
}

pub fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

fn uid() -> String {
    let b: [u8; 16] = rand::rng().random();
    let h: String = b.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// A random suffix for `generateName`.
pub fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}
