//! RFC 6902 JSON patch for the double, as kube-apiserver applies it (`kubectl patch
//! --type=json`). Like the apiserver's, `replace` of a missing member adds it.

use serde_json::Value;

/// Applies `ops` (a JSON array of operations) to `target`; on error `target` may be half
/// changed, so callers patch a copy.
pub fn apply(target: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops.as_array().ok_or("a JSON patch is an array")?;
    for op in ops {
        let path = op["path"].as_str().ok_or("an operation has no path")?;
        match op["op"].as_str() {
            Some("add" | "replace") => set(target, path, op["value"].clone())?,
            Some("remove") => {
                take(target, path)?;
            }
            Some("test") if lookup(target, path) == Some(&op["value"]) => {}
            Some("test") => return Err(format!("test failed at {path}")),
            Some("move") => {
                let from = op["from"].as_str().ok_or("move without from")?;
                let value = take(target, from)?;
                set(target, path, value)?;
            }
            Some("copy") => {
                let from = op["from"].as_str().ok_or("copy without from")?;
                let value = lookup(target, from).cloned().ok_or("copy from nothing")?;
                set(target, path, value)?;
            }
            other => return Err(format!("unknown operation {other:?}")),
        }
    }
    Ok(())
}

/// The reference tokens of a JSON pointer, unescaped (`~1` → `/`, `~0` → `~`).
fn tokens(path: &str) -> Result<Vec<String>, String> {
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| format!("bad path {path:?}"))?;
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn lookup<'a>(target: &'a Value, path: &str) -> Option<&'a Value> {
    target.pointer(path)
}

/// The parent of `path` and its last token.
fn parent<'a>(target: &'a mut Value, path: &str) -> Result<(&'a mut Value, String), String> {
    let mut tokens = tokens(path)?;
    let last = tokens.pop().ok_or("empty path")?;
    let mut node = target;
    for token in &tokens {
        node = match node {
            Value::Object(map) => map.get_mut(token),
            Value::Array(items) => token.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| format!("no {token:?} on the way to {path}"))?;
    }
    Ok((node, last))
}

fn set(target: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let (node, last) = parent(target, path)?;
    match node {
        Value::Object(map) => {
            map.insert(last, value);
        }
        Value::Array(items) if last == "-" => items.push(value),
        Value::Array(items) => {
            let index: usize = last.parse().map_err(|_| format!("bad index in {path}"))?;
            if index > items.len() {
                return Err(format!("index out of range in {path}"));
            }
            items.insert(index, value);
        }
        _ => return Err(format!("{path}: parent is not a container")),
    }
    Ok(())
}

fn take(target: &mut Value, path: &str) -> Result<Value, String> {
    let (node, last) = parent(target, path)?;
    let taken = match node {
        Value::Object(map) => map.remove(&last),
        Value::Array(items) => last
            .parse::<usize>()
            .ok()
            .filter(|i| *i < items.len())
            .map(|i| items.remove(i)),
        _ => None,
    };
    taken.ok_or_else(|| format!("nothing at {path}"))
}

#[test]
fn applies_each_operation_like_the_apiserver() {
    let mut object = serde_json::json!({"data": {"a": "1", "b": "2"}, "list": [1, 2]});
    let ops = serde_json::json!([
        {"op": "add", "path": "/data/c", "value": "3"},
        {"op": "replace", "path": "/data/zz", "value": "new"},
        {"op": "remove", "path": "/data/a"},
        {"op": "test", "path": "/data/b", "value": "2"},
        {"op": "add", "path": "/list/1", "value": 9},
        {"op": "add", "path": "/list/-", "value": 3},
        {"op": "move", "from": "/data/b", "path": "/moved"},
        {"op": "copy", "from": "/moved", "path": "/data/x~1y"},
    ]);
    apply(&mut object, &ops).unwrap();
    assert_eq!(
        object,
        serde_json::json!({"data": {"c": "3", "zz": "new", "x/y": "2"}, "list": [1, 9, 2, 3], "moved": "2"})
    );
    let failing = serde_json::json!([{"op": "test", "path": "/moved", "value": "other"}]);
    assert!(apply(&mut object, &failing).is_err());
    let missing = serde_json::json!([{"op": "remove", "path": "/nope/x"}]);
    assert!(apply(&mut object, &missing).is_err());
}
