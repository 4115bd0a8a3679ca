//! Tests of the writer through the public API: ordering, durability acks, failing disks,
//! restart continuity, torn-tail recovery and rotation. Each ends by running `verify`.

use std::path::{Path, PathBuf};

use super::verify::verify_files;
use super::*;
use crate::config::SyncMode;

fn config(dir: &Path, sync: SyncMode, rotate_bytes: u64) -> AuditConfig {
    AuditConfig {
        path: dir.join("audit.jsonl"),
        sync,
        rotate_bytes,
    }
}

fn decision(agent: &str) -> AuditEvent<'_> {
    let mut e = AuditEvent::new(Stage::Decision);
    e.agent = Some(agent.into());
    e.decision = Some("allow");
    e
}

/// Rotated files oldest first, then the current file.
fn series(dir: &Path) -> Vec<PathBuf> {
    let mut rotated: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap() != "audit.jsonl")
        .collect();
    rotated.sort();
    rotated.push(dir.join("audit.jsonl"));
    rotated
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A log (fsync) whose disk fails on command, holding one line from agent "before".
async fn open_faulty_with_one_line(dir: &Path) -> (AuditConfig, Faults, AuditLog, AuditTask) {
    let cfg = config(dir, SyncMode::Fsync, 1 << 30);
    let faults = Faults::default();
    let (log, task) = AuditLog::open_with_faults(&cfg, faults.clone())
        .await
        .unwrap();
    assert_eq!(log.append(decision("before")).await.unwrap(), 1);
    (cfg, faults, log, task)
}

async fn close(log: AuditLog, task: AuditTask) {
    drop(log);
    task.handle.await.unwrap();
}

#[tokio::test]
async fn acked_events_are_on_disk_in_seq_order() {
    for sync in [SyncMode::Fsync, SyncMode::Flush] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), sync, 1 << 30);
        let (log, task) = AuditLog::open(&cfg).await.unwrap();
        for i in 1..=3 {
            assert_eq!(log.append(decision("a")).await.unwrap(), i);
            // Acknowledged means written: the line is in the file now, before close.
            assert_eq!(lines(&cfg.path).len() as u64, i);
        }
        assert_eq!(log.events_written(), 3);
        close(log, task).await;
        assert_eq!(verify_files(&[cfg.path]).unwrap().last_seq, Some(3));
    }
}

/// A thread with a runtime of its own (the threads that serve agents) has its waiters
/// answered: they get their seqs while the runtime that opened the log is not running at
/// all, each event on disk.
#[test]
fn waiters_on_another_runtime_are_answered_there() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), SyncMode::Fsync, 1 << 30);
    let opener = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (log, task) = opener.block_on(AuditLog::open(&cfg)).unwrap();
    // From here on `opener` is not driven until the other thread is done.
    let (done_tx, done) = std::sync::mpsc::channel();
    let agent_log = log.clone();
    let agent = std::thread::spawn(move || {
        let own = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let seqs = own.block_on(async move {
            let log = agent_log;
            let appends = (0..8).map(|i| {
                let log = log.clone();
                tokio::spawn(async move { log.append(decision(&format!("t{i}"))).await })
            });
            let mut seqs = Vec::new();
            for append in appends.collect::<Vec<_>>() {
                seqs.push(append.await.unwrap().unwrap());
            }
            seqs
        });
        let _ = done_tx.send(seqs);
    });
    let mut seqs = done
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("waiters on their own runtime are answered without the opener's");
    agent.join().unwrap();
    seqs.sort();
    assert_eq!(seqs, (1..=8).collect::<Vec<_>>());
    opener.block_on(close(log, task));
    assert_eq!(lines(&cfg.path).len(), 8);
    verify_files(std::slice::from_ref(&cfg.path)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_get_unique_ordered_seqs() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), SyncMode::Fsync, 1 << 30);
    let (log, task) = AuditLog::open(&cfg).await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..32 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for _ in 0..20 {
                seqs.push(log.append(decision(&format!("w{w}"))).await.unwrap());
            }
            (w, seqs)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let (w, seqs) = t.await.unwrap();
        assert!(
            seqs.windows(2).all(|p| p[0] < p[1]),
            "one writer's events stay in order"
        );
        all.extend(seqs.iter().map(|&s| (s, format!("w{w}"))));
    }
    all.sort();
    assert_eq!(
        all.iter().map(|p| p.0).collect::<Vec<_>>(),
        (1..=640).collect::<Vec<_>>()
    );
    close(log, task).await;
    let file = lines(&cfg.path);
    for (v, (seq, agent)) in file.iter().zip(&all) {
        assert_eq!(
            (v["seq"].as_u64().unwrap(), v["agent"].as_str().unwrap()),
            (*seq, &**agent)
        );
    }
    assert_eq!(verify_files(&[cfg.path]).unwrap().events, 640);
}

