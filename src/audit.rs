//! The hash-chained JSONL audit log (DESIGN.md "Audit log").
//!
//! Callers queue their events into one shared batch, in the order its lock gives them; one
//! writer thread chains, hashes and writes each batch whole (group commit) and acknowledges
//! each event only once it is as durable as `audit.sync` says.
//!
//! ```text
//! event.rs      AuditEvent: the fields a caller fills in, written to JSON by serde
//! line.rs       framing an event's JSON with seq, timestamp, prev_hash and hash (the bytes hashed are the bytes written)
//! writer.rs     the shared batch and the writer thread: chain, write, sync, acknowledge; roll back on failure
//! file.rs       the file operations, with injectable faults for tests
//! recover.rs    resuming an existing log; cutting a torn tail
//! rotate.rs     renaming a full file aside; finding the newest rotated file
//! check.rs      checking one line at known places, without a JSON parse
//! blocks.rs     checking a block's lines on every core (for verify)
//! verify.rs     `sluice verify`: checking a whole series
//! report.rs     what verify reports: a summary or the first bad line
//! ```

mod blocks;
mod check;
pub mod event;
mod file;
mod line;
mod recover;
mod report;
mod rotate;
pub mod verify;
mod writer;

#[cfg(test)]
mod proptests;

pub use event::{AuditEvent, Stage};
pub use file::Faults;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::oneshot;

use crate::config::AuditConfig;
use writer::{Ackers, Queue, Route, Waiter, Writer};

/// Why an event could not be made durable; the request that needed it is refused (503).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("audit writer has stopped")]
    Closed,
    /// The existing log does not end in an intact line even after cutting a torn tail:
    /// that is damage, not a crash, and sluice will not write onto it.
    #[error("audit log {path} is damaged: {detail}")]
    Corrupt { path: PathBuf, detail: String },
}

/// A cheap, clonable handle to the log.
#[derive(Debug, Clone)]
pub struct AuditLog {
    queue: Arc<Handles>,
    stats: Arc<Stats>,
    ackers: Arc<Ackers>,
    /// Which acker answers this handle's waiters.
    route: Route,
}

/// The queue, as long as any [`AuditLog`] holds it; the last one gone closes it, so the
/// writer drains what is left and stops.
#[derive(Debug)]
struct Handles(Arc<Queue>);

impl Drop for Handles {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Counters the writer keeps for metrics.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    write_errors: AtomicU64,
    events_written: AtomicU64,
    events_failed: AtomicU64,
    /// Whether the most recent write or sync failed (for `/readyz`).
    pub(crate) failing: std::sync::atomic::AtomicBool,
}

/// The writer task; await it after dropping every [`AuditLog`] to flush the tail.
#[derive(Debug)]
pub struct AuditTask {
    pub handle: tokio::task::JoinHandle<()>,
}

impl AuditLog {
    /// Opens (or continues) the log at `config.path`: resumes seq and prev_hash, cuts a torn
    /// tail (recording a `recovery` event), and starts the writer task.
    pub async fn open(config: &AuditConfig) -> Result<(AuditLog, AuditTask), AuditError> {
        AuditLog::open_with_faults(config, Faults::default()).await
    }

    /// [`AuditLog::open`], with a handle that makes the disk fail on command (for tests).
    pub async fn open_with_faults(
        config: &AuditConfig,
        faults: Faults,
    ) -> Result<(AuditLog, AuditTask), AuditError> {
        let stats = Arc::new(Stats::default());
        let ackers = Arc::new(Ackers::default());
        let route = ackers.route_here().unwrap_or(0);
        let config = config.clone();
        let writer_stats = stats.clone();
        let writer_ackers = ackers.clone();
        let writer = tokio::task::spawn_blocking(move || {
            let resumed = recover::resume(&config.path, faults)?;
            let mut writer = Writer::new(
                resumed.file,
                resumed.head,
                resumed.offset,
                config.sync,
                config.rotate_bytes,
                writer_stats,
                writer_ackers,
            );
            if let Some(cut) = resumed.cut {
                tracing::warn!(
                    bytes = cut.bytes_dropped,
                    reason = cut.reason,
                    "audit log: torn tail cut off"
                );
                let mut event = AuditEvent::new(Stage::Recovery);
                event.reason = Some(cut.reason.into());
                event.details = vec![("bytes_dropped", cut.bytes_dropped.to_string())];
                writer.write_now(event.to_json())?;
            }
            Ok::<_, AuditError>(writer)
        })
        .await
        .map_err(|_| AuditError::Closed)??;
        let queue = Arc::new(Queue::new());
        let writer_queue = queue.clone();
        let handle = tokio::task::spawn_blocking(move || writer.run(&writer_queue));
        let queue = Arc::new(Handles(queue));
        let log = AuditLog {
            queue,
            stats,
            ackers,
            route,
        };
        Ok((log, AuditTask { handle }))
    }

    /// A handle whose waiters are answered by a task on the current runtime (one a
    /// runtime, started on first use): for a thread that runs a runtime of its own, so
    /// that the writer wakes it once a batch, not once an event (see `Ackers` in
    /// writer.rs).
    pub fn answered_on_this_runtime(&self) -> AuditLog {
        let mut log = self.clone();
        if let Some(route) = self.ackers.route_here() {
            log.route = route;
        }
        log
    }

    /// Appends `event` and waits until it is durable; returns its seq. The event is written
    /// to JSON here, on the caller's thread.
    pub async fn append(&self, event: AuditEvent<'_>) -> Result<u64, AuditError> {
        let (tx, done) = oneshot::channel();
        let waiter = Waiter {
            tx,
            route: self.route,
        };
        self.queue
            .0
            .push(event.to_json(), Some(waiter))
            .map_err(|_| AuditError::Closed)?;
        done.await.map_err(|_| AuditError::Closed)?
    }

    /// Whether the last write succeeded (for `/readyz`).
    pub fn health(&self) -> Result<(), String> {
        if self.stats.failing.load(Ordering::Relaxed) {
            Err("the last audit write failed; requests are refused until a write succeeds".into())
        } else {
            Ok(())
        }
    }

    /// Appends `event` without waiting (for `complete` events: ordering still holds).
    /// A failure is counted in [`AuditLog::write_errors`] and logged by the writer.
    pub fn append_detached(&self, event: AuditEvent<'_>) {
        if self.queue.0.push(event.to_json(), None).is_err() {
            self.stats.events_failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!("audit writer has stopped; detached event lost");
        }
    }

    /// Failed write/sync/rotate operations so far (each failed batch counts once).
    pub fn write_errors(&self) -> u64 {
        self.stats.write_errors.load(Ordering::Relaxed)
    }

    /// Events made durable so far.
    pub fn events_written(&self) -> u64 {
        self.stats.events_written.load(Ordering::Relaxed)
    }

    /// Events that could not be written (their requests were refused, or they were detached).
    pub fn events_failed(&self) -> u64 {
        self.stats.events_failed.load(Ordering::Relaxed)
    }
}

/// `event` as the first line of a new log, without its newline (test helper).
#[cfg(test)]
pub(crate) fn encode_line_for_tests(event: &AuditEvent<'_>, out: &mut Vec<u8>) {
    line::encode(event, &line::ChainHead::GENESIS, out);
    out.pop();
}

/// The chain head a line leaves behind (test helper for forging lines).
#[cfg(test)]
pub(crate) fn recover_head_of(line: &str) -> line::ChainHead {
    let facts = check::check_line(line.trim_end().as_bytes()).unwrap();
    line::ChainHead {
        seq: facts.seq,
        hash: facts.hash,
    }
}

#[cfg(test)]
mod tests;
