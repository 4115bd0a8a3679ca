//! verify against forged logs: edited, deleted, inserted, reordered, relinked and torn
//! lines, rotated series, and lines longer than a block.

use super::*;
use crate::audit::line::encode;
use crate::audit::{AuditEvent, Stage};

/// Lines (each with its newline) of a fresh chain of `n` events, starting after `head`.
fn chain(n: usize, mut head: ChainHead) -> (Vec<String>, ChainHead) {
    let mut lines = Vec::new();
    for i in 0..n {
        let mut e = AuditEvent::new(Stage::Decision);
        e.agent = Some(format!("agent-{i}").into());
        let mut out = Vec::new();
        head = encode(&e, &head, &mut out);
        lines.push(String::from_utf8(out).unwrap());
    }
    (lines, head)
}

fn write(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.concat()).unwrap();
    path
}

fn finding(files: &[PathBuf]) -> Finding {
    match verify_files(files) {
        Err(VerifyError::Tampered(f)) => f,
        other => panic!("expected tampering, got {other:?}"),
    }
}

#[test]
fn intact_log_summarises() {
    let dir = tempfile::tempdir().unwrap();
    let (lines, head) = chain(5, ChainHead::GENESIS);
    let s = verify_files(&[write(dir.path(), "a.jsonl", &lines)]).unwrap();
    assert_eq!(
        (s.files, s.events, s.first_seq, s.last_seq),
        (1, 5, Some(1), Some(5))
    );
    assert_eq!(s.head_hash.unwrap().as_bytes(), &head.hash);
    assert!(s.first_timestamp.unwrap() <= s.last_timestamp.unwrap());
}

#[test]
fn edited_field_is_a_hash_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let (mut lines, _) = chain(5, ChainHead::GENESIS);
    lines[2] = lines[2].replace("agent-2", "agent-X");
    let f = finding(&[write(dir.path(), "a.jsonl", &lines)]);
    assert_eq!(
        (f.line, f.seq, f.problem.kind()),
        (3, Some(3), "hash_mismatch")
    );
}

#[test]
fn deleted_line_is_a_seq_gap() {
    let dir = tempfile::tempdir().unwrap();
    let (mut lines, _) = chain(5, ChainHead::GENESIS);
    lines.remove(1);
    let f = finding(&[write(dir.path(), "a.jsonl", &lines)]);
    let gap = Problem::SeqGap {
        expected: 2,
        found: 3,
    };
    assert_eq!((f.line, f.seq, f.problem), (2, Some(3), gap));
}

#[test]
fn inserted_and_swapped_lines_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (lines, _) = chain(5, ChainHead::GENESIS);
    // A forged line with a valid hash of its own, linked to line 2: line 3 then repeats.
    let (forged, _) = chain(1, crate::audit::recover_head_of(&lines[1]));
    let mut inserted = lines.clone();
    inserted.insert(2, forged[0].clone());
    let f = finding(&[write(dir.path(), "i.jsonl", &inserted)]);
    assert_eq!(
        (f.line, f.seq, f.problem.kind()),
        (4, Some(3), "seq_repeat")
    );

    let mut swapped = lines.clone();
    swapped.swap(2, 3);
    let f = finding(&[write(dir.path(), "s.jsonl", &swapped)]);
    assert_eq!((f.line, f.seq, f.problem.kind()), (3, Some(4), "seq_gap"));
}

#[test]
fn relinked_line_with_valid_own_hash_breaks_prev_hash() {
    let dir = tempfile::tempdir().unwrap();
    let (mut lines, _) = chain(4, ChainHead::GENESIS);
    // Replace line 3 by a line with seq 3 and a valid hash, but chained to a different line 2.
    let (other, _) = chain(3, ChainHead::GENESIS);
    lines[2] = other[2].clone();
    let f = finding(&[write(dir.path(), "a.jsonl", &lines)]);
    assert_eq!(
        (f.line, f.seq, f.problem.kind()),
        (3, Some(3), "prev_hash_mismatch")
    );
    // A log whose first line is seq 1 must start from zeros.
    let not_zero = ChainHead {
        seq: 0,
        hash: [b'a'; 64],
    };
    let (first, _) = chain(2, not_zero);
    let f = finding(&[write(dir.path(), "b.jsonl", &first)]);
    assert_eq!(
        (f.line, f.seq, f.problem.kind()),
        (1, Some(1), "prev_hash_mismatch")
    );
}