#[tokio::test]
async fn detached_events_keep_their_place_and_drain_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), SyncMode::Flush, 1 << 30);
    let (log, task) = AuditLog::open(&cfg).await.unwrap();
    log.append_detached(AuditEvent::new(Stage::Complete));
    assert_eq!(log.append(decision("a")).await.unwrap(), 2);
    log.append_detached(AuditEvent::new(Stage::Complete));
    close(log, task).await;
    let stages: Vec<_> = lines(&cfg.path)
        .iter()
        .map(|v| v["stage"].clone())
        .collect();
    assert_eq!(stages, ["complete", "decision", "complete"]);
}

/// A failing disk refuses the batch, leaves no partial line, and the chain carries on
/// without a hole once the disk recovers.
#[tokio::test]
async fn failing_disk_refuses_then_recovers_with_an_intact_chain() {
    for (write, sync, truncate) in [
        (true, false, false),
        (false, true, false),
        (true, false, true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (cfg, faults, log, task) = open_faulty_with_one_line(dir.path()).await;
        let len = std::fs::metadata(&cfg.path).unwrap().len();

        faults.fail_writes(write);
        faults.fail_syncs(sync);
        faults.fail_truncates(truncate);
        let err = log.append(decision("refused")).await.unwrap_err();
        assert!(matches!(err, AuditError::Io { .. }), "{err}");
        assert_eq!(log.write_errors(), 1);
        if !truncate {
            assert_eq!(std::fs::metadata(&cfg.path).unwrap().len(), len, "cut back");
        }

        faults.fail_writes(false);
        faults.fail_syncs(false);
        faults.fail_truncates(false);
        assert_eq!(
            log.append(decision("after")).await.unwrap(),
            2,
            "seq 2 was never acked"
        );
        close(log, task).await;
        let agents: Vec<_> = lines(&cfg.path)
            .iter()
            .map(|v| v["agent"].clone())
            .collect();
        assert_eq!(agents, ["before", "after"]);
        assert_eq!(verify_files(&[cfg.path]).unwrap().events, 2);
    }
}

/// Events queued while a batch fails are not chained onto it: they are written after it,
/// chained onto the last durable line, and the log verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_queued_behind_a_failed_batch_chain_onto_the_durable_line() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, faults, log, task) = open_faulty_with_one_line(dir.path()).await;
    // The first batch's sync fails after 100 ms; the rest queue up behind it meanwhile.
    faults.fail_next_sync(std::time::Duration::from_millis(100));
    let first = {
        let log = log.clone();
        tokio::spawn(async move { log.append(decision("refused")).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let behind: Vec<_> = (0..32)
        .map(|_| {
            let log = log.clone();
            tokio::spawn(async move { log.append(decision("behind")).await })
        })
        .collect();
    assert!(first.await.unwrap().is_err());
    let mut seqs = Vec::new();
    for append in behind {
        seqs.push(append.await.unwrap().unwrap());
    }
    seqs.sort();
    assert_eq!(seqs, (2..=33).collect::<Vec<_>>(), "seq 2 was never acked");
    close(log, task).await;
    let agents: Vec<_> = lines(&cfg.path)
        .iter()
        .map(|v| v["agent"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(agents[0], "before");
    assert!(agents[1..].iter().all(|a| a == "behind"), "{agents:?}");
    assert_eq!(verify_files(&[cfg.path]).unwrap().events, 33);
}

#[tokio::test]
async fn restart_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), SyncMode::Fsync, 1 << 30);
    for round in 0..3u64 {
        let (log, task) = AuditLog::open(&cfg).await.unwrap();
        assert_eq!(log.append(decision("a")).await.unwrap(), round * 2 + 1);
        assert_eq!(log.append(decision("a")).await.unwrap(), round * 2 + 2);
        close(log, task).await;
    }
    assert_eq!(verify_files(&[cfg.path]).unwrap().events, 6);
}

#[tokio::test]
async fn torn_tail_is_cut_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), SyncMode::Fsync, 1 << 30);
    let (log, task) = AuditLog::open(&cfg).await.unwrap();
    log.append(decision("a")).await.unwrap();
    log.append(decision("a")).await.unwrap();
    close(log, task).await;
    let intact = std::fs::read(&cfg.path).unwrap();

    // A crash mid-write (no newline), then a damaged complete last line.
    for (tail, reason) in [
        (&b"{\"seq\":3,\"timesta"[..], "no trailing newline"),
        (&b"{\"seq\":3,\"garbage\":1}\n"[..], "does not check"),
    ] {
        let mut bytes = intact.clone();
        bytes.extend_from_slice(tail);
        std::fs::write(&cfg.path, &bytes).unwrap();
        let (log, task) = AuditLog::open(&cfg).await.unwrap();
        assert_eq!(
            log.append(decision("b")).await.unwrap(),
            4,
            "recovery took seq 3"
        );
        close(log, task).await;
        let file = lines(&cfg.path);
        assert_eq!(file[2]["stage"], "recovery");
        assert_eq!(file[2]["bytes_dropped"], tail.len().to_string());
        assert!(file[2]["reason"].as_str().unwrap().contains(reason));
        assert_eq!(
            verify_files(std::slice::from_ref(&cfg.path))
                .unwrap()
                .events,
            4
        );
    }
}

