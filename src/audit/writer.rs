//! The writer: one thread fed by a channel, which fixes the log's order, writes events in
//! batches (group commit) and acknowledges each only once it is as durable as
//! `audit.sync` says.
//!
//! LIFECYCLE of a batch: callers send their events (already JSON, written on their own
//! thread) down the channel. The writer blocks for the first, takes whatever else is
//! queued, gives each event its seq, timestamp and prev_hash chained onto the last durable
//! line, `write`s the batch in one call and, with sync: fsync, `fdatasync`s it. Only then is
//! every waiter answered with its seq. Events sent meanwhile wait in the channel and make
//! the next batch: that is the group commit. If the write or the sync fails, every event of
//! the batch is answered with the error (its request is refused, nothing forwarded), the
//! file is cut back to the last acknowledged byte so no half-written line stays in the
//! chain, and the next batch is chained onto the last durable line. When every sender is
//! gone, what is queued is written and the writer stops.
// The writer is a plain thread waiting on std mpsc with real timeouts: tokio's paused
// time cannot reach it, so std's clock is the right one here.
#![allow(clippy::disallowed_types)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::oneshot;

use super::file::LogFile;
use super::line::{ChainHead, frame};
use super::rotate::rotate;
use super::{AuditError, Stats};
use crate::config::SyncMode;

/// How long a detached event (a `complete` event, a refusal's decision: nobody waits for
/// it) may wait for an event someone waits for, to share its write and sync: without this
/// every request costs two `fdatasync`s, and the next request's decision waits behind the
/// previous one's `complete`. It is also what a crash (not a clean stop, which drains the
/// channel) can cost of `complete` events, on top of those not yet sent.
pub(crate) const DETACHED_WAIT: Duration = Duration::from_millis(20);

/// At most this many events go into one write: bounds the writer's buffer when a slow disk
/// lets the channel grow, and how far a file can run past `rotate_bytes` (rotation happens
/// between two writes, never inside one).
const MAX_BATCH: usize = 4096;

/// An event on its way to the writer: its JSON object, and who waits for its seq (`None`
/// for a detached event).
#[derive(Debug)]
pub(crate) struct Queued {
    pub json: Vec<u8>,
    pub ack: Option<oneshot::Sender<Result<u64, AuditError>>>,
}

/// The writer thread's side: the file, and where the durable chain ends.
pub(crate) struct Writer {
    file: LogFile,
    sync: SyncMode,
    rotate_bytes: u64,
    /// The last durable line.
    head: ChainHead,
    /// The file's length up to the last durable line.
    offset: u64,
    /// A failed batch could not be cut back yet: cut before writing again.
    dirty: bool,
    /// The batch in flight, how many of its events someone waits for, its lines, and the
    /// chain head after its last line.
    batch: Vec<Queued>,
    waiters: usize,
    buf: Vec<u8>,
    flight_head: ChainHead,
    /// [`DETACHED_WAIT`] (tests shorten or lengthen it).
    detached_wait: Duration,
    stats: Arc<Stats>,
}

impl Writer {
    pub fn new(
        file: LogFile,
        head: ChainHead,
        offset: u64,
        sync: SyncMode,
        rotate_bytes: u64,
        stats: Arc<Stats>,
    ) -> Writer {
        Writer {
            file,
            sync,
            rotate_bytes,
            head,
            offset,
            dirty: false,
            batch: Vec::with_capacity(256),
            waiters: 0,
            buf: Vec::with_capacity(64 * 1024),
            flight_head: head,
            detached_wait: DETACHED_WAIT,
            stats,
        }
    }

    /// Writes batches from `events` until every sender is gone and nothing is left, then
    /// syncs once more. Blocking: runs on its own thread (`spawn_blocking`).
    pub fn run(mut self, events: Receiver<Queued>) {
        while self.take(&events) {
            self.commit();
        }
        if let Err(error) = self.file.sync() {
            tracing::error!(path = %self.file.path().display(), %error, "audit log: final sync failed");
        }
    }

    /// Writes one event now, before the channel exists (the `recovery` event on open).
    pub fn write_now(&mut self, json: Vec<u8>) -> Result<u64, AuditError> {
        let (tx, mut rx) = oneshot::channel();
        self.push(Queued {
            json,
            ack: Some(tx),
        });
        self.encode_batch();
        self.commit();
        rx.try_recv().unwrap_or(Err(AuditError::Closed))
    }

