//! Group commit: callers queue events into a shared open batch; one thread writes it.
//!
//! LIFECYCLE of a batch: callers [`Queue::push`] their events (fields already written as
//! JSON on their own thread) into the open batch; the queue's lock fixes the order. The
//! writer thread takes the whole open batch, and, outside the lock while the next batch
//! fills, gives each event its seq, timestamp and prev_hash, hashes it, `write`s the batch
//! in one call and, with sync: fsync, `fdatasync`s it. Only then is every waiter answered
//! with its seq (through a task on the runtime, see [`spawn_acker`]). If the write or the
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

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::event::Encoded;
use super::file::LogFile;
use super::line::{ChainHead, encode};
use super::rotate::rotate;
use super::timestamp::Utc;
use super::{AuditError, Stats};
use crate::config::SyncMode;

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
pub(crate) type Ack = Option<oneshot::Sender<Result<u64, AuditError>>>;

/// The open batch, shared by every caller and the writer thread.
#[derive(Debug)]
pub(crate) struct Queue {
    open: Mutex<Batch>,
    /// Signalled when the writer sleeps and a batch opens, and when the log closes.
    wake: Condvar,
}

#[derive(Debug)]
struct Batch {
    /// The batch's events, their fields written by their callers…
    events: Vec<Encoded>,
    /// …and one waiter an event, in order.
    acks: Vec<Ack>,
    /// How many of `acks` are waiters (not detached).
    waiters: usize,
    /// Whether the writer sleeps on `wake`, and for what: whoever brings it must signal.
    sleep: Sleep,
    /// The writer lingers until the batch holds this many waiters: whoever brings it there
    /// must signal (0: it does not linger).
    linger_for: usize,
    /// Every handle is gone: write what is left, then stop.
    closed: bool,
}

/// The writer's sleep, as callers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sleep {
    /// Writing, or about to look at the batch: nobody signals.
    Awake,
    /// Until an event with a waiter comes (or [`DETACHED_WAIT`] passes).
    ForWaiter,
    /// Until any event comes: nothing came for a whole [`DETACHED_WAIT`].
    ForAny,
}

impl Queue {
    pub fn new() -> Queue {
        Queue {
            open: Mutex::new(Batch {
                events: Vec::with_capacity(256),
                acks: Vec::with_capacity(256),
                waiters: 0,
                sleep: Sleep::Awake,
                linger_for: 0,
                closed: false,
            }),
            wake: Condvar::new(),
        }
    }

    /// Queues `event` in the open batch; `ack` hears its seq once it is durable.
    pub fn push(&self, event: Encoded, ack: Ack) -> Result<(), Ack> {
        let mut batch = self.lock();
        if batch.closed {
            return Err(ack);
        }
        let waiter = ack.is_some();
        batch.events.push(event);
        batch.acks.push(ack);
        batch.waiters += usize::from(waiter);
        let wakes = match batch.sleep {
            Sleep::Awake => false,
            Sleep::ForWaiter => waiter,
            Sleep::ForAny => true,
        };
        if wakes || (waiter && batch.waiters == batch.linger_for) {
            batch.sleep = Sleep::Awake;
            batch.linger_for = 0;
            self.wake.notify_one();
        }
        Ok(())
    }

    /// No more events will come: the writer drains what is open and stops.
    pub fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }

    /// The lock, even if a thread panicked holding it: nothing done under it can panic
    /// (two pushes and a swap; allocation failure aborts), so a poisoned lock still
    /// guards a whole batch.
    fn lock(&self) -> MutexGuard<'_, Batch> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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
    events: Vec<Encoded>,
    acks: Vec<Ack>,
    buf: Vec<u8>,
    flight_head: ChainHead,
    /// How many waiters the last batch had, and how long its sync took.
    last_waiters: usize,
    last_sync: Duration,
    /// [`DETACHED_WAIT`] (tests shorten or lengthen it).
    detached_wait: Duration,
    /// Where durable batches' waiters go to be answered, once the writer runs.
    acker: Option<mpsc::UnboundedSender<Durable>>,
    stats: Arc<Stats>,
}

