//! What holding requests for approval costs: the heap bytes one held request adds (queue
//! entry, `Hold`, the task waiting on it) and the time to hold and approve 1000 at once.
//!
//! `cargo bench --bench approvals` prints the bytes-per-held-request figure first. A
//! counting global allocator measures live heap bytes, so the figure is exact for this
//! binary and independent of the allocator's page reuse (unlike an RSS delta).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use sluice::approval::{ApprovalView, Approvals, body_preview};
use sluice::audit::{AuditEvent, AuditLog, Stage};
use sluice::config::{ApprovalsConfig, AuditConfig, SyncMode};

/// Live heap bytes: every allocation adds its size, every free subtracts it.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const HELD: usize = 1000;

/// A configmap create as kubectl sends it, the typical held write.
const BODY: &[u8] = br#"{"apiVersion":"v1","data":{"a":"b"},"kind":"ConfigMap","metadata":{"name":"web-config","namespace":"default"}}"#;

fn view(n: usize) -> ApprovalView {
    let (body, body_truncated) = body_preview(BODY, Some("configmaps"));
    ApprovalView {
        id: String::new(),
        request_id: format!("sl_{n:022}"),
        agent: "claude-code".into(),
        tier: 2,
        reason: "create of configmaps".into(),
        method: "POST".into(),
        path: "/api/v1/namespaces/default/configmaps?fieldManager=kubectl-create".into(),
        verb: "create".into(),
        api_group: String::new(),
        resource: Some("configmaps".into()),
        subresource: None,
        namespace: Some("default".into()),
        name: None,
        created_at: String::new(),
        expires_at: String::new(),
        body: Some(body),
        body_truncated,
        required: 1,
        approvals: Vec::new(),
        state: "pending",
        decided_by: None,
        decision_reason: None,
    }
}

/// The abandoned event the pipeline hands `hold` (a copy of the decision event, owning its
/// text as `Record::to_event` makes it).
fn abandoned_event(n: usize) -> AuditEvent<'static> {
    let mut event = AuditEvent::new(Stage::Decision);
    event.request_id = Some(format!("sl_{n:022}").into());
    event.agent = Some("claude-code".into());
    event.method = Some("POST".into());
    event.path = Some("/api/v1/namespaces/default/configmaps?fieldManager=kubectl-create".into());
    event.verb = Some("create".into());
    event.namespace = Some("default".into());
    event.resource = Some("configmaps".into());
    event.decision = Some("abandoned");
    event.into_owned()
}

fn queue(runtime: &tokio::runtime::Runtime, dir: &std::path::Path) -> Arc<Approvals> {
    let audit = AuditConfig {
        path: dir.join("audit.jsonl"),
        sync: SyncMode::Flush,
        rotate_bytes: 256 << 20,
    };
    let (log, _task) = runtime
        .block_on(AuditLog::open(&audit))
        .expect("audit log opens");
    let config = ApprovalsConfig {
        timeout: Duration::from_secs(600),
        max_pending: HELD * 2,
        ..ApprovalsConfig::default()
    };
    Approvals::new(config, log)
}

/// Holds `HELD` requests, each awaited by its own task (as the pipeline awaits it), and
/// approves them all; returns the live heap bytes added while all were held. The views and
/// abandoned events are built inside the measurement, as the pipeline builds one of each
/// per held request; the ids and join handles kept here (about 60 bytes a request) are
/// harness, but counted, so the figure errs high.
async fn hold_and_approve(approvals: &Arc<Approvals>) -> isize {
    let before = LIVE.load(Ordering::SeqCst);
    let mut ids = Vec::with_capacity(HELD);
    let mut waiters = Vec::with_capacity(HELD);
    for (view, event) in inputs() {
        let (hold, view) = approvals.hold(view, event).expect("the queue has room");
        ids.push(view.id);
        waiters.push(tokio::spawn(hold.wait()));
    }
    tokio::task::yield_now().await;
    let held = LIVE.load(Ordering::SeqCst) - before;
    assert_eq!(approvals.pending_count(), HELD);
    for id in &ids {
        approvals.approve(id, "alice", None).expect("approve");
    }
    for waiter in waiters {
        let _ = waiter.await;
    }
    held
}

fn inputs() -> Vec<(ApprovalView, AuditEvent<'static>)> {
    (0..HELD).map(|n| (view(n), abandoned_event(n))).collect()
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let approvals = queue(&runtime, dir.path());

    // Warm up once so one-time allocations (the decided ring, runtime internals) are not
    // charged to the measured round.
    runtime.block_on(hold_and_approve(&approvals));
    let held = runtime.block_on(hold_and_approve(&approvals));
    println!(
        "approvals: {HELD} held requests added {held} heap bytes = {} bytes per held request \
         (queue entry with view and body preview, Hold with its abandoned event, oneshot, \
         waiting task; the buffered body itself, here {} bytes, comes on top)",
        held / HELD as isize,
        BODY.len()
    );

    c.bench_function("hold and approve 1000", |b| {
        b.iter(|| runtime.block_on(hold_and_approve(&approvals)))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
