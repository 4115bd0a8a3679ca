//! One request, top to bottom ([`Proxy::run`]): authenticate → request info → classify →
//! decide → audit → (hold for approval) → forward → complete. Each stage hands the next a
//! typed value (`AgentIdentity` → `RequestInfo` → `Classification` → `Verdict` →
//! `Decision` → `Permit`), and every refusal goes through [`Refusal::to_response`].

mod body;
mod completion;
mod escalate;
mod record;
mod token_param;
mod upgrade;

use std::convert::Infallible;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tracing::Instrument;

use crate::Body;
use crate::approval::Approvals;
use crate::audit::AuditLog;
use crate::authn::{AgentIdentity, Credentials};
use crate::classify::Classification;
use crate::config::LimitsConfig;
use crate::error::Refusal;
use crate::forward::{ForwardError, Upstream, UpstreamBody, X_REQUEST_ID};
use crate::inspect;
use crate::listener::Peer;
use crate::metrics::Metrics;
use crate::policy::{Action, Decision, Lane, Permit, Policy};
use crate::request_id::{self, new_request_id};
use crate::request_info::RequestInfo;

pub use completion::{Completion, CountingBody};
pub use record::Record;

/// Everything a request needs, shared by all connections.
pub struct Proxy {
    pub credentials: Arc<ArcSwap<Credentials>>,
    pub policy: Arc<ArcSwap<Policy>>,
    pub audit: AuditLog,
    pub upstream: Upstream,
    pub limits: LimitsConfig,
    pub approvals: Arc<Approvals>,
    pub metrics: Arc<Metrics>,
}

impl Proxy {
    /// Handles one agent request. Never fails: every outcome is a response.
    pub async fn handle(
        self: Arc<Self>,
        peer: Arc<Peer>,
        request: Request<Incoming>,
    ) -> Result<Response<Body>, Infallible> {
        let request_id = new_request_id();
        let id_header = request_id::header_value(&request_id);
        // At the default level the lines that matter (refusals, escalations, failures) name
        // the request themselves; the span is for debugging.
        let span = tracing::debug_span!("request", request.id = %request_id, agent = tracing::field::Empty);
        let mut record = Record::new(request_id, &peer, &request);
        // Boxed: hyper and tokio move a request's future as they spawn it, so its state
        // lives behind one pointer and what they move is small.
        let outcome = Box::pin(self.run(&peer, request, id_header.clone(), &mut record))
            .instrument(span)
            .await;
        let response = outcome.unwrap_or_else(|refusal| self.refuse(refusal, record));
        Ok(with_request_id(response, id_header))
    }

    /// One request, top to bottom. A refusal is audited and answered by the caller, from
    /// `record`; the `complete` event is written when the response ends ([`Completion`]).
    async fn run(
        &self,
        peer: &Peer,
        request: Request<Incoming>,
        request_id: HeaderValue,
        record: &mut Record,
    ) -> Result<Response<Body>, Refusal> {
        let agent = self.authenticate(peer, &request, record)?;
        let mut info = self.request_info(&request, record)?;
        let (request, judged) = body::read_if_needed(&self.limits, request.map(boxed), &mut info)
            .await
            .inspect_err(|refusal| record.set_refused(refusal.message()))?;
        let decision = {
            // One policy for the whole decision, let go of before any await: a request held
            // for approval must not pin an old policy for minutes.
            let policy = self.policy.load();
            let class = inspect::raise(policy.classifier().classify(&info, &agent.name), judged);
            self.decide(&policy, &agent, info, class, request_id, record)
        };
        let (permit, request) = match decision {
            Decision::Allow(permit) => {
                self.record_durably(record).await?;
                (permit, request)
            }
            // Boxed: the hold's state would otherwise be part of every request's future,
            // copied when hyper spawns it, for the few requests that escalate.
            Decision::Escalate(escalation) => {
                Box::pin(escalate::hold(self, request, escalation, record)).await?
            }
            Decision::Deny(message) => return Err(Refusal::Forbidden(message)),
        };
        Ok(self.forward(permit, request, record).await)
    }

