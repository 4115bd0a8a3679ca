//! Just enough of Kubernetes' protobuf encoding to read what kubectl's typed
//! clients send (`kubectl create configmap|secret|namespace` POST
//! `application/vnd.kubernetes.protobuf`): the `k8s\0` envelope (runtime.Unknown)
//! and the fields of ConfigMap, Secret, Namespace and ObjectMeta that matter here.
//! Answers always go out as JSON, which kubectl also accepts.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

const MAGIC: &[u8] = b"k8s\0";

/// The object in a protobuf request body, as JSON; `None` if it is not one
/// this module knows how to read.
pub fn decode(body: &[u8]) -> Option<Value> {
    let envelope = fields(body.strip_prefix(MAGIC)?)?;
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    for (number, value) in &envelope {
        match (number, value) {
            (1, Field::Bytes(type_meta)) => {
                for (n, v) in fields(type_meta)? {
                    if let (2, Field::Bytes(k)) = (n, v) {
                        kind = String::from_utf8_lossy(k).into_owned();
                    }
                }
            }
            (2, Field::Bytes(bytes)) => raw = bytes,
            _ => {}
        }
    }
    let mut object = json!({"apiVersion": "v1", "kind": kind});
    for (number, value) in fields(raw)? {
        let Field::Bytes(bytes) = value else { continue };
        let text = || Value::String(String::from_utf8_lossy(bytes).into_owned());
        match (kind.as_str(), number) {
            (_, 1) => object["metadata"] = object_meta(bytes)?,
            ("ConfigMap", 2) | ("Secret", 4) => insert(
                &mut object,
                if number == 2 { "data" } else { "stringData" },
                map_entry(bytes, false)?,
            ),
            ("ConfigMap", 3) => insert(&mut object, "binaryData", map_entry(bytes, true)?),
            ("Secret", 2) => insert(&mut object, "data", map_entry(bytes, true)?),
            ("Secret", 3) => object["type"] = text(),
            ("Namespace", 2) => object["spec"] = json!({}),
            _ => {}
        }
    }
    Some(object)
}

fn object_meta(bytes: &[u8]) -> Option<Value> {
    let mut meta = json!({});
    for (number, value) in fields(bytes)? {
        let Field::Bytes(bytes) = value else { continue };
        if bytes.is_empty() {
            continue;
        }
        let text = || Value::String(String::from_utf8_lossy(bytes).into_owned());
        match number {
            1 => meta["name"] = text(),
            2 => meta["generateName"] = text(),
            3 => meta["namespace"] = text(),
            11 => insert(&mut meta, "labels", map_entry(bytes, false)?),
            12 => insert(&mut meta, "annotations", map_entry(bytes, false)?),
            _ => {}
        }
    }
    Some(meta)
}

/// One `map<string, string|bytes>` entry; bytes become base64 as in JSON.
fn map_entry(bytes: &[u8], binary: bool) -> Option<(String, Value)> {
    let mut key = String::new();
    let mut value = Value::String(String::new());
    for (number, field) in fields(bytes)? {
        let Field::Bytes(b) = field else { continue };
        match number {
            1 => key = String::from_utf8_lossy(b).into_owned(),
            2 if binary => value = Value::String(STANDARD.encode(b)),
            2 => value = Value::String(String::from_utf8_lossy(b).into_owned()),
            _ => {}
        }
    }
    Some((key, value))
}

fn insert(object: &mut Value, field: &str, (key, value): (String, Value)) {
    if !object[field].is_object() {
        object[field] = Value::Object(Map::new());
    }
    object[field][key] = value;
}

enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// A message's fields in order, as (field number, value).
fn fields(mut bytes: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let key = varint(&mut bytes)?;
        let field = match key & 7 {
            0 => Field::Varint(varint(&mut bytes)?),
            1 => {
                bytes = bytes.get(8..)?;
                Field::Fixed
            }
            2 => {
                let len = varint(&mut bytes)? as usize;
                let (head, rest) = (bytes.get(..len)?, bytes.get(len..)?);
                bytes = rest;
                Field::Bytes(head)
            }
            5 => {
                bytes = bytes.get(4..)?;
                Field::Fixed
            }
            _ => return None,
        };
        out.push((key >> 3, field));
    }
    Some(out)
}

fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}
