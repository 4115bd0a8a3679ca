//! The open batch: callers queue events into it, the writer thread takes it whole, and
//! each signals the other only when the other sleeps for what it brings (see the LIFECYCLE
//! note in `writer.rs`).

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::Ack;

/// The open batch, shared by every caller and the writer thread.
#[derive(Debug)]
pub(crate) struct Queue {
    open: Mutex<Batch>,
    /// Signalled when the writer sleeps and a batch opens, and when the log closes.
    wake: Condvar,
}

#[derive(Debug)]
pub(super) struct Batch {
    /// The batch's events, their fields written by their callers…
    pub(super) events: Vec<Vec<u8>>,
    /// …and one waiter an event, in order.
    pub(super) acks: Vec<Ack>,
    /// How many of `acks` are waiters (not detached).
    pub(super) waiters: usize,
    /// Whether the writer sleeps on `wake`, and for what: whoever brings it must signal.
    pub(super) sleep: Sleep,
    /// The writer lingers until the batch holds this many waiters: whoever brings it there
    /// must signal (0: it does not linger).
    linger_for: usize,
    /// Every handle is gone: write what is left, then stop.
    pub(super) closed: bool,
}

/// The writer's sleep, as callers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sleep {
    /// Writing, or about to look at the batch: nobody signals.
    Awake,
    /// Until an event with a waiter comes (or [`super::DETACHED_WAIT`] passes).
    ForWaiter,
    /// Until any event comes: nothing came for a whole [`super::DETACHED_WAIT`].
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
    pub fn push(&self, event: Vec<u8>, ack: Ack) -> Result<(), Ack> {
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

    /// The writer's side: sleeps until the open batch holds an event someone waits for,
    /// its detached events have waited `detached_wait`, or the queue is closed, and
    /// returns it locked (empty only when closed and drained). After a quiet
    /// `detached_wait` it sleeps until any event comes.
    pub(super) fn wait_for_batch(&self, detached_wait: Duration) -> MutexGuard<'_, Batch> {
        let mut batch = self.lock();
        let mut quiet = false;
        while batch.waiters == 0 && !batch.closed {
            if quiet && batch.acks.is_empty() {
                batch.sleep = Sleep::ForAny;
                batch = self.sleep(batch, None).0;
                quiet = false;
                continue;
            }
            batch.sleep = Sleep::ForWaiter;
            let timed_out;
            (batch, timed_out) = self.sleep(batch, Some(detached_wait));
            if timed_out {
                if !batch.acks.is_empty() {
                    break;
                }
                quiet = true;
            }
        }
        batch.sleep = Sleep::Awake;
        batch
    }

    /// The writer's side: sleeps (the lock released) until the batch holds `waiters`
    /// waiters, the queue closes, or `deadline` passes.
    pub(super) fn linger<'q>(
        &'q self,
        mut batch: MutexGuard<'q, Batch>,
        waiters: usize,
        deadline: Instant,
    ) -> MutexGuard<'q, Batch> {
        batch.linger_for = waiters;
        while batch.linger_for != 0 && !batch.closed {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            batch = self.sleep(batch, Some(left)).0;
        }
        batch.linger_for = 0;
        batch
    }

    /// Sleeps on `wake` (the lock released) until signalled, or for at most `limit`; true
    /// if the limit passed. A poisoned lock is taken as [`Queue::lock`] takes it.
    fn sleep<'q>(
        &'q self,
        batch: MutexGuard<'q, Batch>,
        limit: Option<Duration>,
    ) -> (MutexGuard<'q, Batch>, bool) {
        match limit {
            None => (
                self.wake
                    .wait(batch)
                    .unwrap_or_else(|poisoned| poisoned.into_inner()),
                false,
            ),
            Some(limit) => {
                let (batch, waited) = self
                    .wake
                    .wait_timeout(batch, limit)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                (batch, waited.timed_out())
            }
        }
    }

    /// The lock, even if a thread panicked holding it: nothing done under it can panic
    /// (two pushes and a swap; allocation failure aborts), so a poisoned lock still
    /// guards a whole batch.
    pub(super) fn lock(&self) -> MutexGuard<'_, Batch> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