/// A durable batch's waiters, the first of them holding `first_seq`, and its events, to
/// be freed on the runtime's threads that allocated them.
struct Durable {
    first_seq: u64,
    acks: Vec<Ack>,
    events: Vec<Encoded>,
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
            events: Vec::with_capacity(256),
            acks: Vec::with_capacity(256),
            buf: Vec::with_capacity(64 * 1024),
            flight_head: head,
            last_waiters: 0,
            last_sync: Duration::ZERO,
            detached_wait: DETACHED_WAIT,
            acker: None,
            stats,
        }
    }

    /// Writes batches from `queue` until it is closed and empty, then syncs once more.
    /// Blocking: runs on its own thread (`spawn_blocking`).
    pub fn run(mut self, queue: &Queue) {
        self.acker = spawn_acker();
        while self.take(queue) {
            self.commit();
        }
        if let Err(error) = self.file.sync() {
            tracing::error!(path = %self.file.path().display(), %error, "audit log: final sync failed");
        }
    }

    /// Writes one event now, before the queue exists (the `recovery` event on open).
    pub fn write_now(&mut self, event: Encoded) -> Result<u64, AuditError> {
        let (tx, mut rx) = oneshot::channel();
        self.events.push(event);
        self.acks.push(Some(tx));
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
        let mut batch = queue.lock();
        let mut quiet = false;
        while batch.waiters == 0 && !batch.closed {
            if quiet && batch.acks.is_empty() {
                batch.sleep = Sleep::ForAny;
                batch = queue
                    .wake
                    .wait(batch)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                quiet = false;
                continue;
            }
            batch.sleep = Sleep::ForWaiter;
            let (woken, waited) = queue
                .wake
                .wait_timeout(batch, self.detached_wait)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            batch = woken;
            if waited.timed_out() {
                if !batch.acks.is_empty() {
                    break;
                }
                quiet = true;
            }
        }
        batch.sleep = Sleep::Awake;
        if batch.acks.is_empty() {
            return false; // closed, and everything written
        }
        // (Detached events taken after their wait have no one to linger for.)
        let fewer = 0 < batch.waiters && batch.waiters < self.last_waiters;
        if self.sync == SyncMode::Fsync && fewer && !batch.closed {
            batch.linger_for = self.last_waiters;
            let deadline = Instant::now() + LINGER.max(self.last_sync);
            while batch.linger_for != 0 && !batch.closed {
                let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                    break;
                };
                batch = queue
                    .wake
                    .wait_timeout(batch, left)
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .0;
            }
            batch.linger_for = 0;
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
            head = encode(event, &head, &Utc::now(), &mut self.buf);
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

    /// Answers the waiters of the batch just made durable, through the acker task when
    /// there is one.
    fn answer(&mut self, first_seq: u64) {
        if let Some(acker) = &self.acker {
            // The next batch is likely the size of this one.
            let len = self.acks.len();
            let durable = Durable {
                first_seq,
                acks: std::mem::replace(&mut self.acks, Vec::with_capacity(len)),
                events: std::mem::replace(&mut self.events, Vec::with_capacity(len)),
            };
            match acker.send(durable) {
                Ok(()) => return,
                // The task is gone (the runtime is shutting down): answer here.
                Err(mpsc::error::SendError(durable)) => self.acks = durable.acks,
            }
        }
        answer(first_seq, &mut self.acks);
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
        for ack in refused.into_iter().flatten() {
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
        while let Some(Durable {
            first_seq,
            mut acks,
            events,
        }) = rx.recv().await
        {
            answer(first_seq, &mut acks);
            drop(events);
        }
    });
    Some(tx)
}

