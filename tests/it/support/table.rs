//! meta.k8s.io/v1 Table output, which kubectl asks for (`Accept: ...;as=Table;...`)
//! whenever it prints objects for humans: columns, one row per object, and the
//! object's metadata in each row.

use std::time::SystemTime;

use serde_json::{Value, json};

use super::store::Resource;

/// A Table of `objects`; `resource_version` is set for lists.
pub fn table(resource: &Resource, objects: &[Value], resource_version: Option<String>) -> Value {
    let columns: Vec<Value> = columns(resource.name)
        .iter()
        .map(|(name, kind, format)| json!({"name": name, "type": kind, "format": format, "description": "", "priority": 0}))
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            json!({
                "cells": cells(resource.name, o),
                "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]},
            })
        })
        .collect();
    let mut metadata = json!({});
    if let Some(rv) = resource_version {
        metadata["resourceVersion"] = json!(rv);
    }
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "columnDefinitions": columns, "rows": rows})
}

fn columns(resource: &str) -> &'static [(&'static str, &'static str, &'static str)] {
    match resource {
        "pods" => &[
            ("Name", "string", "name"),
            ("Ready", "string", ""),
            ("Status", "string", ""),
            ("Restarts", "string", ""),
            ("Age", "string", ""),
        ],
        "namespaces" => &[
            ("Name", "string", "name"),
            ("Status", "string", ""),
            ("Age", "string", ""),
        ],
        "configmaps" => &[
            ("Name", "string", "name"),
            ("Data", "integer", ""),
            ("Age", "string", ""),
        ],
        "secrets" => &[
            ("Name", "string", "name"),
            ("Type", "string", ""),
            ("Data", "integer", ""),
            ("Age", "string", ""),
        ],
        _ => &[("Name", "string", "name"), ("Age", "string", "")],
    }
}

fn cells(resource: &str, o: &Value) -> Vec<Value> {
    let name = o["metadata"]["name"].clone();
    let age = json!(age(&o["metadata"]["creationTimestamp"]));
    let count = |v: &Value| json!(v.as_object().map_or(0, |m| m.len()));
    match resource {
        "pods" => {
            let statuses = o["status"]["containerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let containers = o["spec"]["containers"].as_array().map_or(0, Vec::len);
            let ready = statuses.iter().filter(|s| s["ready"] == true).count();
            let restarts: u64 = statuses
                .iter()
                .filter_map(|s| s["restartCount"].as_u64())
                .sum();
            let phase = o["status"]["phase"].as_str().unwrap_or("Unknown");
            vec![
                name,
                json!(format!("{ready}/{containers}")),
                json!(phase),
                json!(restarts.to_string()),
                age,
            ]
        }
        "namespaces" => vec![name, o["status"]["phase"].clone(), age],
        "configmaps" => vec![name, count(&o["data"]), age],
        "secrets" => vec![name, o["type"].clone(), count(&o["data"]), age],
        _ => vec![name, age],
    }
}

/// kubectl's short human age: 42s, 5m, 3h, 2d.
fn age(timestamp: &Value) -> String {
    let Some(created) = timestamp
        .as_str()
        .and_then(|t| humantime::parse_rfc3339(t).ok())
    else {
        return "<unknown>".to_owned();
    };
    let secs = SystemTime::now()
        .duration_since(created)
        .map_or(0, |d| d.as_secs());
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 3 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}
