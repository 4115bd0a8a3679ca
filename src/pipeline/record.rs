//! The audit record of one request, built up as it moves through the pipeline, and the
//! events written from it (the `complete` event is written by [`super::Completion`]).

use std::borrow::Cow;
use std::sync::Arc;

use http::{HeaderValue, Method, Request, Uri};
use tokio::time::Instant;

use super::token_param::redact_tokens;
use crate::audit::{AuditEvent, Stage};
use crate::authn::AgentIdentity;
use crate::classify::Classification;
use crate::listener::Peer;
use crate::policy::Verdict;
use crate::request_info::RequestInfo;

/// What a request's `decision` and `complete` events say, kept as the values the pipeline
/// already holds (shared or moved, not copied into strings) and written as JSON straight
/// from them, on the request's own thread, when an event is due.
#[derive(Debug, Clone)]
pub struct Record {
    pub request_id: String,
    pub started: Instant,
    peer: Arc<Peer>,
    user_agent: Option<HeaderValue>,
    method: Method,
    /// The request target as sent; cloning a `Uri` shares its bytes.
    uri: Uri,
    /// Set only when the query carried a token: the path and query with its value replaced,
    /// so no token is ever stored in the audit log (the request itself is refused).
    redacted: Option<String>,
    agent: Option<(Arc<str>, &'static str)>,
    info: Option<RequestInfo>,
    class: Option<Classification>,
    rule: Option<Arc<str>>,
    /// allow | deny | escalate | approved | rejected | expired | abandoned
    pub decision: Option<&'static str>,
    /// Replaces the classification's reason: why a request was refused or ended early.
    reason: Option<String>,
    pub approved_by: Option<Vec<String>>,
    pub approval_latency_ms: Option<u64>,
}

/// How a request ended, for its `complete` event.
#[derive(Debug, Clone, Copy)]
struct End {
    status: u16,
    latency_us: u64,
    bytes: u64,
}

impl Record {
    /// Starts the record of a request as it arrives.
    pub fn new<B>(request_id: String, peer: &Arc<Peer>, request: &Request<B>) -> Record {
        let path_and_query = request
            .uri()
            .path_and_query()
            .map_or_else(|| request.uri().path(), |p| p.as_str());
        let redacted = match redact_tokens(path_and_query) {
            Cow::Borrowed(_) => None,
            Cow::Owned(redacted) => Some(redacted),
        };
        Record {
            request_id,
            user_agent: request.headers().get(http::header::USER_AGENT).cloned(),
            method: request.method().clone(),
            uri: request.uri().clone(),
            redacted,
            ..Record::empty(peer.clone(), Instant::now())
        }
    }

    /// A record that knows nothing yet.
    fn empty(peer: Arc<Peer>, started: Instant) -> Record {
        Record {
            request_id: String::new(),
            started,
            peer,
            user_agent: None,
            method: Method::GET,
            uri: Uri::default(),
            redacted: None,
            agent: None,
            info: None,
            class: None,
            rule: None,
            decision: None,
            reason: None,
            approved_by: None,
            approval_latency_ms: None,
        }
    }

    pub fn set_agent(&mut self, agent: &AgentIdentity) {
        self.agent = Some((agent.name.clone(), agent.auth.as_str()));
    }

    /// Takes the parsed request over: the record is where it lives from here on.
    pub fn set_info(&mut self, info: RequestInfo) {
        self.info = Some(info);
    }

    pub fn info(&self) -> Option<&RequestInfo> {
        self.info.as_ref()
    }

    pub fn class(&self) -> Option<&Classification> {
        self.class.as_ref()
    }

    /// Takes the classification over, with what the rules said of it (in observe mode, what
    /// they would have done).
    pub fn set_decision(&mut self, class: Classification, verdict: &Verdict) {
        self.class = Some(class);
        self.decision = Some(verdict.action().as_str());
        self.rule = Some(verdict.rule_label());
    }

    /// Whether the query carried a token (its value is redacted here; the request is refused).
    pub fn query_has_token(&self) -> bool {
        self.redacted.is_some()
    }

    /// A refusal (authentication, a malformed request, a held request that could not be
    /// held): decision deny, and why.
    pub fn set_refused(&mut self, reason: String) {
        self.decision = Some("deny");
        self.reason = Some(reason);
    }

