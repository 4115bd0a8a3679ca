//! The per-request cost of classification: parse + classify + decide (the verdict and the
//! decision it makes, a permit included), for a handful of representative requests (budget
//! ≤ 150 ns each), and each stage on its own (`stage/…`),
//! to show where the time goes, and for the refused ones the message the agent is told
//! (`stage/…/refusal_message`: built only when a refusal is sent, not part of deciding).
//! `authenticate/{n}_agents`: finding the agent of a bearer token among n agents;
//! `decide_among/{n}_agents`: deciding for one agent of a policy with rules for n.
//!
//!     cargo bench --bench hot_path

/// The allocator sluice runs with (src/main.rs), so a refusal's message costs what it does there.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method, Uri};
use sluice::authn::{Credentials, token_sha256};
use sluice::policy::{Action, Policy};

/// The request id and agent a decision's permit carries.
fn who() -> (HeaderValue, Arc<str>) {
    (
        HeaderValue::from_static("sl_bench"),
        Arc::from("claude-code"),
    )
}
use sluice::request_info::RequestInfo;

const POLICY: &str = "
protected_namespaces: [kube-system]
agents:
  claude-code:
    rules:
      - namespaces: ['dev-*', staging]
        tiers: {0: allow, 1: allow, 2: escalate, 3: escalate, 4: deny}
      - namespaces: ['*']
        tiers: {0: allow}
runbooks:
  scale-web:
    agents: [claude-code]
    operations:
      - {verbs: [patch, update], resources: [deployments/scale], namespaces: ['dev-*']}
";

const REQUESTS: &[(&str, Method, &str)] = &[
    (
        "get_pod",
        Method::GET,
        "/api/v1/namespaces/dev-a/pods/web-7d9f",
    ),
    (
        "list_deployments",
        Method::GET,
        "/apis/apps/v1/namespaces/prod/deployments?limit=500",
    ),
    (
        "watch_pods",
        Method::GET,
        "/api/v1/namespaces/dev-a/pods?watch=1&resourceVersion=1234",
    ),
    (
        "runbook_scale",
        Method::PATCH,
        "/apis/apps/v1/namespaces/dev-a/deployments/web/scale",
    ),
    (
        "read_secret_denied",
        Method::GET,
        "/api/v1/namespaces/prod/secrets/db",
    ),
    (
        "exec_denied",
        Method::POST,
        "/api/v1/namespaces/dev-a/pods/web/exec?command=sh&stdin=true",
    ),
    ("discovery", Method::GET, "/apis/apps/v1"),
];

fn bench_policy() -> Policy {
    Policy::from_yaml(POLICY, Path::new("bench.yaml"))
        .unwrap_or_else(|e| panic!("bench policy: {e}"))
}

fn hot_path(c: &mut Criterion) {
    let policy = bench_policy();
    let (id, agent) = who();
    let mut group = c.benchmark_group("parse_classify_decide");
    for (name, method, uri) in REQUESTS {
        let uri: Uri = uri.parse().unwrap_or_else(|e| panic!("{uri}: {e}"));
        group.bench_function(*name, |b| {
            b.iter(|| {
                let info = RequestInfo::parse(black_box(method), black_box(&uri), false);
                let info = info.unwrap_or_else(|e| panic!("{e}"));
                let class = policy.classifier().classify(&info, "claude-code");
                let verdict = policy.verdict(&agent, &info, &class);
                black_box(verdict.decide(id.clone(), &agent, &info, &class))
            })
        });
    }
    group.finish();
}

fn stages(c: &mut Criterion) {
    let policy = bench_policy();
    let (id, agent) = who();
    let mut group = c.benchmark_group("stage");
    for (name, method, uri) in REQUESTS {
        let uri: Uri = uri.parse().unwrap_or_else(|e| panic!("{uri}: {e}"));
        group.bench_function(format!("{name}/parse"), |b| {
            b.iter(|| {
                black_box(RequestInfo::parse(
                    black_box(method),
                    black_box(&uri),
                    false,
                ))
            })
        });
        let info = RequestInfo::parse(method, &uri, false).unwrap_or_else(|e| panic!("{e}"));
        group.bench_function(format!("{name}/classify"), |b| {
            b.iter(|| {
                black_box(
                    policy
                        .classifier()
                        .classify(black_box(&info), "claude-code"),
                )
            })
        });
        let class = policy.classifier().classify(&info, "claude-code");
        group.bench_function(format!("{name}/decide"), |b| {
            b.iter(|| {
                let verdict = policy.verdict(&agent, black_box(&info), &class);
                black_box(verdict.decide(id.clone(), &agent, &info, &class))
            })
        });
        // What a refused agent is told: built only for a refusal, after the decision.
        let verdict = policy.verdict(&agent, &info, &class);
        if verdict.action() != Action::Allow {
            group.bench_function(format!("{name}/refusal_message"), |b| {
                b.iter(|| black_box(verdict.message(black_box(&class), "claude-code", &info)))
            });
        }
    }
    group.finish();
}

/// Authentication by bearer token as the number of agents grows: every request pays it.
fn authenticate(c: &mut Criterion) {
    let mut group = c.benchmark_group("authenticate");
    for agents in [1usize, 100, 10_000] {
        let mut yaml = String::from("agents:\n");
        for i in 0..agents {
            let token = format!("sluice_bench-token-{i}");
            yaml.push_str(&format!(
                "  - {{name: agent-{i}, token_sha256: {}}}\n",
                token_sha256(&token)
            ));
        }
        let credentials = Credentials::from_yaml(&yaml, Path::new("credentials.yaml"))
            .unwrap_or_else(|e| panic!("bench credentials: {e}"));
        let mut headers = HeaderMap::new();
        let last = format!("Bearer sluice_bench-token-{}", agents - 1);
        headers.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(&last).unwrap_or_else(|e| panic!("{e}")),
        );
        group.bench_function(format!("{agents}_agents"), |b| {
            b.iter(|| {
                let who = credentials.authenticate(black_box(&headers), None);
                black_box(who.unwrap_or_else(|e| panic!("{e}")))
            })
        });
    }
    group.finish();
}

/// Deciding for one agent among many with rules of their own: every request pays it.
fn decide_among(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide_among");
    let uri: Uri = "/api/v1/namespaces/dev-a/pods/web-7d9f"
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let info = RequestInfo::parse(&Method::GET, &uri, false).unwrap_or_else(|e| panic!("{e}"));
    for agents in [1usize, 100, 10_000] {
        let mut yaml = String::from("agents:\n");
        for i in 0..agents {
            yaml.push_str(&format!(
                "  agent-{i:05}:\n    rules:\n      - namespaces: ['dev-*']\n        tiers: {{0: allow}}\n"
            ));
        }
        let policy = Policy::from_yaml(&yaml, Path::new("bench.yaml"))
            .unwrap_or_else(|e| panic!("bench policy: {e}"));
        let agent: Arc<str> = Arc::from(format!("agent-{:05}", agents - 1));
        let id = HeaderValue::from_static("sl_bench");
        let class = policy.classifier().classify(&info, &agent);
        group.bench_function(format!("{agents}_agents"), |b| {
            b.iter(|| {
                let verdict = policy.verdict(black_box(&agent), &info, &class);
                black_box(verdict.decide(id.clone(), &agent, &info, &class))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, hot_path);
criterion_group!(per_stage, stages);
criterion_group!(many, authenticate, decide_among);
criterion_main!(benches, per_stage, many);
