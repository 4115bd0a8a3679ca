//! Prometheus metrics for the admin listener's `/metrics`.
//!
//! One [`Metrics`] is made at start and shared (`Arc<Metrics>`); the pipeline calls its
//! methods on the hot path (a label lookup and an atomic add), the admin listener calls
//! [`Metrics::encode`] on scrape. Label values are bounded: tier is 0-4 or `none`, decision
//! is one of the audit log's words, agent is a name from `credentials.yaml` (or `none` before
//! authentication), so a client cannot grow the series count.

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The `Content-Type` of [`Metrics::encode`]'s output (OpenMetrics text, which Prometheus
/// scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Totals kept by the audit writer, read at scrape time (see [`Metrics::set_audit_source`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditCounts {
    pub events: u64,
    pub write_errors: u64,
}

/// Every metric sluice exports, registered once.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: Histogram,
    approvals_pending: Gauge,
    approval_wait: Histogram,
    audit_events: Counter,
    audit_write_errors: Counter,
    upstream_errors: Counter,
    policy_reloads: Family<ReloadLabels, Counter>,
    credentials_reloads: Family<ReloadLabels, Counter>,
    audit_source: Mutex<Option<AuditSource>>,
    /// The agent label of a request refused before authentication.
    no_agent: Arc<str>,
}