    /// Notes why the exchange ended early (an upstream failure, say).
    pub fn set_reason(&mut self, reason: String) {
        self.reason = Some(reason);
    }

    pub fn agent(&self) -> Option<&str> {
        self.agent.as_ref().map(|(name, _)| &**name)
    }

    pub fn method(&self) -> &str {
        self.method.as_str()
    }

    /// The path and query as recorded (a token in the query redacted).
    pub fn path(&self) -> &str {
        match &self.redacted {
            Some(redacted) => redacted,
            None => self
                .uri
                .path_and_query()
                .map_or_else(|| self.uri.path(), |p| p.as_str()),
        }
    }

    /// Moves the record out, leaving an empty one behind (no allocation).
    pub fn take(&mut self) -> Record {
        let empty = Record::empty(self.peer.clone(), self.started);
        std::mem::replace(self, empty)
    }

    /// The event recording what was decided, borrowing from this record.
    pub fn decision_event(&self) -> AuditEvent<'_> {
        self.event(Stage::Decision, None)
    }

    /// The same event owning its text, for whoever must keep it and change it later (the
    /// approval queue's `abandoned` event).
    pub fn to_event(&self) -> AuditEvent<'static> {
        self.decision_event().into_owned()
    }

    /// This record's event at `stage`, its text borrowed from the record.
    fn event(&self, stage: Stage, end: Option<End>) -> AuditEvent<'_> {
        let user_agent = self
            .user_agent
            .as_ref()
            .map(|v| String::from_utf8_lossy(v.as_bytes()));
        let info = self.info.as_ref();
        fn text(s: Option<&str>) -> Option<Cow<'_, str>> {
            s.map(Cow::Borrowed)
        }
        AuditEvent {
            stage,
            request_id: Some(Cow::Borrowed(&self.request_id)),
            agent: text(self.agent()),
            auth: self.agent.as_ref().map(|(_, auth)| *auth),
            source_ip: Some(Cow::Borrowed(&self.peer.ip)),
            user_agent,
            method: Some(Cow::Borrowed(self.method())),
            path: Some(Cow::Borrowed(self.path())),
            verb: text(info.map(RequestInfo::verb)),
            api_group: text(
                info.filter(|i| i.is_resource_request())
                    .map(RequestInfo::api_group),
            ),
            api_version: text(info.map(RequestInfo::api_version).filter(|v| !v.is_empty())),
            namespace: text(info.and_then(RequestInfo::namespace)),
            resource: text(info.and_then(RequestInfo::resource)),
            subresource: text(info.and_then(RequestInfo::subresource)),
            name: text(info.and_then(RequestInfo::name)),
            tier: self.class.as_ref().map(|c| c.tier.as_u8()),
            decision: self.decision,
            reason: text(
                self.reason
                    .as_deref()
                    .or_else(|| self.class.as_ref().map(|c| &*c.reason)),
            ),
            rule: text(self.rule.as_deref()),
            approved_by: self.approved_by.as_deref().map(Cow::Borrowed),
            approval_latency_ms: self.approval_latency_ms,
            status: end.map(|e| e.status),
            latency_us: end.map(|e| e.latency_us),
            bytes: end.map(|e| e.bytes),
            details: Vec::new(),
        }
    }

    /// The `complete` event: how the exchange ended, `started.elapsed()` after it began.
    pub fn complete_event(&self, status: u16, bytes: u64) -> AuditEvent<'_> {
        let latency_us = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let end = End {
            status,
            latency_us,
            bytes,
        };
        self.event(Stage::Complete, Some(end))
    }

    /// What the request metrics are labelled with: tier, decision, agent.
    pub fn labels(&self) -> (Option<u8>, &'static str, Option<&Arc<str>>) {
        (
            self.class.as_ref().map(|c| c.tier.as_u8()),
            self.decision.unwrap_or("deny"),
            self.agent.as_ref().map(|(name, _)| name),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::AuthMethod;
    use crate::policy::Policy;

    fn record(uri: &str) -> Record {
        let peer = Arc::new(Peer::new("10.1.2.3:4567".parse().unwrap(), None));
        let request = Request::patch(uri)
            .header("user-agent", "kubectl/v1.33 \"q\"")
            .body(())
            .unwrap();
        let mut record = Record::new("sl_abc".into(), &peer, &request);
        record.set_agent(&AgentIdentity {
            name: "claude-code".into(),
            labels: Default::default(),
            auth: AuthMethod::Token,
        });
        let info = RequestInfo::parse(request.method(), request.uri(), false).unwrap();
        let policy = Policy::default();
        let class = policy.classifier().classify(&info, "claude-code");
        let verdict = policy.verdict("claude-code", &info, &class);
        record.set_decision(class, &verdict);
        record.set_info(info);
        record
    }

    fn json(event: &AuditEvent<'_>) -> serde_json::Value {
        let mut line = Vec::new();
        crate::audit::encode_line_for_tests(event, &mut line);
        serde_json::from_slice(&line).unwrap()
    }

    #[test]
    fn events_are_written_from_the_record_as_an_audit_event_would_be() {
        let record = record("/apis/apps/v1/namespaces/dev/deployments/web/scale?dryRun=None");
        assert_eq!(
            record.decision_event().to_json(),
            record.to_event().to_json(),
            "the borrowed and the owned form write the same bytes"
        );
        let v = json(&record.decision_event());
        assert_eq!(v["request_id"], "sl_abc");
        assert_eq!(v["agent"], "claude-code");
        assert_eq!(v["auth"], "token");
        assert_eq!(v["source_ip"], "10.1.2.3");
        assert_eq!(v["user_agent"], "kubectl/v1.33 \"q\"");
        assert_eq!(v["method"], "PATCH");
        assert_eq!(
            v["path"],
            "/apis/apps/v1/namespaces/dev/deployments/web/scale?dryRun=None"
        );
        assert_eq!(v["verb"], "patch");
        assert_eq!(v["api_group"], "apps");
        assert_eq!(v["api_version"], "v1");
        assert_eq!(v["namespace"], "dev");
        assert_eq!(v["resource"], "deployments");
        assert_eq!(v["subresource"], "scale");
        assert_eq!(v["name"], "web");
        assert_eq!(v["tier"], 2);
        assert_eq!(v["decision"], "deny");
        assert_eq!(v["reason"], "patch of deployments/scale");
        assert!(v["rule"].as_str().unwrap().starts_with("default"));
        assert_eq!(v["status"], serde_json::Value::Null);
    }

    #[test]
    fn odd_user_agents_and_paths_are_written_as_valid_json() {
        let peer = Arc::new(Peer::new("[::1]:9".parse().unwrap(), None));
        for (agent, shown) in [
            (&b"\xffkubectl"[..], "\u{fffd}kubectl"),
            (b"", ""),
            (&[b'x'; 8192][..], &*"x".repeat(8192)),
        ] {
            let request = Request::get("/version")
                .header("user-agent", HeaderValue::from_bytes(agent).unwrap())
                .body(())
                .unwrap();
            let record = Record::new("sl_x".into(), &peer, &request);
            let v = json(&record.decision_event());
            assert_eq!(v["user_agent"], shown);
            assert_eq!(v["source_ip"], "::1");
            assert_eq!(v["verb"], serde_json::Value::Null, "never parsed: null");
        }
    }

    #[test]
    fn the_complete_event_adds_the_end_and_a_late_reason() {
        let mut record = record("/api/v1/namespaces?access_token=s3cret");
        record.set_reason("upstream: reset".into());
        let end = End {
            status: 502,
            latency_us: 1234,
            bytes: 0,
        };
        let v = json(&record.event(Stage::Complete, Some(end)));
        assert_eq!(record.labels().1, "deny");
        assert!(record.query_has_token());
        assert_eq!(v["stage"], "complete");
        assert_eq!(v["path"], "/api/v1/namespaces?access_token=<redacted>");
        assert_eq!(
            v["api_group"], "",
            "the core group is an empty string, not null"
        );
        assert_eq!(v["reason"], "upstream: reset");
        assert_eq!(v["status"], 502);
        assert_eq!(v["latency_us"], 1234);
        assert_eq!(v["bytes"], 0);
    }
}