#[tokio::test]
async fn damage_beyond_the_last_line_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), SyncMode::Fsync, 1 << 30);
    let (log, task) = AuditLog::open(&cfg).await.unwrap();
    for _ in 0..3 {
        log.append(decision("alice")).await.unwrap();
    }
    close(log, task).await;
    let text = std::fs::read_to_string(&cfg.path).unwrap();
    let mut damaged: Vec<&str> = text.lines().collect();
    let edited = damaged[1].replace("alice", "mallory");
    damaged[1] = &edited;
    damaged[2] = "garbage";
    std::fs::write(&cfg.path, damaged.join("\n") + "\n").unwrap();
    let err = AuditLog::open(&cfg).await.unwrap_err();
    assert!(matches!(err, AuditError::Corrupt { .. }), "{err}");
}

#[tokio::test]
async fn rotation_continues_the_chain_across_files_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), SyncMode::Flush, 2000);
    let (log, task) = AuditLog::open(&cfg).await.unwrap();
    for i in 1..=20 {
        assert_eq!(log.append(decision("a")).await.unwrap(), i);
    }
    close(log, task).await;
    let files = series(dir.path());
    assert!(files.len() >= 4, "{files:?}");
    for f in &files[..files.len() - 1] {
        let len = std::fs::metadata(f).unwrap().len();
        assert!((2000..2000 + 600).contains(&len), "{f:?} is {len} bytes");
    }
    assert_eq!(verify_files(&files).unwrap().events, 20);

    // Restart with an empty current file (as right after a rotation): the chain continues
    // from the newest rotated file.
    let had = lines(&cfg.path).len();
    std::fs::write(&cfg.path, "").unwrap();
    let (log, task) = AuditLog::open(&cfg).await.unwrap();
    let next = log.append(decision("a")).await.unwrap();
    close(log, task).await;
    let files = series(dir.path());
    let summary = verify_files(&files[..files.len() - 1]).unwrap();
    assert_eq!(next, summary.last_seq.unwrap() + 1);
    // If the emptied file held lines, the series now has a hole that verify must see.
    assert_eq!(verify_files(&files).is_ok(), had == 0);
    assert_eq!(
        verify_files(&[files[files.len() - 2].clone(), cfg.path.clone()])
            .unwrap()
            .last_seq,
        Some(next)
    );
}
