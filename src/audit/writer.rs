//! Group commit: callers queue events into a shared open batch; one thread writes it.
//!
//! LIFECYCLE of a batch: callers [`Queue::push`] their events (fields already written as
//! JSON on their own thread) into the open batch; the queue's lock fixes the order. The
//! writer thread takes the whole open batch, and, outside the lock while the next batch
//! fills, gives each event its seq, timestamp and prev_hash, hashes it, `write`s the batch
//! in one call and, with sync: fsync, `fdatasync`s it. Only then is every waiter answered
//! with its seq (through a task on the waiter's runtime, see [`Ackers`]). If the write or the
//! sync fails, every event of the batch is answered with the error (its request is
//! refused, nothing forwarded), the file is cut back to the last acknowledged byte so no
//! half-written line stays in the chain, and the next batch is chained onto the last
//! durable line.
//!
//! The writer sleeps on a condition variable when there is nothing to write, and only a
//! caller that finds it asleep signals it: polling the queue instead cost a third of
//! sluice's CPU under load (`sched_yield` and the scheduler), CPU the proxy and its agents
//! needed on a small machine.
//!
//! A detached event (a `complete` event, a refusal's decision: nobody waits for it) does not
//! wake the writer while traffic flows: it goes out with the next event someone waits for,
//! or at the latest [`DETACHED_WAIT`] after the writer last looked. With one request at a
//! time, waking the writer for each request's `complete` event cost a thread switch, a
//! `write` and most often an `fdatasync` of its own between two requests (about a quarter
//! of sluice's CPU a request, `benches/cpu-split.sh` at one connection). After a quiet
//! [`DETACHED_WAIT`] the writer sleeps until any event comes, so an idle sluice does not
//! tick. On close everything queued is written.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot};

use super::file::LogFile;
use super::line::{ChainHead, frame};
use super::rotate::rotate;
use super::{AuditError, Stats};
use crate::config::SyncMode;
pub(crate) use queue::Queue;

mod queue;

/// How long an fsync batch may wait to grow back to the previous batch's waiters, or as long
/// as the last sync took if that is longer (on a slow disk a full batch is worth more):
/// callers woken by the last ack are re-submitting, and one fsync for all of them beats two.
const LINGER: Duration = Duration::from_micros(200);

/// How long a detached event may wait in the queue for an event someone waits for, before
/// the writer writes it anyway: what a crash of the process (not a clean stop, which
/// drains the queue) can cost of `complete` events, on top of those not yet queued.
pub(crate) const DETACHED_WAIT: Duration = Duration::from_millis(20);

/// At most this many events go into one write, to bound the writer's buffer when a slow
/// disk lets the queue grow; it also bounds how far a file can run past `rotate_bytes`
/// (rotation happens between two writes, never inside one).
const MAX_BATCH: usize = 4096;

/// Where an event's seq (or the reason it was refused) goes; `None` for a detached event.
pub(crate) type Ack = Option<Waiter>;

/// Someone waiting for an event to be durable, and which acker answers them.
#[derive(Debug)]
pub(crate) struct Waiter {
    pub(crate) tx: oneshot::Sender<Result<u64, AuditError>>,
    pub(crate) route: Route,
}

/// An index into [`Ackers`].
pub(crate) type Route = usize;

/// The route of a waiter the writer answers itself.
const ANSWER_HERE: Route = Route::MAX;

/// The tasks that answer durable batches' waiters: one for each runtime whose tasks wait on
/// the log, and each waiter is answered by its own runtime's.
///
/// Why tasks: waking a task from outside its runtime (the writer's thread) takes the
/// runtime's shared queue lock and often a syscall to unpark it, 1–2.5 µs an event measured
/// at 64 writers, on the writer's critical path. From a task on the waiter's runtime the
/// wakes are local, so a batch costs the writer one remote wake a runtime instead of one an
/// event. With a runtime a thread ([`crate::listener::AgentThreads`]), one acker for all
/// would wake its own thread and then each waiter's thread, an event at a time.
#[derive(Debug, Default)]
pub(crate) struct Ackers(ArcSwap<Vec<(tokio::runtime::Id, mpsc::UnboundedSender<Durable>)>>);