    /// Who is asking: the agent its credential names. A request that says whom it would
    /// impersonate is refused: sluice decides who a request runs as.
    fn authenticate<B>(
        &self,
        peer: &Peer,
        request: &Request<B>,
        record: &mut Record,
    ) -> Result<AgentIdentity, Refusal> {
        let credentials = self.credentials.load();
        let agent = credentials
            .authenticate(request.headers(), peer.spiffe_id.as_deref())
            .map_err(|err| {
                record.set_refused(format!("unauthenticated: {err}"));
                Refusal::Unauthenticated
            })?;
        tracing::Span::current().record("agent", &*agent.name);
        record.set_agent(&agent);
        if has_impersonation(request.headers()) {
            record.set_refused("Impersonate-* header".into());
            return Err(Refusal::Impersonation);
        }
        Ok(agent)
    }

    /// What the apiserver will execute; a request whose meaning sluice cannot be sure of
    /// is refused.
    fn request_info<B>(
        &self,
        request: &Request<B>,
        record: &mut Record,
    ) -> Result<RequestInfo, Refusal> {
        let upgrade = upgrade::is_upgrade(request);
        screen(request, &self.limits, record.query_has_token())
            .and_then(|()| {
                RequestInfo::parse(request.method(), request.uri(), upgrade)
                    .map_err(|err| Refusal::BadRequest(err.to_string()))
            })
            .inspect_err(|refusal| record.set_refused(refusal.message()))
    }

    /// What `policy` makes of the classified request, and so what comes next; the record
    /// takes the parsed request, its classification and the verdict (its events are written
    /// from them).
    fn decide(
        &self,
        policy: &Policy,
        agent: &AgentIdentity,
        info: RequestInfo,
        class: Classification,
        request_id: HeaderValue,
        record: &mut Record,
    ) -> Decision {
        let verdict = policy.verdict(&agent.name, &info, &class);
        // Every verdict is in the audit log; the operator's log gets refusals and
        // escalations at info, routine allows at debug.
        let (verb, path, tier, rule) =
            (info.verb(), &info.path, class.tier.as_u8(), verdict.rule());
        if verdict.action() == Action::Allow {
            tracing::debug!(verb, %path, tier, rule, "allowed");
        } else {
            let action = verdict.action().as_str();
            tracing::info!(
                request.id = %record.request_id, agent = &*agent.name, verb, %path, tier,
                decision = action, rule, "decided"
            );
        }
        let decision = verdict.decide(request_id, &agent.name, &info, &class);
        record.set_decision(class, &verdict);
        record.set_info(info);
        decision
    }

    /// Fail closed: nothing is forwarded unless its decision event is durable.
    async fn record_durably(&self, record: &Record) -> Result<(), Refusal> {
        self.audit
            .append(record.decision_event())
            .await
            .map(drop)
            .map_err(|err| {
                tracing::error!(
                    request.id = %record.request_id, error = %err,
                    "audit log unavailable; refusing"
                );
                Refusal::AuditUnavailable
            })
    }

    /// Sends a permitted request upstream and turns the result into the agent's response.
    async fn forward(
        &self,
        permit: Permit,
        mut request: Request<Body>,
        record: &mut Record,
    ) -> Response<Body> {
        let on_upgrade = (permit.lane() == Lane::Upgrade).then(|| hyper::upgrade::on(&mut request));
        match self.upstream.send(permit, request).await {
            // The caller needs the record only for refusals; a response takes it whole.
            Ok(response) => self.respond(response, on_upgrade, record.take()),
            Err(err) => self.upstream_failed(err, record.take()),
        }
    }

