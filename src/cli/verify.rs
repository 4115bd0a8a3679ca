//! `sluice verify FILE... [--json]`: check a log or a rotated series, oldest first.
//! Exit 0 intact, 1 tampered or damaged, 2 a file cannot be read.

use std::path::PathBuf;

use serde_json::json;

use crate::audit::verify::{Summary, VerifyError, verify_files};

pub use crate::audit::verify::VERIFY_LONG_ABOUT as LONG_ABOUT;

/// Runs the check and prints one line (or one JSON object) on stdout; returns the exit code.
pub fn run(files: &[PathBuf], json: bool) -> i32 {
    let result = verify_files(files);
    let (code, text) = if json {
        let (code, value) = report_json(&result);
        (code, value.to_string())
    } else {
        report_text(&result)
    };
    println!("{text}");
    code
}

fn exit_code(result: &Result<Summary, VerifyError>) -> i32 {
    match result {
        Ok(_) => 0,
        Err(VerifyError::Tampered(_)) => 1,
        Err(VerifyError::Unreadable { .. }) => 2,
    }
}

/// The human line: `intact: N events, seq A..B, T1 .. T2, head H` or what went wrong.
pub fn report_text(result: &Result<Summary, VerifyError>) -> (i32, String) {
    let text = match result {
        Ok(s) => match (s.first_seq, s.last_seq) {
            (Some(first), Some(last)) => format!(
                "intact: {} events in {} file(s), seq {first}..{last}, {} .. {}, head {}",
                s.events,
                s.files,
                s.first_timestamp.as_deref().unwrap_or("?"),
                s.last_timestamp.as_deref().unwrap_or("?"),
                s.head_hash.as_deref().unwrap_or("?"),
            ),
            _ => format!("intact: 0 events in {} file(s)", s.files),
        },
        Err(VerifyError::Tampered(f)) => format!("TAMPERED: {f}"),
        Err(e @ VerifyError::Unreadable { .. }) => format!("error: {e}"),
    };
    (exit_code(result), text)
}

/// The `--json` object: `{"ok": true, ...summary}` or `{"ok": false, ...what failed}`.
pub fn report_json(result: &Result<Summary, VerifyError>) -> (i32, serde_json::Value) {
    let value = match result {
        Ok(s) => {
            let mut v = json!({ "ok": true });
            if let (Some(obj), Ok(serde_json::Value::Object(summary))) =
                (v.as_object_mut(), serde_json::to_value(s))
            {
                obj.extend(summary);
            }
            v
        }
        Err(VerifyError::Tampered(f)) => json!({
            "ok": false,
            "error": "tampered",
            "file": f.file.display().to_string(),
            "line": f.line,
            "seq": f.seq,
            "problem": f.problem.kind(),
            "message": f.problem.to_string(),
        }),
        Err(VerifyError::Unreadable { file, source }) => json!({
            "ok": false,
            "error": "unreadable",
            "file": file.display().to_string(),
            "message": source.to_string(),
        }),
    };
    (exit_code(result), value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditEvent, AuditLog, Stage};
    use crate::config::{AuditConfig, SyncMode};

    async fn log_of(dir: &std::path::Path, n: usize) -> PathBuf {
        let cfg = AuditConfig {
            path: dir.join("audit.jsonl"),
            sync: SyncMode::Flush,
            rotate_bytes: 1 << 30,
        };
        let (log, task) = AuditLog::open(&cfg).await.unwrap();
        for _ in 0..n {
            log.append(AuditEvent::new(Stage::Decision)).await.unwrap();
        }
        drop(log);
        task.handle.await.unwrap();
        cfg.path
    }

    #[tokio::test]
    async fn exit_codes_and_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_of(dir.path(), 3).await;
        let ok = verify_files(std::slice::from_ref(&path));
        let (code, text) = report_text(&ok);
        assert_eq!(code, 0);
        assert!(
            text.starts_with("intact: 3 events in 1 file(s), seq 1..3, 20"),
            "{text}"
        );
        let (_, v) = report_json(&ok);
        assert_eq!(
            (v["ok"].as_bool(), v["events"].as_u64()),
            (Some(true), Some(3))
        );

        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen("decision", "complete", 1)).unwrap();
        let bad = verify_files(std::slice::from_ref(&path));
        let (code, line) = report_text(&bad);
        assert_eq!(code, 1);
        assert!(line.contains("line 1 (seq 1): hash mismatch"), "{line}");
        let (_, v) = report_json(&bad);
        assert_eq!(
            (v["line"].as_u64(), v["problem"].as_str()),
            (Some(1), Some("hash_mismatch"))
        );

        let missing = verify_files(&[dir.path().join("missing.jsonl")]);
        assert_eq!(report_json(&missing).1["error"], "unreadable");
        assert_eq!(run(&[dir.path().join("missing.jsonl")], true), 2);
        assert_eq!(run(&[path], false), 1);
    }
}
