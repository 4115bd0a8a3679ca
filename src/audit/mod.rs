//! The hash-chained JSONL audit log. (Skeleton: the audit work replaces the internals.)
//!
//! One writer task, fed by a channel, fixes the order of events, batches writes (group
//! commit) and acknowledges each event only once it is as durable as `audit.sync` says.

pub mod event;

pub use event::{AuditEvent, Stage};

use crate::config::AuditConfig;

/// Why an event could not be made durable; the request that needed it is refused (503).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("audit writer has stopped")]
    Closed,
}

/// A cheap, clonable handle to the writer task.
#[derive(Debug, Clone)]
pub struct AuditLog {
    _private: (),
}

/// The writer task; await it after dropping every [`AuditLog`] to flush the tail.
pub struct AuditTask {
    pub handle: tokio::task::JoinHandle<()>,
}

impl AuditLog {
    /// Opens (or continues) the log at `config.path`: resumes seq and prev_hash, cuts a torn
    /// tail (recording a `recovery` event), and starts the writer task.
    pub async fn open(config: &AuditConfig) -> Result<(AuditLog, AuditTask), AuditError> {
        let _ = config;
        Ok((
            AuditLog { _private: () },
            AuditTask {
                handle: tokio::spawn(async {}),
            },
        ))
    }

    /// Appends `event` and waits until it is durable; returns its seq.
    pub async fn append(&self, event: AuditEvent) -> Result<u64, AuditError> {
        let _ = event;
        Ok(0)
    }

    /// Whether the last write succeeded (for `/readyz`).
    pub fn health(&self) -> Result<(), String> {
        Ok(())
    }

    /// Appends `event` without waiting (for `complete` events: ordering still holds).
    pub fn append_detached(&self, event: AuditEvent) {
        let _ = event;
    }
}
