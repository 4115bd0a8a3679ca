//! Audit log throughput: append under group commit (fsync and flush, 1..64 concurrent
//! writers) and verify in MB/s. Files live under target/ (a real disk, so fsync is real).
//!
//! `cargo bench --bench audit`
// A benchmark measures real time.
#![allow(clippy::disallowed_types)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sluice::audit::verify::verify_files;
use sluice::audit::{AuditEvent, AuditLog, Stage};
use sluice::config::{AuditConfig, SyncMode};

fn event(i: u64) -> AuditEvent<'static> {
    let mut e = AuditEvent::new(Stage::Decision);
    e.request_id = Some(format!("0193a1b2-c3d4-7e5f-8a9b-{i:012x}").into());
    e.agent = Some("claude-code".into());
    e.auth = Some("token");
    e.source_ip = Some("10.1.2.3".into());
    e.user_agent = Some("kubectl/v1.33.0 (linux/amd64) kubernetes/abcdef".into());
    e.method = Some("PATCH".into());
    e.path = Some("/apis/apps/v1/namespaces/dev-web/deployments/web/scale".into());
    e.verb = Some("patch".into());
    e.api_group = Some("apps".into());
    e.api_version = Some("v1".into());
    e.namespace = Some("dev-web".into());
    e.resource = Some("deployments".into());
    e.subresource = Some("scale".into());
    e.name = Some("web".into());
    e.tier = Some(1);
    e.decision = Some("allow");
    e.reason = Some("runbook scale-web lowers T2 to T1".into());
    e.rule = Some("claude-code[0]".into());
    e
}

fn bench_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("audit-bench")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
}

fn config(dir: &tempfile::TempDir, sync: SyncMode) -> AuditConfig {
    AuditConfig {
        path: dir.path().join("audit.jsonl"),
        sync,
        rotate_bytes: 256 << 20,
    }
}

/// `iters` appends spread over `writers` concurrent tasks, each awaiting its acks.
///
/// The events are built before the clock starts: building one is the caller's cost, not
/// the log's. Writing each to JSON is timed, as `append` does it on the caller's thread.
async fn append_concurrently(log: &AuditLog, writers: u64, iters: u64) -> Duration {
    let events: Vec<Vec<AuditEvent<'static>>> = (0..writers)
        .map(|w| {
            (0..iters / writers + u64::from(w < iters % writers))
                .map(event)
                .collect()
        })
        .collect();
    let start = Instant::now();
    let tasks: Vec<_> = events
        .into_iter()
        .map(|events| {
            let log = log.clone();
            tokio::spawn(async move {
                for e in events {
                    log.append(e).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

fn append(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(5));
    // Every timed event is built in memory first (about 1.2 KB each): a short warm-up keeps
    // its doubling batches, and so that memory, small.
    group.warm_up_time(Duration::from_secs(1));
    group.sample_size(20);
    for (mode, sync, writer_counts) in [
        ("fsync", SyncMode::Fsync, &[1u64, 8, 64][..]),
        ("flush", SyncMode::Flush, &[1, 64][..]),
    ] {
        for &writers in writer_counts {
            let dir = bench_dir();
            let (log, _task) = rt.block_on(AuditLog::open(&config(&dir, sync))).unwrap();
            group.bench_function(BenchmarkId::new(mode, writers), |b| {
                b.to_async(&rt)
                    .iter_custom(|iters| append_concurrently(&log, writers, iters));
            });
        }
    }
    group.finish();
}

fn verify(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = bench_dir();
    let cfg = config(&dir, SyncMode::Flush);
    rt.block_on(async {
        let (log, task) = AuditLog::open(&cfg).await.unwrap();
        append_concurrently(&log, 64, 200_000).await;
        drop(log);
        task.handle.await.unwrap();
    });
    let files: Vec<PathBuf> = vec![cfg.path.clone()];
    let bytes = std::fs::metadata(&cfg.path).unwrap().len();
    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Bytes(bytes));
    group.sample_size(20);
    group.bench_function(format!("{}MB", bytes >> 20), |b| {
        b.iter(|| verify_files(&files).unwrap());
    });
    group.finish();
}

criterion_group!(benches, append, verify);
criterion_main!(benches);
