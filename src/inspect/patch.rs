//! A JSON patch (RFC 6902) judged by what it sets, without the live object: every `add` and
//! `replace` is turned into the sparse object it would write, and that object is judged
//! like a merge patch. A `move` or `copy` into a pod template writes a value sluice cannot
//! see, so it cannot be judged.

use serde_json::{Map, Value};

/// The largest array index sluice pads up to when it places a patched value; beyond it the
/// patch is refused as unreadable rather than allocating on an agent's say-so.
const MAX_INDEX: usize = 1024;

/// Why a JSON patch cannot be judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreadable {
    /// Not a JSON patch at all (the message says what is wrong).
    Malformed(String),
    /// A `move` or `copy` whose target is inside (or above) a pod template.
    HiddenValue,
}

/// The sparse object `ops` would write, or why it cannot be known. `template` is the path of
/// the pod template (`/spec/template`, or empty for a pod).
pub fn written(ops: &Value, template: &[&str]) -> Result<Value, Unreadable> {
    let ops = ops
        .as_array()
        .ok_or_else(|| malformed("a JSON patch is an array of operations"))?;
    let mut sparse = Value::Object(Map::new());
    for op in ops {
        let path = op["path"]
            .as_str()
            .ok_or_else(|| malformed("an operation has no path"))?;
        let tokens = pointer_tokens(path)?;
        match op["op"].as_str() {
            Some("add" | "replace") => {
                let value = op
                    .get("value")
                    .ok_or_else(|| malformed("add without a value"))?;
                place(&mut sparse, &tokens, value.clone())?;
            }
            Some("move" | "copy") if overlaps(&tokens, template) => {
                return Err(Unreadable::HiddenValue);
            }
            Some("remove" | "test" | "move" | "copy") => {}
            _ => return Err(malformed("an operation is not one of RFC 6902's six")),
        }
    }
    Ok(sparse)
}

fn malformed(why: &str) -> Unreadable {
    Unreadable::Malformed(why.to_owned())
}

/// The unescaped reference tokens of a JSON pointer (`~1` is `/`, `~0` is `~`).
fn pointer_tokens(path: &str) -> Result<Vec<String>, Unreadable> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| malformed("a path does not start with /"))?;
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

/// Whether a path is inside the template, or above it (replacing a parent of the template
/// replaces the template).
fn overlaps(tokens: &[String], template: &[&str]) -> bool {
    tokens.iter().zip(template).all(|(a, b)| a == b)
}

/// Puts `value` at `tokens` in `sparse`, making objects and arrays on the way. A numeric
/// token or `-` under an array (or a new container) makes an array, padded with empty
/// objects so the reason's index matches the patch's.
fn place(sparse: &mut Value, tokens: &[String], value: Value) -> Result<(), Unreadable> {
    let Some((first, rest)) = tokens.split_first() else {
        *sparse = value;
        return Ok(());
    };
    let index = array_index(first)?;
    if let Some(index) = index
        && !sparse.is_object()
    {
        if !sparse.is_array() {
            *sparse = Value::Array(Vec::new());
        }
        let Value::Array(items) = sparse else {
            unreachable!("made an array just above");
        };
        let index = index.unwrap_or(items.len());
        while items.len() <= index {
            items.push(Value::Object(Map::new()));
        }
        return place(&mut items[index], rest, value);
    }
    if !sparse.is_object() {
        *sparse = Value::Object(Map::new());
    }
    let Value::Object(map) = sparse else {
        unreachable!("made an object just above");
    };
    let child = map.entry(first.clone()).or_insert(Value::Null);
    place(child, rest, value)
}

/// `Some(Some(i))` for an index, `Some(None)` for `-` (append), `None` for a member name.
fn array_index(token: &str) -> Result<Option<Option<usize>>, Unreadable> {
    if token == "-" {
        return Ok(Some(None));
    }
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match token.parse::<usize>() {
        Ok(i) if i <= MAX_INDEX => Ok(Some(Some(i))),
        _ => Err(malformed("an array index is out of range")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const TEMPLATE: &[&str] = &["spec", "template"];

    #[test]
    fn adds_and_replaces_become_the_object_they_write() {
        let ops = json!([
            {"op": "add", "path": "/spec/template/spec/hostNetwork", "value": true},
            {"op": "replace", "path": "/spec/template/spec/containers/1/securityContext/privileged", "value": true},
            {"op": "add", "path": "/spec/template/spec/volumes/-", "value": {"name": "h", "hostPath": {"path": "/"}}},
            {"op": "add", "path": "/metadata/annotations/a~1b", "value": "x"},
            {"op": "remove", "path": "/spec/replicas"},
            {"op": "test", "path": "/spec/replicas", "value": 1},
        ]);
        let written = written(&ops, TEMPLATE).unwrap();
        assert_eq!(
            written,
            json!({
                "spec": {"template": {"spec": {
                    "hostNetwork": true,
                    "containers": [{}, {"securityContext": {"privileged": true}}],
                    "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
                }}},
                "metadata": {"annotations": {"a/b": "x"}},
            })
        );
    }

    #[test]
    fn a_move_or_copy_into_or_above_the_template_is_unreadable() {
        for path in ["/spec/template/spec/containers/0", "/spec", ""] {
            for op in ["move", "copy"] {
                let ops = json!([{"op": op, "from": "/metadata/labels", "path": path}]);
                assert_eq!(
                    written(&ops, TEMPLATE),
                    Err(Unreadable::HiddenValue),
                    "{op} {path}"
                );
            }
        }
        let elsewhere = json!([{"op": "copy", "from": "/spec/template", "path": "/metadata/x"}]);
        assert!(written(&elsewhere, TEMPLATE).is_ok());
    }

    #[test]
    fn malformed_patches_say_what_is_wrong() {
        for ops in [
            json!({"op": "add"}),
            json!([{"op": "add", "value": 1}]),
            json!([{"op": "frobnicate", "path": "/a"}]),
            json!([{"op": "add", "path": "a", "value": 1}]),
            json!([{"op": "add", "path": "/spec/template/spec/containers/99999999/x", "value": 1}]),
        ] {
            assert!(
                matches!(written(&ops, TEMPLATE), Err(Unreadable::Malformed(_))),
                "{ops}"
            );
        }
    }
}
