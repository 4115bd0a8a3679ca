//! What `sluice approvals` prints: a table, one entry's details, a decision's outcome, a
//! line per SSE event. Every value from the server goes through [`escape_for_terminal`].

use std::fmt::Write;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::escape_for_terminal;

const COLUMNS: [&str; 8] = [
    "ID",
    "TIER",
    "AGENT",
    "VERB",
    "RESOURCE",
    "NAMESPACE/NAME",
    "AGE",
    "EXPIRES IN",
];

/// The pending approvals as an aligned table (or a line saying there are none).
pub fn table(items: &[Value], now: SystemTime) -> String {
    if items.is_empty() {
        return "No pending approvals.\n".to_owned();
    }
    let rows: Vec<[String; 8]> = items
        .iter()
        .map(|v| {
            [
                field(v, "id"),
                v["tier"].to_string(),
                field(v, "agent"),
                field(v, "verb"),
                resource(v),
                namespace_name(v),
                since(v["created_at"].as_str(), now),
                until(v["expires_at"].as_str(), now),
            ]
        })
        .collect();
    let mut widths = COLUMNS.map(|c| c.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header = COLUMNS.map(str::to_owned);
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out += line.join("  ").trim_end();
        out.push('\n');
    }
    out
}

/// One approval, field by field, with the body preview.
pub fn details(v: &Value, now: SystemTime) -> String {
    let mut out = String::new();
    let mut line = |label: &str, value: String| {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{label:<12} {value}");
    };
    line("ID:", field(v, "id"));
    line("State:", state(v));
    line("Request ID:", field(v, "request_id"));
    line("Agent:", field(v, "agent"));
    line("Tier:", format!("{} ({})", v["tier"], field(v, "reason")));
    line(
        "Request:",
        format!("{} {}", field(v, "method"), field(v, "path")),
    );
    line("Verb:", field(v, "verb"));
    line("Resource:", resource(v));
    line("Namespace:", field(v, "namespace"));
    line("Name:", field(v, "name"));
    let created = v["created_at"].as_str();
    line(
        "Created:",
        format!("{} ({} ago)", field(v, "created_at"), since(created, now)),
    );
    let expires = v["expires_at"].as_str();
    if v["state"] == "pending" {
        line(
            "Expires:",
            format!("{} (in {})", field(v, "expires_at"), until(expires, now)),
        );
    }
    if !v["decided_by"].is_null() {
        line("Decided by:", field(v, "decided_by"));
    }
    if !v["decision_reason"].is_null() {
        line("Why:", field(v, "decision_reason"));
    }
    match v["body"].as_str() {
        None => out += "Body:        (none)\n",
        Some(body) => {
            let _ = writeln!(out, "Body:\n  {}", escape_for_terminal(body));
            if v["body_truncated"] == true {
                out += "  (truncated)\n";
            }
        }
    }
    out
}

/// What an approve or deny call did, in one line.
pub fn outcome(v: &Value) -> String {
    let id = field(v, "id");
    match v["state"].as_str() {
        Some("pending") => format!(
            "{id}: approval recorded ({} of {} from {}); still pending",
            v["approvals"].as_array().map_or(0, Vec::len),
            v["required"],
            list(&v["approvals"]),
        ),
        Some("approved") => format!(
            "{id}: approved by {}; the request is forwarded",
            field(v, "decided_by")
        ),
        Some("rejected") => {
            let why = v["decision_reason"]
                .as_str()
                .map(|r| format!(": {}", escape_for_terminal(r)))
                .unwrap_or_default();
            format!("{id}: denied by {}{why}", field(v, "decided_by"))
        }
        _ => format!("{id}: {}", state(v)),
    }
}

/// One SSE event (`event:` and `data:` lines) as a line; None for keep-alive comments.
pub fn sse_event(text: &str) -> Option<String> {
    let mut kind = None;
    let mut data = String::new();
    for line in text.lines() {
        if let Some(k) = line.strip_prefix("event:") {
            kind = Some(k.trim().to_owned());
        } else if let Some(d) = line.strip_prefix("data:") {
            data += d.trim_start();
        }
    }
    let kind = kind?;
    let value: Value = serde_json::from_str(&data).ok()?;
    let when = humantime::format_rfc3339_seconds(SystemTime::now());
    let kind_shown = escape_for_terminal(&kind);
    let v = &value["approval"];
    if v.is_null() {
        return Some(format!(
            "{when}  {kind_shown:<9} {}",
            escape_for_terminal(&data)
        ));
    }
    let mut line = format!(
        "{when}  {kind_shown:<9} {}  tier {}  {}  {} {} {}",
        field(v, "id"),
        v["tier"],
        field(v, "agent"),
        field(v, "verb"),
        resource(v),
        namespace_name(v),
    );
    if kind == "approval" {
        let _ = write!(line, "  ({} of {})", list(&v["approvals"]), v["required"]);
    } else if !v["decided_by"].is_null() {
        let _ = write!(line, "  by {}", field(v, "decided_by"));
    }
    Some(line)
}

