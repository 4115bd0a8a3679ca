//! The writer task: the one place events get their seq and prev_hash.
//!
//! LIFECYCLE of a batch: take everything queued on the channel (group commit), encoding
//! each event into one buffer as it is taken, `write` the buffer in one call, `fdatasync`
//! (sync: fsync) and only then answer every waiter with its seq (through a task on the
//! runtime, see [`spawn_acker`]). If the write or the sync fails, every event of the batch
//! is answered with an error (its request is refused, nothing forwarded), the file is cut
//! back to the last acknowledged byte so no half-written line stays in the chain, and the
//! chain head rolls back to the last durable event. The next batch tries again.

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
/// How long an fsync batch may wait to grow back to the previous batch's size.
const LINGER: Duration = Duration::from_micros(200);

/// One queued event and, unless detached, who waits for it to be durable.
pub(crate) struct Request {
    pub event: Encoded,
    pub ack: Option<Ack>,
}

/// Where an event's seq (or the reason it was refused) goes.
pub(crate) type Ack = oneshot::Sender<Result<u64, AuditError>>;

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
    /// The batch being gathered: its lines, encoded as their events arrive…
    buf: Vec<u8>,
    /// …the chain head after its last line…
    pending: ChainHead,
    /// …and its requests, in order: who waits for each line, and the events, which are
    /// dropped with the acks rather than here (freeing an event's Strings, allocated on
    /// another thread, was a fifth of this thread's time at 64 writers).
    requests: Vec<Request>,
    /// Where durable batches' requests go to be answered, once the writer runs.
    acker: Option<mpsc::UnboundedSender<Durable>>,
    stats: Arc<Stats>,
}

