//! The writer's batching: bounded batches from an overgrown queue, and when detached
//! events are taken.

use super::queue::Sleep;
use super::*;
use crate::audit::Stage;
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
        Arc::default(),
    );
    let queue = Queue::new();
    for _ in 0..MAX_BATCH + 10 {
        queue
            .push(
                crate::audit::AuditEvent::new(Stage::Complete).to_json(),
                None,
            )
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
        Arc::default(),
    );
    writer.detached_wait = detached_wait;
    writer
}

fn complete() -> Vec<u8> {
    crate::audit::AuditEvent::new(Stage::Complete).to_json()
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
            queue
                .push(complete(), Some(Waiter { tx, route: 0 }))
                .unwrap();
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