    /// The agent's answer when the upstream gave none; the decision event is already
    /// written, only the completion remains.
    fn upstream_failed(&self, err: ForwardError, mut record: Record) -> Response<Body> {
        tracing::warn!(request.id = %record.request_id, error = %err, "upstream failed");
        self.metrics.upstream_error();
        record.set_reason(format!("upstream: {err}"));
        let refusal = match err {
            ForwardError::Timeout { upstream, .. } => Refusal::UpstreamTimeout(upstream),
            ForwardError::Unreachable { upstream, .. } => Refusal::UpstreamUnreachable(upstream),
            ForwardError::Credential(_) => {
                Refusal::UpstreamUnreachable(self.upstream.display().to_owned())
            }
        };
        let response = refusal.to_response(None);
        self.complete(record, response.status());
        response
    }

    /// Streams the upstream's response back, or splices an accepted upgrade.
    fn respond(
        &self,
        mut response: Response<UpstreamBody>,
        on_upgrade: Option<hyper::upgrade::OnUpgrade>,
        record: Record,
    ) -> Response<Body> {
        let status = response.status();
        let completion = self.completion(record, status);
        if status == StatusCode::SWITCHING_PROTOCOLS
            && let Some(agent_side) = on_upgrade
        {
            let upstream_side = hyper::upgrade::on(&mut response);
            tokio::spawn(upgrade::splice(agent_side, upstream_side, completion));
            let (parts, _) = response.into_parts();
            return Response::from_parts(parts, crate::error::full(bytes::Bytes::new()));
        }
        response.map(|body| boxed(CountingBody::new(body, completion)))
    }

    /// Records a refusal (decision and completion) and answers it.
    fn refuse(&self, refusal: Refusal, mut record: Record) -> Response<Body> {
        let response = refusal.to_response(None);
        if record.decision.is_none() {
            record.set_refused(refusal.message());
        }
        // A refused request forwards nothing, so its events need not hold the response.
        self.audit.append_detached(record.decision_event());
        self.complete(record, response.status());
        response
    }

    /// The guard that writes `record`'s `complete` event when the response ends.
    fn completion(&self, record: Record, status: StatusCode) -> Completion {
        Completion::new(
            record,
            self.audit.clone(),
            self.metrics.clone(),
            status.as_u16(),
        )
    }

    /// Writes `record`'s `complete` event now: nothing more is sent.
    fn complete(&self, record: Record, status: StatusCode) {
        drop(self.completion(record, status));
    }
}

/// A body as the pipeline passes it on, its error boxed.
fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<crate::BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// Request shapes refused before they are parsed: ones that could make sluice and the
/// apiserver disagree about what the request is.
/// `token_in_query`: the record found an `access_token` in the query as it redacted it.
fn screen<B>(
    request: &Request<B>,
    limits: &LimitsConfig,
    token_in_query: bool,
) -> Result<(), Refusal> {
    let uri_len = request
        .uri()
        .path_and_query()
        .map_or(0, |p| p.as_str().len());
    if uri_len > limits.max_uri_bytes {
        return Err(Refusal::UriTooLong(limits.max_uri_bytes));
    }
    if token_in_query {
        return Err(Refusal::BadRequest(format!(
            "sluice: a token in the query string ({}) is not accepted; use the Authorization header",
            token_param::TOKEN_PARAM
        )));
    }
    for name in METHOD_OVERRIDES {
        if request.headers().contains_key(name) {
            return Err(Refusal::BadRequest(format!(
                "sluice: the {name} header is not allowed; send the real method"
            )));
        }
    }
    Ok(())
}

/// Headers some servers honour to change the method after a proxy has looked at it.
const METHOD_OVERRIDES: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Any `Impersonate-*` header, in any casing (header names arrive lowercased).
fn has_impersonation(headers: &HeaderMap) -> bool {
    headers
        .keys()
        .any(|name| name.as_str().starts_with("impersonate-"))
}

fn with_request_id(mut response: Response<Body>, request_id: HeaderValue) -> Response<Body> {
    response.headers_mut().insert(X_REQUEST_ID, request_id);
    response.headers_mut().remove(header::SERVER);
    response
}