/// A durable batch's requests, the first of them holding `first_seq`.
struct Durable {
    first_seq: u64,
    requests: Vec<Request>,
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
            pending: head,
            requests: Vec::with_capacity(MAX_BATCH),
            acker: None,
            stats,
        }
    }

    /// Runs until every sender is gone and the queue is empty, then syncs once more.
    /// Blocking: runs on its own thread (`spawn_blocking`).
    pub fn run(mut self, mut rx: mpsc::UnboundedReceiver<Request>) {
        self.acker = spawn_acker();
        let mut last_len = 0;
        while let Some(first) = next_request(&mut rx) {
            self.take(first);
            self.fill(&mut rx, last_len);
            last_len = self.requests.len();
            self.commit();
        }
        if let Err(error) = self.file.sync() {
            tracing::error!(path = %self.file.path().display(), %error, "audit log: final sync failed");
        }
    }

    /// Writes one event now, outside the channel (the `recovery` event on open).
    pub fn write_now(&mut self, event: Encoded) -> Result<u64, AuditError> {
        let (tx, mut rx) = oneshot::channel();
        self.take(Request {
            event,
            ack: Some(tx),
        });
        self.commit();
        rx.try_recv().unwrap_or(Err(AuditError::Closed))
    }

    /// Encodes `request`'s line onto the batch right away, so that encoding and hashing
    /// overlap with the callers still submitting (group commit).
    fn take(&mut self, request: Request) {
        self.pending = encode(&request.event, &self.pending, &Utc::now(), &mut self.buf);
        self.requests.push(request);
    }

    /// Whether the batch must be written now: it is at its size bound, or it reaches
    /// `rotate_bytes`, so that rotation happens between two durable writes, never inside one.
    fn full(&self) -> bool {
        self.requests.len() >= MAX_BATCH || self.offset + self.buf.len() as u64 >= self.rotate_bytes
    }

    /// Takes what is queued into the batch. With fsync, waits up to [`LINGER`] for the
    /// batch to grow back to the previous one's size: callers woken by the last ack are
    /// re-submitting, and one fsync for all of them beats two.
    fn fill(&mut self, rx: &mut mpsc::UnboundedReceiver<Request>, last_len: usize) {
        let deadline = Instant::now() + LINGER;
        loop {
            while !self.full() {
                match rx.try_recv() {
                    Ok(request) => self.take(request),
                    Err(_) => break,
                }
            }
            let linger = self.sync == SyncMode::Fsync
                && self.requests.len() < last_len
                && !self.full()
                && Instant::now() < deadline;
            if !linger {
                return;
            }
            std::thread::yield_now();
        }
    }

    /// Writes the batch (and syncs it, with fsync), then answers every waiter: its seq, or
    /// the error that refused it.
    fn commit(&mut self) {
        match self.write_segment() {
            Ok(()) => {
                let first_seq = self.head.seq + 1;
                self.head = self.pending;
                self.offset += self.buf.len() as u64;
                let n = self.requests.len() as u64;
                self.stats.events_written.fetch_add(n, Ordering::Relaxed);
                self.stats.failing.store(false, Ordering::Relaxed);
                self.answer(first_seq);
                if self.offset >= self.rotate_bytes {
                    self.rotate();
                }
            }
            Err(error) => self.fail(error),
        }
        self.buf.clear();
        self.requests.clear();
        self.pending = self.head;
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

    /// Answers the waiters of the batch just made durable, through the acker task when
    /// there is one.
    fn answer(&mut self, first_seq: u64) {
        if let Some(acker) = &self.acker {
            // The next batch is likely the size of this one.
            let next = Vec::with_capacity(self.requests.len());
            let durable = Durable {
                first_seq,
                requests: std::mem::replace(&mut self.requests, next),
            };
            match acker.send(durable) {
                Ok(()) => return,
                // The task is gone (the runtime is shutting down): answer here.
                Err(mpsc::error::SendError(durable)) => self.requests = durable.requests,
            }
        }
        answer(first_seq, &mut self.requests);
    }

    /// Answers every event of a failed batch with the error.
    fn fail(&mut self, error: std::io::Error) {
        self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
        self.stats.failing.store(true, Ordering::Relaxed);
        let n = self.requests.len() as u64;
        self.stats.events_failed.fetch_add(n, Ordering::Relaxed);
        let detached = self.requests.iter().filter(|r| r.ack.is_none()).count();
        tracing::error!(
            path = %self.file.path().display(),
            %error,
            events = n,
            detached,
            "audit log: write failed; events refused"
        );
        for ack in self.requests.drain(..).filter_map(|r| r.ack) {
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

/// Starts the task that answers durable batches' waiters, on the runtime the writer was
/// started from.
///
/// Why a task: waking a task from outside its runtime (this thread) takes the runtime's
/// shared queue lock and often a syscall to unpark a worker, 1–2.5 µs an event measured at
/// 64 writers, on the writer's critical path. From a task on a worker the wakes go to that
/// worker's local queue, so a batch costs the writer one remote wake instead of one an event.
fn spawn_acker() -> Option<mpsc::UnboundedSender<Durable>> {
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Durable>();
    runtime.spawn(async move {
        while let Some(durable) = rx.recv().await {
            let mut requests = durable.requests;
            answer(durable.first_seq, &mut requests);
        }
    });
    Some(tx)
}

/// Sends each waiter its seq, counting up from `first_seq`; then drops the requests.
fn answer(first_seq: u64, requests: &mut Vec<Request>) {
    for (seq, request) in (first_seq..).zip(requests.iter_mut()) {
        if let Some(ack) = request.ack.take() {
            let _ = ack.send(Ok(seq));
        }
    }
    requests.clear();
}

/// The next request, waiting for it (spinning briefly, then parked); `None` once every
/// sender is gone and the queue is empty.
fn next_request(rx: &mut mpsc::UnboundedReceiver<Request>) -> Option<Request> {
    match poll_for(rx, SPIN) {
        Ok(request) => Some(request),
        Err(TryRecvError::Disconnected) => None,
        Err(TryRecvError::Empty) => rx.blocking_recv(),
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
