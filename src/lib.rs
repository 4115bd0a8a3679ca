//! sluice: an authenticating, classifying, approving and auditing reverse proxy that stands
//! between AI agents and kube-apiserver.
//!
//! # Layout
//!
//! The top-level modules are the stages of the data path, in the order a request meets them;
//! [`pipeline`] runs them top to bottom with typed hand-offs:
//!
//! ```text
//! listener      TLS (rustls), ALPN h2 / http/1.1, optional client certificates, graceful stop
//! authn         bearer token (SHA-256 only) or SPIFFE client cert → AgentIdentity
//! request_info  method + URI → RequestInfo, exactly as kube-apiserver derives it
//! classify      RequestInfo → Classification {tier T0..T4, reason}
//! policy        agent rules → Verdict {action, rule} → Decision: Allow(Permit) | Escalate | Deny
//! audit         hash-chained JSONL; the decision event is durable BEFORE anything is forwarded
//! approval      escalations held open until approved (→ Permit) / denied / expired / abandoned
//! forward       send(Permit, request): strip client credentials, add ours + X-Request-ID/Audit-ID
//! ```
//!
//! Around the data path: [`config`] (sluice.yaml, parsed once into typed structs), [`reload`]
//! (hot reload of policy and credentials), [`error`] (the one place errors become Kubernetes
//! `Status` responses), [`admin`] (approvals API, health, metrics) and [`cli`] (the commands).

pub mod admin;
pub mod approval;
pub mod audit;
pub mod authn;
pub mod bytescan;
pub mod classify;
pub mod cli;
pub mod config;
pub mod error;
pub mod executor;
pub mod forward;
pub mod health;
pub mod listener;
pub mod metrics;
pub mod pipeline;
pub mod policy;
pub mod reload;
pub mod request_id;
pub mod request_info;
pub mod server;
pub mod tls;
pub mod yaml;

/// The body type sluice hands to hyper in both directions.
pub type Body = http_body_util::combinators::UnsyncBoxBody<bytes::Bytes, BoxError>;

/// A boxed error that can cross tasks.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The version recorded in the audit log's `start` event.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