#[test]
fn torn_tail_and_garbage_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (mut lines, _) = chain(3, ChainHead::GENESIS);
    let torn = lines[2][..40].to_string();
    lines[2] = torn;
    let f = finding(&[write(dir.path(), "t.jsonl", &lines)]);
    let problem = Problem::TornLastLine { bytes: 40 };
    assert_eq!((f.line, f.seq, f.problem), (3, None, problem));

    let (mut lines, _) = chain(3, ChainHead::GENESIS);
    lines[1] = "not json at all\n".into();
    let f = finding(&[write(dir.path(), "g.jsonl", &lines)]);
    assert_eq!((f.line, f.problem.kind()), (2, "malformed_json"));
    assert!(
        f.to_string().contains("g.jsonl: line 2: malformed JSON"),
        "{f}"
    );
}

#[test]
fn rotated_series_links_and_a_missing_middle_file_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (a, head) = chain(3, ChainHead::GENESIS);
    let (b, head) = chain(3, head);
    let (c, _) = chain(3, head);
    let files = [
        write(dir.path(), "1.jsonl", &a),
        write(dir.path(), "2.jsonl", &b),
        write(dir.path(), "3.jsonl", &c),
    ];
    let s = verify_files(&files).unwrap();
    assert_eq!((s.files, s.events, s.last_seq), (3, 9, Some(9)));
    // Starting from a later file (older ones deleted by retention) is allowed.
    assert_eq!(verify_files(&files[1..]).unwrap().first_seq, Some(4));

    let f = finding(&[files[0].clone(), files[2].clone()]);
    assert_eq!(f.file, files[2]);
    assert_eq!((f.line, f.seq, f.problem.kind()), (1, Some(7), "seq_gap"));
    let f = finding(&[files[1].clone(), files[0].clone()]);
    assert_eq!(
        (f.line, f.seq, f.problem.kind()),
        (1, Some(1), "seq_repeat")
    );
}

#[test]
fn a_long_log_reports_its_first_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let (lines, _) = chain(5000, ChainHead::GENESIS);
    let s = verify_files(&[write(dir.path(), "ok.jsonl", &lines)]).unwrap();
    assert_eq!((s.events, s.last_seq), (5000, Some(5000)));

    // A broken link early and an edited line late: the link is reported, and so is the
    // edited line once it is the only problem.
    let mut bad = lines.clone();
    bad.remove(1000);
    bad[4000] = bad[4000].replace("agent-4001", "agent-XXXX");
    let mut late = lines.clone();
    late[4000] = late[4000].replace("agent-4000", "agent-XXXX");
    let found = [("bad.jsonl", bad), ("late.jsonl", late)].map(|(name, lines)| {
        let f = finding(&[write(dir.path(), name, &lines)]);
        (f.line, f.seq, f.problem.kind())
    });
    assert_eq!(
        found,
        [
            (1001, Some(1002), "seq_gap"),
            (4001, Some(4001), "hash_mismatch")
        ]
    );
}

#[test]
fn missing_file_is_unreadable_and_long_lines_cross_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let err = verify_files(&[dir.path().join("nope.jsonl")]).unwrap_err();
    assert!(matches!(err, VerifyError::Unreadable { .. }));

    let mut e = AuditEvent::new(Stage::Decision);
    e.path = Some("x".repeat(BLOCK + 10).into());
    let mut out = Vec::new();
    let head = encode(&e, &ChainHead::GENESIS, &mut out);
    encode(&e, &head, &mut out);
    let path = dir.path().join("long.jsonl");
    std::fs::write(&path, &out).unwrap();
    assert_eq!(verify_files(&[path]).unwrap().events, 2);
}