impl Ackers {
    /// The route to the current runtime's acker, started on first use; `None` outside a
    /// runtime (its waiters are then answered by the writer itself).
    pub fn route_here(&self) -> Option<Route> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let id = runtime.id();
        let find = |ackers: &[(tokio::runtime::Id, _)]| ackers.iter().position(|a| a.0 == id);
        if let Some(route) = find(&self.0.load()) {
            return Some(route);
        }
        let (tx, mut rx) = mpsc::unbounded_channel::<Durable>();
        runtime.spawn(async move {
            while let Some(Durable { acks, events }) = rx.recv().await {
                answer(acks);
                drop(events);
            }
        });
        let mut route = 0;
        self.0.rcu(|ackers| {
            let mut ackers = Vec::clone(ackers);
            // Another handle on this runtime may have started one meanwhile: share it (this
            // one's task ends with its sender).
            route = find(&ackers).unwrap_or_else(|| {
                ackers.push((id, tx.clone()));
                ackers.len() - 1
            });
            ackers
        });
        Some(route)
    }
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
    /// The batch in flight, taken from the queue (its vectors are swapped back and forth),
    /// its lines, and the chain head after its last line.
    events: Vec<Vec<u8>>,
    acks: Vec<Ack>,
    buf: Vec<u8>,
    flight_head: ChainHead,
    /// How many waiters the last batch had, and how long its sync took.
    last_waiters: usize,
    last_sync: Duration,
    /// [`DETACHED_WAIT`] (tests shorten or lengthen it).
    detached_wait: Duration,
    /// Where durable batches' waiters go to be answered.
    ackers: Arc<Ackers>,
    stats: Arc<Stats>,
}

/// Waiters of a durable batch that one acker answers, with their seqs, and events of the
/// batch, to be freed on a runtime's thread (where they were allocated, most likely).
#[derive(Debug, Default)]
pub(crate) struct Durable {
    acks: Vec<(u64, Waiter)>,
    events: Vec<Vec<u8>>,
}

impl Writer {
    pub fn new(
        file: LogFile,
        head: ChainHead,
        offset: u64,
        sync: SyncMode,
        rotate_bytes: u64,
        stats: Arc<Stats>,
        ackers: Arc<Ackers>,
    ) -> Writer {
        Writer {
            file,
            sync,
            rotate_bytes,
            head,
            offset,
            dirty: false,
            events: Vec::with_capacity(256),
            acks: Vec::with_capacity(256),
            buf: Vec::with_capacity(64 * 1024),
            flight_head: head,
            last_waiters: 0,
            last_sync: Duration::ZERO,
            detached_wait: DETACHED_WAIT,
            ackers,
            stats,
        }
    }

    /// Writes batches from `queue` until it is closed and empty, then syncs once more.
    /// Blocking: runs on its own thread (`spawn_blocking`).
    pub fn run(mut self, queue: &Queue) {
        while self.take(queue) {
            self.commit();
        }
        if let Err(error) = self.file.sync() {
            tracing::error!(path = %self.file.path().display(), %error, "audit log: final sync failed");
        }
    }

    /// Writes one event now, before the queue exists (the `recovery` event on open).
    pub fn write_now(&mut self, event: Vec<u8>) -> Result<u64, AuditError> {
        let (tx, mut rx) = oneshot::channel();
        self.events.push(event);
        let route = ANSWER_HERE; // at once: `rx` is read below
        self.acks.push(Some(Waiter { tx, route }));
        self.encode_batch();
        self.commit();
        rx.try_recv().unwrap_or(Err(AuditError::Closed))
    }

