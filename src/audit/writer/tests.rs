//! The writer's batching: bounded batches from an overgrown channel, and when detached
//! events are taken.
// The writer under test is a plain thread on real time (see writer.rs).
#![allow(clippy::disallowed_types)]

use std::sync::mpsc;

use super::*;
use crate::audit::file::Faults;
use crate::audit::{AuditEvent, Stage};

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

fn detached() -> Queued {
    Queued {
        json: AuditEvent::new(Stage::Complete).to_json(),
        ack: None,
    }
}

/// A channel that grew past [`MAX_BATCH`] (a slow disk) is written in bounded batches,
/// in order, and a batch is never taken empty.
#[test]
fn an_overgrown_channel_is_taken_in_bounded_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = flush_writer(dir.path(), DETACHED_WAIT);
    let (events, queued) = mpsc::channel();
    for _ in 0..MAX_BATCH + 10 {
        events.send(detached()).unwrap();
    }
    drop(events);
    let mut sizes = Vec::new();
    while writer.take(&queued) {
        sizes.push(writer.batch.len());
        writer.commit();
    }
    assert_eq!(sizes, [MAX_BATCH, 10]);
    assert_eq!(writer.head.seq, (MAX_BATCH + 10) as u64);
}

/// Nobody waits for a detached event, so it does not get a write of its own while
/// traffic flows: alone, it is taken once it has waited `detached_wait`; an event with
/// a waiter ends the wait at once and takes it along, in order.
#[test]
fn a_detached_event_waits_for_an_awaited_one_or_its_time() {
    let dir = tempfile::tempdir().unwrap();
    let wait = Duration::from_millis(30);
    let mut writer = flush_writer(dir.path(), wait);
    let (events, queued) = mpsc::channel();
    events.send(detached()).unwrap();
    let start = Instant::now();
    assert!(writer.take(&queued));
    assert!(start.elapsed() >= wait, "taken after {:?}", start.elapsed());
    assert_eq!(writer.batch.len(), 1);
    writer.commit();

    // Now a long wait: only the awaited event can end it in time.
    writer.detached_wait = Duration::from_secs(10);
    events.send(detached()).unwrap();
    let (tx, mut rx) = oneshot::channel();
    let pusher = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        let json = AuditEvent::new(Stage::Complete).to_json();
        let ack = Some(tx);
        events.send(Queued { json, ack }).unwrap();
        events // kept open: only the waiter may end the wait
    });
    let start = Instant::now();
    assert!(writer.take(&queued));
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "the waiter did not end the wait"
    );
    let _events = pusher.join().unwrap();
    let awaited: Vec<bool> = writer.batch.iter().map(|e| e.ack.is_some()).collect();
    assert_eq!(awaited, [false, true]);
    writer.commit();
    assert_eq!(rx.try_recv().unwrap().unwrap(), 3);
}

/// A quiet writer blocks until anything comes (an idle sluice does not tick); a detached
/// event then still goes out after its wait, and closing the channel ends the writer once
/// everything is written.
#[test]
fn a_quiet_writer_wakes_for_any_event_and_for_close() {
    let dir = tempfile::tempdir().unwrap();
    let wait = Duration::from_millis(10);
    let mut writer = flush_writer(dir.path(), wait);
    let (events, queued) = mpsc::channel();
    let pusher = std::thread::spawn(move || {
        // Longer than the detached wait: the writer has gone quiet.
        std::thread::sleep(5 * wait);
        events.send(detached()).unwrap();
        std::thread::sleep(5 * wait);
        drop(events);
    });
    assert!(writer.take(&queued));
    assert_eq!(writer.batch.len(), 1);
    writer.commit();
    assert!(!writer.take(&queued), "closed and empty");
    pusher.join().unwrap();
    assert_eq!(writer.head.seq, 1);
}
