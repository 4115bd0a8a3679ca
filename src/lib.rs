//! sluice: an authenticating, classifying, approving and auditing reverse proxy that stands
//! between AI agents and kube-apiserver.
//!
//! # Entry point
//!
//! [`Sluice::load`] reads what a [`config::Config`] names (credentials, policy, TLS, the
//! upstream) and opens the audit log; [`Sluice::serve`] serves agents and the admin API on
//! [`Listeners`] already bound until a shutdown future resolves, then drains. `sluice
//! serve` ([`cli`]) is the two with [`Listeners::bind`] between them, on the runtime
//! `runtime` builds; a test can run them in-process on listeners at `127.0.0.1:0`.
//!
//! # Layout
//!
//! The data path's stages, in the order a request meets them; `pipeline` runs them top to
//! bottom with typed hand-offs:
//!
//! ```text
//! listener      TLS (rustls), ALPN h2 / http/1.1, optional client certificates, graceful stop
//! authn         bearer token (SHA-256 only) or SPIFFE client cert → AgentIdentity
//! request_info  method + URI → RequestInfo, exactly as kube-apiserver derives it
//! classify      RequestInfo → Classification {tier T0..T4, reason}
//! inspect       the body of a pod or workload write → a body tier (Pod Security baseline)
//! policy        agent rules → Verdict {action, rule} → Decision: Allow(Permit) | Escalate | Deny
//! audit         hash-chained JSONL; the decision event is durable BEFORE anything is forwarded
//! approval      escalations held open until approved (→ Permit) / denied / expired / abandoned
//! forward       send(Permit, request): strip client credentials, add ours + X-Request-ID/Audit-ID
//! pipeline      runs the stages above for one request; error turns a refusal into a Status
//! ```
//!
//! Around it:
//!
//! ```text
//! server        Sluice::load and Sluice::serve: what starts, what is shared, what stops
//! runtime       the tokio runtime and process limits (generic: knows no stage)
//! executor      how hyper spawns its connection and stream tasks
//! config        sluice.yaml, parsed once into typed values (yaml: the file reader)
//! reload        hot reload of policy, credentials and the upstream token
//! admin         the admin listener: approvals API, health, metrics
//! health        /healthz and /readyz checks
//! metrics       Prometheus counters and histograms
//! tls           certificates, keys, the server config, SPIFFE ids
//! request_id    the id the agent, the apiserver and the audit log share
//! cli           the `sluice` commands
//! ```
//!
//! Public modules are what the commands, tests and benchmarks use; the rest is internal.

mod admin;
pub mod approval;
pub mod audit;
pub mod authn;
pub mod classify;
pub mod cli;
pub mod config;
mod error;
mod executor;
mod forward;
mod health;
pub mod inspect;
mod listener;
mod metrics;
mod pipeline;
pub mod policy;
mod reload;
mod request_id;
pub mod request_info;
mod runtime;
mod server;
pub mod tls;
mod yaml;

pub use server::{Listeners, Sluice, StartError};

/// The body type sluice hands to hyper in both directions.
pub type Body = http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, BoxError>;

/// A boxed error that can cross tasks.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The version recorded in the audit log's `start` event.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
