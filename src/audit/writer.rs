//! The writer task: the one place events get their seq and prev_hash.
//!
//! LIFECYCLE of a batch: take everything queued on the channel (group commit), encode it
//! into one buffer, `write` it in one call, `fdatasync` (sync: fsync) and only then answer
//! every waiter with its seq. If the write or the sync fails, every event of the batch is
//! answered with an error (its request is refused, nothing forwarded), the file is cut back
//! to the last acknowledged byte so no half-written line stays in the chain, and the chain
//! head rolls back to the last durable event. The next batch tries again.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};

use super::event::Encoded;
use super::file::LogFile;
use super::line::{ChainHead, encode};
use super::rotate::rotate;
use super::timestamp::Utc;
use super::{AuditError, Stats};
use crate::config::SyncMode;

/// At most this many events go into one write, to bound the buffer.
const MAX_BATCH: usize = 4096;
/// How long the writer keeps polling an empty queue before parking its thread: under load
/// the next event is microseconds away, and parking and waking costs more than that.
const SPIN: Duration = Duration::from_micros(50);
/// How long an fsync batch may wait to grow back to the previous batch's size: callers woken
/// by the last ack are re-submitting, and one fsync for all of them beats two.
const LINGER: Duration = Duration::from_micros(200);

/// One queued event and, unless detached, who waits for it to be durable.
pub(crate) struct Request {
    pub event: Encoded,
    pub ack: Option<oneshot::Sender<Result<u64, AuditError>>>,
}

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
    buf: Vec<u8>,
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
            buf: Vec::with_capacity(64 * 1024),
            stats,
        }
    }

    /// Runs until every sender is gone and the queue is empty, then syncs once more.
    /// Blocking: runs on its own thread (`spawn_blocking`).
    pub fn run(mut self, mut rx: mpsc::UnboundedReceiver<Request>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut last_len = 0;
        while gather(&mut rx, &mut batch, self.sync, last_len) {
            last_len = batch.len();
            self.commit_batch(&mut batch);
        }
        if let Err(error) = self.file.sync() {
            tracing::error!(path = %self.file.path().display(), %error, "audit log: final sync failed");
        }
    }

    /// Writes one event now, outside the channel (the `recovery` event on open).
    pub fn write_now(&mut self, event: Encoded) -> Result<u64, AuditError> {
        let (tx, mut rx) = oneshot::channel();
        let mut batch = vec![Request {
            event,
            ack: Some(tx),
        }];
        self.commit_batch(&mut batch);
        rx.try_recv().unwrap_or(Err(AuditError::Closed))
    }

    /// Commits `batch` in segments: a segment ends where the file reaches `rotate_bytes`,
    /// so rotation happens between two durable writes, never inside one.
    fn commit_batch(&mut self, batch: &mut Vec<Request>) {
        let mut i = 0;
        while i < batch.len() {
            let start = i;
            self.buf.clear();
            let mut head = self.head;
            while i < batch.len() {
                head = encode(&batch[i].event, &head, &Utc::now(), &mut self.buf);
                i += 1;
                if self.offset + self.buf.len() as u64 >= self.rotate_bytes {
                    break;
                }
            }
            match self.write_segment() {
                Ok(()) => {
                    let first_seq = self.head.seq + 1;
                    self.head = head;
                    self.offset += self.buf.len() as u64;
                    let n = (i - start) as u64;
                    self.stats.events_written.fetch_add(n, Ordering::Relaxed);
                    self.stats.failing.store(false, Ordering::Relaxed);
                    for (k, request) in batch[start..i].iter_mut().enumerate() {
                        if let Some(ack) = request.ack.take() {
                            let _ = ack.send(Ok(first_seq + k as u64));
                        }
                    }
                    if self.offset >= self.rotate_bytes {
                        self.rotate();
                    }
                }
                Err(error) => {
                    self.fail(&mut batch[start..], error);
                    break;
                }
            }
        }
        batch.clear();
    }

    fn write_segment(&mut self) -> std::io::Result<()> {
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

    /// Answers every event of a failed segment (and the rest of its batch) with the error.
    fn fail(&mut self, requests: &mut [Request], error: std::io::Error) {
        self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
        self.stats.failing.store(true, Ordering::Relaxed);
        let n = requests.len() as u64;
        self.stats.events_failed.fetch_add(n, Ordering::Relaxed);
        let detached = requests.iter().filter(|r| r.ack.is_none()).count();
        tracing::error!(
            path = %self.file.path().display(),
            %error,
            events = n,
            detached,
            "audit log: write failed; events refused"
        );
        for request in requests {
            if let Some(ack) = request.ack.take() {
                let _ = ack.send(Err(AuditError::Io {
                    path: self.file.path().to_path_buf(),
                    source: std::io::Error::new(error.kind(), error.to_string()),
                }));
            }
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

/// Fills `batch` with what is queued (group commit); false once every sender is gone and
/// the queue is empty.
fn gather(
    rx: &mut mpsc::UnboundedReceiver<Request>,
    batch: &mut Vec<Request>,
    sync: SyncMode,
    last_len: usize,
) -> bool {
    let first = match poll_for(rx, SPIN) {
        Ok(request) => request,
        Err(TryRecvError::Disconnected) => return false,
        Err(TryRecvError::Empty) => match rx.blocking_recv() {
            Some(request) => request,
            None => return false,
        },
    };
    batch.push(first);
    drain(rx, batch);
    if sync == SyncMode::Fsync && batch.len() < last_len {
        let deadline = Instant::now() + LINGER;
        while batch.len() < last_len && batch.len() < MAX_BATCH && Instant::now() < deadline {
            std::thread::yield_now();
            drain(rx, batch);
        }
    }
    true
}

fn drain(rx: &mut mpsc::UnboundedReceiver<Request>, batch: &mut Vec<Request>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(request) => batch.push(request),
            Err(_) => break,
        }
    }
}

/// Polls (yielding the CPU) for up to `spin` before giving up with `Empty`.
fn poll_for(
    rx: &mut mpsc::UnboundedReceiver<Request>,
    spin: Duration,
) -> Result<Request, TryRecvError> {
    let deadline = Instant::now() + spin;
    loop {
        match rx.try_recv() {
            Err(TryRecvError::Empty) if Instant::now() < deadline => std::thread::yield_now(),
            other => return other,
        }
    }
}