/// A string field, escaped; `-` when absent.
fn field(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::String(s) => escape_for_terminal(s).into_owned(),
        Value::Null => "-".to_owned(),
        other => escape_for_terminal(&other.to_string()).into_owned(),
    }
}

fn list(v: &Value) -> String {
    let names: Vec<String> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|s| escape_for_terminal(s).into_owned())
        .collect();
    if names.is_empty() {
        "-".to_owned()
    } else {
        names.join(",")
    }
}

/// `pods/exec`, or the path of a non-resource request.
fn resource(v: &Value) -> String {
    match (v["resource"].as_str(), v["subresource"].as_str()) {
        (Some(r), Some(s)) => escape_for_terminal(&format!("{r}/{s}")).into_owned(),
        (Some(r), None) => escape_for_terminal(r).into_owned(),
        _ => field(v, "path"),
    }
}

fn namespace_name(v: &Value) -> String {
    match (v["namespace"].as_str(), v["name"].as_str()) {
        (Some(ns), Some(name)) => escape_for_terminal(&format!("{ns}/{name}")).into_owned(),
        (Some(ns), None) => format!("{}/-", escape_for_terminal(ns)),
        (None, Some(name)) => escape_for_terminal(name).into_owned(),
        (None, None) => "-".to_owned(),
    }
}

fn state(v: &Value) -> String {
    let state = field(v, "state");
    if v["state"] == "pending" {
        let got = v["approvals"].as_array().map_or(0, Vec::len);
        return format!(
            "{state} ({got} of {} approvals: {})",
            v["required"],
            list(&v["approvals"])
        );
    }
    state
}

fn since(at: Option<&str>, now: SystemTime) -> String {
    match at.and_then(|t| humantime::parse_rfc3339(t).ok()) {
        Some(t) => compact(now.duration_since(t).unwrap_or_default()),
        None => "?".to_owned(),
    }
}

fn until(at: Option<&str>, now: SystemTime) -> String {
    match at.and_then(|t| humantime::parse_rfc3339(t).ok()) {
        Some(t) => match t.duration_since(now) {
            Ok(left) => compact(left),
            Err(_) => "expired".to_owned(),
        },
        None => "?".to_owned(),
    }
}

/// `42s`, `3m05s`, `2h07m`.
fn compact(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry() -> Value {
        json!({
            "id": "ap_1", "request_id": "sl_1", "agent": "claude-code", "tier": 2,
            "reason": "create configmaps", "method": "POST",
            "path": "/api/v1/namespaces/default/configmaps", "verb": "create",
            "resource": "configmaps", "subresource": null, "namespace": "default",
            "name": "x\u{1b}[2Jy", "created_at": "2026-01-01T00:00:00Z",
            "expires_at": "2026-01-01T00:02:00Z", "body": "{\"a\":\"\u{202e}b\"}",
            "body_truncated": false, "required": 2, "approvals": ["alice"],
            "state": "pending", "decided_by": null, "decision_reason": null
        })
    }

    fn at(secs: u64) -> SystemTime {
        humantime::parse_rfc3339("2026-01-01T00:00:00Z").unwrap() + Duration::from_secs(secs)
    }

    #[test]
    fn the_table_is_aligned_and_escaped() {
        let out = table(&[entry()], at(65));
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("ID    TIER  AGENT"), "{out}");
        assert!(lines[1].contains("default/x\\x1b[2Jy"), "{out}");
        assert!(
            lines[1].contains("1m05s") && lines[1].ends_with("55s"),
            "{out}"
        );
        assert!(!out.contains('\u{1b}'));
        assert_eq!(table(&[], at(0)), "No pending approvals.\n");
    }

    #[test]
    fn details_show_the_body_escaped() {
        let out = details(&entry(), at(1));
        assert!(out.contains("pending (1 of 2 approvals: alice)"), "{out}");
        assert!(out.contains("\\u{202e}b"), "{out}");
        assert!(!out.contains('\u{202e}') && !out.contains('\u{1b}'));
    }

    #[test]
    fn outcomes_say_who_decided() {
        let mut v = entry();
        assert_eq!(
            outcome(&v),
            "ap_1: approval recorded (1 of 2 from alice); still pending"
        );
        v["state"] = json!("rejected");
        v["decided_by"] = json!("bob");
        v["decision_reason"] = json!("not\ttoday");
        assert_eq!(outcome(&v), "ap_1: denied by bob: not\\ttoday");
    }

    #[test]
    fn sse_events_become_one_line_and_keep_alives_none() {
        let data = json!({"kind": "approved", "approval": {"id": "ap_9", "tier": 3,
            "agent": "a", "verb": "delete", "resource": "pods", "namespace": "default",
            "name": "web-0", "decided_by": "alice", "approvals": ["alice"], "required": 1}});
        let line = sse_event(&format!("event: approved\ndata: {data}\n\n")).unwrap();
        assert!(
            line.contains("approved  ap_9  tier 3  a  delete pods default/web-0  by alice"),
            "{line}"
        );
        assert_eq!(sse_event(": keep-alive\n\n"), None);
    }
}