type AuditSource = Box<dyn Fn() -> AuditCounts + Send + Sync>;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    tier: &'static str,
    decision: &'static str,
    /// Shared with the agent's identity: counting a request copies no string.
    agent: Arc<str>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    result: &'static str,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut metrics = Metrics {
            registry: Registry::default(),
            requests: Family::default(),
            // 1 ms .. ~33 s. Long-lived requests (watch, exec) land in +Inf; that is expected.
            request_duration: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            approvals_pending: Gauge::default(),
            approval_wait: Histogram::new([
                1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
            ]),
            audit_events: Counter::default(),
            audit_write_errors: Counter::default(),
            upstream_errors: Counter::default(),
            policy_reloads: Family::default(),
            credentials_reloads: Family::default(),
            audit_source: Mutex::new(None),
            no_agent: Arc::from("none"),
        };
        metrics.register();
        metrics
    }

    /// Names and describes every metric in the registry that `encode` writes out.
    fn register(&mut self) {
        let registry = &mut self.registry;
        // Counters get their `_total` suffix from the encoder.
        registry.register(
            "sluice_requests",
            "Agent requests by tier, decision and agent",
            self.requests.clone(),
        );
        registry.register(
            "sluice_request_duration_seconds",
            "Time from request received to response complete",
            self.request_duration.clone(),
        );
        registry.register(
            "sluice_approvals_pending",
            "Requests held waiting for an approver",
            self.approvals_pending.clone(),
        );
        registry.register(
            "sluice_approval_wait_seconds",
            "Time a held request waited for its approval decision",
            self.approval_wait.clone(),
        );
        registry.register(
            "sluice_audit_events",
            "Events appended to the audit log",
            self.audit_events.clone(),
        );
        registry.register(
            "sluice_audit_write_errors",
            "Audit log writes that failed (each refused a request)",
            self.audit_write_errors.clone(),
        );
        registry.register(
            "sluice_upstream_errors",
            "Requests that failed to reach kube-apiserver or get its answer",
            self.upstream_errors.clone(),
        );
        registry.register(
            "sluice_policy_reloads",
            "Policy reloads by result (ok, error: the last good policy stays)",
            self.policy_reloads.clone(),
        );
        registry.register(
            "sluice_credentials_reloads",
            "Credentials reloads by result (ok, error: the last good credentials stay)",
            self.credentials_reloads.clone(),
        );
    }

    /// One finished agent request. `tier` is `None` when it was refused before classification
    /// (authentication, impersonation headers); `agent` is `None` before authentication.
    pub fn record_request(
        &self,
        tier: Option<u8>,
        decision: &'static str,
        agent: Option<&Arc<str>>,
        seconds: f64,
    ) {
        let labels = RequestLabels {
            tier: tier_label(tier),
            decision,
            agent: agent.unwrap_or(&self.no_agent).clone(),
        };
        self.requests.get_or_create(&labels).inc();
        self.request_duration.observe(seconds);
    }

    /// A request that could not reach the upstream or lost it midway.
    pub fn upstream_error(&self) {
        self.upstream_errors.inc();
    }

    /// A policy reload attempt; `ok: false` means the last good policy was kept.
    pub fn policy_reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.policy_reloads
            .get_or_create(&ReloadLabels { result })
            .inc();
    }

    /// A credentials reload attempt; `ok: false` means the last good credentials were kept.
    pub fn credentials_reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.credentials_reloads
            .get_or_create(&ReloadLabels { result })
            .inc();
    }

    pub fn set_approvals_pending(&self, n: usize) {
        self.approvals_pending
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// How long a held request waited, whatever the outcome.
    pub fn approval_wait(&self, seconds: f64) {
        self.approval_wait.observe(seconds);
    }

    /// Reads the audit writer's totals at every scrape, so the writer need not know about
    /// metrics at all.
    pub fn set_audit_source(&self, source: impl Fn() -> AuditCounts + Send + Sync + 'static) {
        if let Ok(mut slot) = self.audit_source.lock() {
            *slot = Some(Box::new(source));
        }
    }

    /// The Prometheus (OpenMetrics) text exposition; serve it with [`CONTENT_TYPE`].
    pub fn encode(&self) -> String {
        if let Ok(slot) = self.audit_source.lock()
            && let Some(source) = slot.as_ref()
        {
            let counts = source();
            raise_to(&self.audit_events, counts.events);
            raise_to(&self.audit_write_errors, counts.write_errors);
        }
        let mut out = String::new();
        // Writing into a String cannot fail; the error type is fmt's.
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn tier_label(tier: Option<u8>) -> &'static str {
    match tier {
        Some(0) => "0",
        Some(1) => "1",
        Some(2) => "2",
        Some(3) => "3",
        Some(4) => "4",
        _ => "none",
    }
}

fn raise_to(counter: &Counter, total: u64) {
    let now = counter.get();
    if total > now {
        counter.inc_by(total - now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every sample line is `name{labels} value` or `name value`, with a numeric value.
    fn samples(text: &str) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (series, value) = line.rsplit_once(' ').expect(line);
            let value: f64 = value.parse().expect(line);
            let name_end = series.find('{').unwrap_or(series.len());
            let name = &series[..name_end];
            assert!(
                name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                "{line}"
            );
            if name_end < series.len() {
                assert!(series.ends_with('}'), "{line}");
            }
            out.push((series.to_owned(), value));
        }
        out
    }

    fn value(text: &str, series: &str) -> Option<f64> {
        samples(text)
            .into_iter()
            .find(|(s, _)| s == series)
            .map(|(_, v)| v)
    }

    #[test]
    fn scrape_parses_and_names_every_metric() {
        let m = Metrics::new();
        m.record_request(Some(2), "allow", Some(&Arc::from("claude-code")), 0.012);
        m.policy_reload(true);
        let text = m.encode();
        assert!(text.ends_with("# EOF\n"), "{text}");
        samples(&text);
        for name in [
            "sluice_requests_total",
            "sluice_request_duration_seconds_bucket",
            "sluice_approvals_pending",
            "sluice_approval_wait_seconds_count",
            "sluice_audit_events_total",
            "sluice_audit_write_errors_total",
            "sluice_upstream_errors_total",
            "sluice_policy_reloads_total",
        ] {
            assert!(text.contains(name), "{name} missing:\n{text}");
        }
    }

    #[test]
    fn counters_move() {
        let m = Metrics::new();
        let series = r#"sluice_requests_total{tier="3",decision="deny",agent="bot"}"#;
        let bot = Arc::from("bot");
        m.record_request(Some(3), "deny", Some(&bot), 0.001);
        m.record_request(Some(3), "deny", Some(&bot), 0.001);
        m.record_request(None, "deny", None, 0.001);
        m.upstream_error();
        m.policy_reload(false);
        m.set_approvals_pending(4);
        m.approval_wait(12.0);
        let text = m.encode();
        assert_eq!(value(&text, series), Some(2.0), "{text}");
        let unauth = r#"sluice_requests_total{tier="none",decision="deny",agent="none"}"#;
        assert_eq!(value(&text, unauth), Some(1.0));
        assert_eq!(
            value(&text, "sluice_request_duration_seconds_count"),
            Some(3.0)
        );
        assert_eq!(value(&text, "sluice_upstream_errors_total"), Some(1.0));
        assert_eq!(
            value(&text, r#"sluice_policy_reloads_total{result="error"}"#),
            Some(1.0)
        );
        assert_eq!(value(&text, "sluice_approvals_pending"), Some(4.0));
        assert_eq!(value(&text, "sluice_approval_wait_seconds_sum"), Some(12.0));
    }

    #[test]
    fn audit_counters_follow_their_source() {
        let m = Metrics::new();
        m.set_audit_source(|| AuditCounts {
            events: 5,
            write_errors: 1,
        });
        assert_eq!(value(&m.encode(), "sluice_audit_events_total"), Some(5.0));
        m.set_audit_source(|| AuditCounts {
            events: 3,
            write_errors: 0,
        });
        // Lower totals never move a counter back.
        assert_eq!(value(&m.encode(), "sluice_audit_events_total"), Some(5.0));
        m.set_audit_source(|| AuditCounts {
            events: 9,
            write_errors: 2,
        });
        let text = m.encode();
        assert_eq!(value(&text, "sluice_audit_events_total"), Some(9.0));
        assert_eq!(value(&text, "sluice_audit_write_errors_total"), Some(2.0));
    }
}