/// Sends each waiter its seq, counting up from `first_seq`.
fn answer(first_seq: u64, acks: &mut Vec<Ack>) {
    for (seq, ack) in (first_seq..).zip(acks.drain(..)) {
        if let Some(ack) = ack {
            let _ = ack.send(Ok(seq));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::event::Stage;
    use crate::audit::file::Faults;

    /// A queue that grew past [`MAX_BATCH`] (a slow disk) is written in bounded batches,
    /// in order, and a batch is never taken empty.
    #[test]
    fn an_overgrown_queue_is_taken_in_bounded_batches() {
        let dir = tempfile::tempdir().unwrap();
        let file = LogFile::open(&dir.path().join("audit.jsonl"), Faults::default()).unwrap();
        let stats = Arc::new(Stats::default());
        let mut writer = Writer::new(
            file,
            ChainHead::GENESIS,
            0,
            SyncMode::Flush,
            u64::MAX,
            stats,
        );
        let queue = Queue::new();
        for _ in 0..MAX_BATCH + 10 {
            queue
                .push(crate::audit::AuditEvent::new(Stage::Complete).into(), None)
                .unwrap();
        }
        queue.close();
        let mut sizes = Vec::new();
        while writer.take(&queue) {
            sizes.push(writer.acks.len());
            writer.commit();
        }
        assert_eq!(sizes, [MAX_BATCH, 10]);
        assert_eq!(writer.head.seq, (MAX_BATCH + 10) as u64);
    }

    fn flush_writer(dir: &std::path::Path, detached_wait: Duration) -> Writer {
        let file = LogFile::open(&dir.join("audit.jsonl"), Faults::default()).unwrap();
        let mut writer = Writer::new(
            file,
            ChainHead::GENESIS,
            0,
            SyncMode::Flush,
            u64::MAX,
            Arc::new(Stats::default()),
        );
        writer.detached_wait = detached_wait;
        writer
    }

    fn complete() -> Encoded {
        crate::audit::AuditEvent::new(Stage::Complete).into()
    }

    /// Nobody waits for a detached event, so it does not get a write of its own while
    /// traffic flows: alone, it is taken once it has waited `detached_wait`; an event with
    /// a waiter wakes the writer at once and takes it along, in order.
    #[test]
    fn a_detached_event_waits_for_an_awaited_one_or_its_time() {
        let dir = tempfile::tempdir().unwrap();
        let wait = Duration::from_millis(30);
        let mut writer = flush_writer(dir.path(), wait);
        let queue = Queue::new();
        queue.push(complete(), None).unwrap();
        let start = Instant::now();
        assert!(writer.take(&queue));
        assert!(start.elapsed() >= wait, "taken after {:?}", start.elapsed());
        assert_eq!(writer.acks.len(), 1);
        writer.commit();

        // Now a long wait: only the awaited event can end the sleep in time.
        writer.detached_wait = Duration::from_secs(10);
        let queue = Arc::new(Queue::new());
        queue.push(complete(), None).unwrap();
        let (tx, mut rx) = oneshot::channel();
        let pusher = {
            let queue = queue.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                queue.push(complete(), Some(tx)).unwrap();
            })
        };
        let start = Instant::now();
        assert!(writer.take(&queue));
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the waiter did not wake it"
        );
        pusher.join().unwrap();
        assert_eq!(
            writer.acks.iter().map(Option::is_some).collect::<Vec<_>>(),
            [false, true]
        );
        writer.commit();
        assert_eq!(rx.try_recv().unwrap().unwrap(), 3);
    }

    /// After a quiet spell the writer sleeps until anything comes (an idle sluice does
    /// not tick), and a detached event then still goes out after its wait; closing wakes
    /// it and ends it once everything is written.
    #[test]
    fn a_quiet_writer_wakes_for_any_event_and_for_close() {
        let dir = tempfile::tempdir().unwrap();
        let wait = Duration::from_millis(10);
        let mut writer = flush_writer(dir.path(), wait);
        let queue = Arc::new(Queue::new());
        let pusher = {
            let queue = queue.clone();
            std::thread::spawn(move || {
                while queue.lock().sleep != Sleep::ForAny {
                    std::thread::sleep(Duration::from_millis(1));
                }
                queue.push(complete(), None).unwrap();
                while queue.lock().sleep != Sleep::ForAny {
                    std::thread::sleep(Duration::from_millis(1));
                }
                queue.close();
            })
        };
        assert!(writer.take(&queue));
        assert_eq!(writer.acks.len(), 1);
        writer.commit();
        assert!(!writer.take(&queue), "closed and empty");
        pusher.join().unwrap();
        assert_eq!(writer.head.seq, 1);
    }
}