    /// Takes the open batch (up to [`MAX_BATCH`] events of it), sleeping until it holds an
    /// event someone waits for (or detached ones waited [`DETACHED_WAIT`]), and encodes it;
    /// `false` once the queue is closed and empty. With fsync, lingers (asleep) for up to
    /// [`LINGER`] (or the last sync's duration) while the batch has fewer waiters than the
    /// last one had.
    fn take(&mut self, queue: &Queue) -> bool {
        let mut batch = queue.wait_for_batch(self.detached_wait);
        if batch.acks.is_empty() {
            return false; // closed, and everything written
        }
        // (Detached events taken after their wait have no one to linger for.)
        let fewer = 0 < batch.waiters && batch.waiters < self.last_waiters;
        if self.sync == SyncMode::Fsync && fewer && !batch.closed {
            let deadline = Instant::now() + LINGER.max(self.last_sync);
            batch = queue.linger(batch, self.last_waiters, deadline);
        }
        let waiters = if batch.acks.len() > MAX_BATCH {
            self.events.extend(batch.events.drain(..MAX_BATCH));
            self.acks.extend(batch.acks.drain(..MAX_BATCH));
            let taken = self.acks.iter().filter(|ack| ack.is_some()).count();
            batch.waiters -= taken;
            taken
        } else {
            std::mem::swap(&mut batch.events, &mut self.events);
            std::mem::swap(&mut batch.acks, &mut self.acks);
            std::mem::take(&mut batch.waiters)
        };
        self.last_waiters = waiters;
        drop(batch);
        // Outside the lock, while callers go on queueing the next batch.
        self.encode_batch();
        true
    }

    /// Gives each event of the batch in flight its seq, timestamp and prev_hash, chained
    /// onto the last durable line, into one buffer.
    fn encode_batch(&mut self) {
        let mut head = self.head;
        for event in &self.events {
            head = frame(event, &head, SystemTime::now(), &mut self.buf);
        }
        self.flight_head = head;
    }

    /// Writes the batch in flight (and syncs it, with fsync), then answers every waiter:
    /// its seq, or the error that refused it.
    fn commit(&mut self) {
        let first_seq = self.head.seq + 1;
        let n = self.acks.len() as u64;
        match self.write_batch() {
            Ok(()) => {
                self.head = self.flight_head;
                self.offset += self.buf.len() as u64;
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
        self.events.clear();
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
                SyncMode::Fsync => {
                    let start = Instant::now();
                    let synced = self.file.sync();
                    self.last_sync = start.elapsed();
                    synced
                }
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

    /// Answers the waiters of the batch just made durable, through their runtimes' ackers
    /// where there are some.
    fn answer(&mut self, first_seq: u64) {
        let ackers = self.ackers.0.load();
        let mut durable: Vec<Durable> = ackers.iter().map(|_| Durable::default()).collect();
        let mut last_route = None;
        let n = self.acks.len();
        for (seq, ack) in (first_seq..).zip(self.acks.drain(..)) {
            let Some(waiter) = ack else { continue };
            match durable.get_mut(waiter.route) {
                Some(routed) => {
                    if routed.acks.capacity() == 0 {
                        routed.acks.reserve(n);
                    }
                    last_route = Some(waiter.route);
                    routed.acks.push((seq, waiter));
                }
                None => answer(vec![(seq, waiter)]),
            }
        }
        // The events go along to a runtime woken anyway, whole (the next batch is likely
        // the size of this one).
        if let Some(route) = last_route {
            let len = self.events.len();
            durable[route].events = std::mem::replace(&mut self.events, Vec::with_capacity(len));
        }
        for ((_, acker), routed) in ackers.iter().zip(durable) {
            if routed.acks.is_empty() && routed.events.is_empty() {
                continue;
            }
            if let Err(mpsc::error::SendError(routed)) = acker.send(routed) {
                // The task is gone (its runtime is shutting down): answer here.
                answer(routed.acks);
            }
        }
    }

    /// Refuses the failed batch; the next one is encoded from the durable head.
    fn fail(&mut self, error: std::io::Error) {
        let refused = std::mem::take(&mut self.acks);
        self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
        self.stats.failing.store(true, Ordering::Relaxed);
        let n = refused.len() as u64;
        self.stats.events_failed.fetch_add(n, Ordering::Relaxed);
        let detached = refused.iter().filter(|ack| ack.is_none()).count();
        tracing::error!(
            path = %self.file.path().display(),
            %error,
            events = n,
            detached,
            "audit log: write failed; events refused"
        );
        for waiter in refused.into_iter().flatten() {
            let _ = waiter.tx.send(Err(AuditError::Io {
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

/// Sends each waiter its seq.
fn answer(acks: Vec<(u64, Waiter)>) {
    for (seq, waiter) in acks {
        let _ = waiter.tx.send(Ok(seq));
    }
}

#[cfg(test)]
mod tests;
