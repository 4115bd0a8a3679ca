//! The hash-chained JSONL audit log (DESIGN.md "Audit log").
//!
//! Callers write their events to JSON and send them down one channel, whose order is the
//! log's; one writer thread chains, hashes and writes what has queued up as one batch
//! (group commit) and acknowledges each event only once it is as durable as `audit.sync`
//! says.
//!
//! ```text
//! event.rs      AuditEvent: the fields a caller fills in, written to JSON by serde
//! line.rs       framing an event's JSON with seq, timestamp, prev_hash and hash (the bytes hashed are the bytes written)
//! writer.rs     the writer thread: take a batch from the channel, chain, write, sync, acknowledge; roll back on failure
//! file.rs       the file operations, with injectable faults for tests
//! recover.rs    resuming an existing log; cutting a torn tail
//! rotate.rs     renaming a full file aside; finding the newest rotated file
//! check.rs      checking one line at known places, without a JSON parse
//! verify.rs     `sluice verify`: checking a whole series
//! report.rs     what verify reports: a summary or the first bad line
//! ```

mod check;
mod event;
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
use std::sync::mpsc;

use tokio::sync::oneshot;

use crate::config::AuditConfig;
use writer::{Queued, Writer};

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

/// A cheap, clonable handle to the log. The last one dropped closes the channel, so the
/// writer writes what is left and stops.
#[derive(Debug, Clone)]
pub struct AuditLog {
    events: mpsc::Sender<Queued>,
    stats: Arc<Stats>,
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
        let config = config.clone();
        let writer_stats = stats.clone();
        let writer = tokio::task::spawn_blocking(move || resume(&config, faults, writer_stats))
            .await
            .map_err(|_| AuditError::Closed)??;
        let (events, queued) = mpsc::channel();
        let handle = tokio::task::spawn_blocking(move || writer.run(queued));
        Ok((AuditLog { events, stats }, AuditTask { handle }))
    }

    /// Appends `event` and waits until it is durable; returns its seq. The event is written
    /// to JSON here, on the caller's thread.
    pub async fn append(&self, event: AuditEvent<'_>) -> Result<u64, AuditError> {
        let (ack, done) = oneshot::channel();
        let json = event.to_json();
        self.events
            .send(Queued {
                json,
                ack: Some(ack),
            })
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
        let json = event.to_json();
        if self.events.send(Queued { json, ack: None }).is_err() {
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

/// Resumes the log's chain and makes its writer; records a cut torn tail first of all.
fn resume(config: &AuditConfig, faults: Faults, stats: Arc<Stats>) -> Result<Writer, AuditError> {
    let resumed = recover::resume(&config.path, faults)?;
    let mut writer = Writer::new(
        resumed.file,
        resumed.head,
        resumed.offset,
        config.sync,
        config.rotate_bytes,
        stats,
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
    Ok(writer)
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