    /// Blocks for the next event, takes what else is queued (up to [`MAX_BATCH`]) and
    /// encodes the batch; `false` once every sender is gone and nothing is left. A batch of
    /// detached events alone waits up to [`DETACHED_WAIT`] for an event someone waits for.
    fn take(&mut self, events: &Receiver<Queued>) -> bool {
        let Ok(first) = events.recv() else {
            return false;
        };
        self.push(first);
        self.take_queued(events);
        let deadline = Instant::now() + self.detached_wait;
        while self.waiters == 0 && self.batch.len() < MAX_BATCH {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(next) = events.recv_timeout(left) else {
                break; // waited long enough, or every sender is gone
            };
            self.push(next);
            self.take_queued(events);
        }
        self.encode_batch();
        true
    }

    /// Adds what is already in the channel to the batch, without waiting.
    fn take_queued(&mut self, events: &Receiver<Queued>) {
        while self.batch.len() < MAX_BATCH {
            let Ok(next) = events.try_recv() else { return };
            self.push(next);
        }
    }

    fn push(&mut self, event: Queued) {
        self.waiters += usize::from(event.ack.is_some());
        self.batch.push(event);
    }

    /// Gives each event of the batch in flight its seq, timestamp and prev_hash, chained
    /// onto the last durable line, into one buffer.
    fn encode_batch(&mut self) {
        let mut head = self.head;
        for event in &self.batch {
            head = frame(&event.json, &head, SystemTime::now(), &mut self.buf);
        }
        self.flight_head = head;
    }

    /// Writes the batch in flight (and syncs it, with fsync), then answers every waiter:
    /// its seq, or the error that refused it.
    fn commit(&mut self) {
        let first_seq = self.head.seq + 1;
        let n = self.batch.len() as u64;
        match self.write_batch() {
            Ok(()) => {
                self.head = self.flight_head;
                self.offset += self.buf.len() as u64;
                self.stats.events_written.fetch_add(n, Ordering::Relaxed);
                self.stats.failing.store(false, Ordering::Relaxed);
                for (seq, event) in (first_seq..).zip(self.batch.drain(..)) {
                    if let Some(ack) = event.ack {
                        let _ = ack.send(Ok(seq));
                    }
                }
                if self.offset >= self.rotate_bytes {
                    self.rotate();
                }
            }
            Err(error) => self.fail(error),
        }
        self.buf.clear();
        self.batch.clear();
        self.waiters = 0;
    }

    fn write_batch(&mut self) -> std::io::Result<()> {
        if self.dirty {
            self.file.truncate(self.offset)?;
            self.dirty = false;
        }
        let written = self
            .file
            .write_all(&self.buf)
            .and_then(|()| match self.sync {
                SyncMode::Fsync => self.file.sync(),
                SyncMode::Flush => Ok(()),
            });
        if written.is_err() {
            // Never leave a half-written line in the chain: cut back to the last durable byte.
            if let Err(error) = self.file.truncate(self.offset) {
                tracing::error!(%error, "audit log: cannot cut back a failed write; will retry");
                self.dirty = true;
            }
        }
        written
    }

    /// Refuses the failed batch; the next one is encoded from the durable head.
    fn fail(&mut self, error: std::io::Error) {
        let n = self.batch.len() as u64;
        self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
        self.stats.failing.store(true, Ordering::Relaxed);
        self.stats.events_failed.fetch_add(n, Ordering::Relaxed);
        tracing::error!(
            path = %self.file.path().display(),
            %error,
            events = n,
            detached = n - self.waiters as u64,
            "audit log: write failed; events refused"
        );
        for ack in self.batch.drain(..).filter_map(|event| event.ack) {
            let _ = ack.send(Err(AuditError::Io {
                path: self.file.path().to_path_buf(),
                source: std::io::Error::new(error.kind(), error.to_string()),
            }));
        }
    }

    fn rotate(&mut self) {
        match rotate(&mut self.file) {
            Ok(rotated) => {
                self.offset = 0;
                tracing::info!(rotated = %rotated.display(), seq = self.head.seq, "audit log rotated");
            }
            Err(error) => {
                self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                self.stats.failing.store(true, Ordering::Relaxed);
                tracing::error!(%error, "audit log: rotation failed; still writing the full file");
            }
        }
    }
}

#[cfg(test)]
mod tests;
