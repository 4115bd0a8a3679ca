//! One request, top to bottom: authenticate → request info → classify → decide → audit →
//! (hold for approval) → forward → complete. Each stage hands the next a typed value
//! (`AgentIdentity` → `RequestInfo` → `Classification` → `Decision` → `Permit`), and every
//! refusal goes through [`Refusal::to_response`].

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
use crate::config::LimitsConfig;
use crate::error::Refusal;
use crate::forward::{
    ForwardContext, ForwardError, Upstream, UpstreamBody, X_REQUEST_ID, per_request_value,
};
use crate::listener::Peer;
use crate::metrics::Metrics;
use crate::permit::Permit;
use crate::policy::{Action, Policy};
use crate::request_id::new_request_id;
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
        let id_header = per_request_value(&request_id);
        // A span a request costs a slab entry, its fields formatted, and an enter and exit
        // at every poll; at the default level the lines that matter (refusals, escalations,
        // failures) name the request themselves, and the span exists only at debug.
        let span = tracing::debug_span!("request", request.id = %request_id, agent = tracing::field::Empty);
        let mut record = Record::new(request_id, &peer, &request);
        // Boxed: hyper and tokio move a request's future two or three times before and as
        // they spawn it (whole, at the size of its largest state), so the phases' state
        // lives behind one pointer and what they move is small.
        let outcome = Box::pin(self.run(&peer, request, &mut record))
            .instrument(span)
            .await;
        let response = outcome.unwrap_or_else(|refusal| self.refuse(refusal, record));
        Ok(with_request_id(response, id_header))
    }

    /// The phases. A refusal is audited and answered by the caller, from `record`.
    async fn run(
        &self,
        peer: &Peer,
        mut request: Request<Incoming>,
        record: &mut Record,
    ) -> Result<Response<Body>, Refusal> {
        let (agent, info) = self.admit(peer, &request, record)?;
        // The policy guard is dropped before any await: a request held for approval must not
        // pin an old policy for minutes.
        let (class, decision) = {
            let policy = self.policy.load();
            let class = policy.classifier().classify(&info, &agent.name);
            let decision = policy.decide(&agent.name, &info, &class);
            (class, decision)
        };
        // Every decision is in the audit log; the operator's log gets refusals and
        // escalations at info and routine allows at debug (an info line per request costs a
        // measured 11-29% of sluice's CPU per request).
        if decision.action() == Action::Allow {
            tracing::debug!(
                verb = info.verb(), path = %info.path, tier = class.tier.as_u8(),
                rule = decision.rule(), "allowed"
            );
        } else {
            tracing::info!(
                request.id = %record.request_id, agent = &*agent.name, verb = info.verb(),
                path = %info.path, tier = class.tier.as_u8(),
                decision = decision.action().as_str(), rule = decision.rule(), "decided"
            );
        }
        let upgrade = info.upgrade;
        // What a refused or held agent is told, built only for them.
        let message = (decision.effective() != Action::Allow)
            .then(|| decision.message(&class, &agent.name, &info));
        // From here on the parsed request and its classification live in the record (its
        // events are written from them).
        record.set_decision(class, &decision);
        record.set_info(info);
        let on_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
        let (permit, request) = match decision.effective() {
            Action::Allow => {
                let permit = Permit::from_decision(&decision).ok_or(Refusal::Internal)?;
                self.record_durably(record).await?;
                (
                    permit,
                    request.map(|body| body.map_err(crate::BoxError::from).boxed_unsync()),
                )
            }
            // Boxed: the hold's state (2.4 KB) would otherwise be part of every request's
            // future, copied when hyper spawns it, for the few requests that escalate.
            Action::Escalate => {
                let message = message.unwrap_or_default();
                Box::pin(escalate::hold(self, request, record, &message)).await?
            }
            Action::Deny => {
                return Err(Refusal::Forbidden(message.unwrap_or_default().into_owned()));
            }
        };
        Ok(self
            .forward(permit, request, on_upgrade, record, &agent)
            .await)
    }

    /// Authenticates the agent and parses the request; refuses what must not go further.
    fn admit<B>(
        &self,
        peer: &Peer,
        request: &Request<B>,
        record: &mut Record,
    ) -> Result<(AgentIdentity, RequestInfo), Refusal> {
        let refuse = |refusal: Refusal, record: &mut Record, why: String| {
            record.set_refused(why);
            Err(refusal)
        };
        let credentials = self.credentials.load();
        let agent = match credentials.authenticate(request.headers(), peer.spiffe_id.as_deref()) {
            Ok(agent) => agent,
            Err(err) => {
                return refuse(
                    Refusal::Unauthenticated,
                    record,
                    format!("unauthenticated: {err}"),
                );
            }
        };
        tracing::Span::current().record("agent", &*agent.name);
        record.set_agent(&agent);
        if has_impersonation(request.headers()) {
            return refuse(
                Refusal::Impersonation,
                record,
                "Impersonate-* header".into(),
            );
        }
        if let Err(refusal) = screen(request, &self.limits, record.query_has_token()) {
            let why = refusal.message();
            return refuse(refusal, record, why);
        }
        let upgrade = upgrade::is_upgrade(request);
        match RequestInfo::parse(request.method(), request.uri(), upgrade) {
            Ok(info) => Ok((agent, info)),
            Err(err) => refuse(
                Refusal::BadRequest(err.to_string()),
                record,
                err.to_string(),
            ),
        }
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
        request: Request<Body>,
        on_upgrade: Option<hyper::upgrade::OnUpgrade>,
        record: &mut Record,
        agent: &AgentIdentity,
    ) -> Response<Body> {
        let ctx = ForwardContext {
            request_id: &record.request_id,
            agent: &agent.name,
            long_lived: record.info().is_some_and(RequestInfo::is_long_lived),
        };
        let sent = self
            .upstream
            .send(permit, request, ctx, on_upgrade.is_some())
            .await;
        match sent {
            // The caller needs the record only for refusals; a response takes it whole.
            Ok(response) => self.respond(response, on_upgrade, record.take()),
            Err(err) => {
                tracing::warn!(request.id = %record.request_id, error = %err, "upstream failed");
                self.metrics.upstream_error();
                record.set_reason(format!("upstream: {err}"));
                let refusal = match err {
                    ForwardError::Timeout { upstream, .. } => Refusal::UpstreamTimeout(upstream),
                    ForwardError::Unreachable { upstream, .. } => {
                        Refusal::UpstreamUnreachable(upstream)
                    }
                    ForwardError::Credential(_) => {
                        Refusal::UpstreamUnreachable(self.upstream.display().to_owned())
                    }
                };
                // The decision event is already written; only the completion remains.
                let response = refusal.to_response(None);
                drop(Completion::new(
                    record.take(),
                    self.audit.clone(),
                    self.metrics.clone(),
                    response.status().as_u16(),
                ));
                response
            }
        }
    }

    /// Streams the upstream's response back, or splices an accepted upgrade.
    fn respond(
        &self,
        mut response: Response<UpstreamBody>,
        on_upgrade: Option<hyper::upgrade::OnUpgrade>,
        record: Record,
    ) -> Response<Body> {
        let status = response.status();
        let completion = Completion::new(
            record,
            self.audit.clone(),
            self.metrics.clone(),
            status.as_u16(),
        );
        if status == StatusCode::SWITCHING_PROTOCOLS
            && let Some(agent_side) = on_upgrade
        {
            let upstream_side = hyper::upgrade::on(&mut response);
            tokio::spawn(upgrade::splice(agent_side, upstream_side, completion));
            let (parts, _) = response.into_parts();
            return Response::from_parts(parts, crate::error::full(bytes::Bytes::new()));
        }
        response.map(|body| {
            CountingBody::new(body, completion)
                .map_err(crate::BoxError::from)
                .boxed_unsync()
        })
    }

    /// Records a refusal (decision and completion) and answers it.
    fn refuse(&self, refusal: Refusal, mut record: Record) -> Response<Body> {
        let response = refusal.to_response(None);
        if record.decision.is_none() {
            record.set_refused(refusal.message());
        }
        // A refused request forwards nothing, so its events need not hold the response.
        self.audit.append_detached(record.decision_event());
        let status = response.status().as_u16();
        drop(Completion::new(
            record,
            self.audit.clone(),
            self.metrics.clone(),
            status,
        ));
        response
    }
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

fn with_request_id(
    mut response: Response<Body>,
    request_id: Option<HeaderValue>,
) -> Response<Body> {
    if let Some(value) = request_id {
        response.headers_mut().insert(X_REQUEST_ID, value);
    }
    response.headers_mut().remove(header::SERVER);
    response
}
