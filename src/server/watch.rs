//! Hot reload of the credentials and the policy: a new file that parses replaces the one in
//! force; one that does not is logged and counted, and the last good one stays. A policy
//! change, loaded or rejected, is also a `policy` event in the audit log.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::task::JoinHandle;

use crate::audit::{AuditEvent, AuditLog, Stage};
use crate::authn::Credentials;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::policy::Policy;
use crate::reload::{self, Change};

/// Watches `config.credentials`, last read with SHA-256 `sha`, into `current`.
pub(super) fn credentials(
    config: &Config,
    sha: String,
    current: &Arc<ArcSwap<Credentials>>,
    metrics: &Arc<Metrics>,
) -> JoinHandle<()> {
    let path = config.credentials.clone();
    let shown = path.display().to_string();
    let (current, metrics) = (current.clone(), metrics.clone());
    reload::watch(path.clone(), sha, move |change| match change {
        Change::Contents { bytes, sha256 } => {
            match Credentials::from_yaml(&String::from_utf8_lossy(bytes), &path) {
                Ok(fresh) => {
                    current.store(Arc::new(fresh));
                    metrics.credentials_reload(true);
                    tracing::info!(file = %shown, %sha256, "credentials reloaded");
                }
                Err(err) => {
                    metrics.credentials_reload(false);
                    tracing::error!(error = %err, "credentials not reloaded; keeping the last good ones")
                }
            }
        }
        Change::Unreadable(err) => {
            metrics.credentials_reload(false);
            tracing::error!(file = %shown, error = %err, "credentials unreadable; keeping the last good ones")
        }
    })
}

/// Watches `config.policy`, last read with SHA-256 `sha`, into `current`.
pub(super) fn policy(
    config: &Config,
    sha: String,
    current: &Arc<ArcSwap<Policy>>,
    audit: &AuditLog,
    metrics: &Arc<Metrics>,
) -> JoinHandle<()> {
    let path = config.policy.clone();
    let shown = path.display().to_string();
    let (current, audit, metrics) = (current.clone(), audit.clone(), metrics.clone());
    reload::watch(path.clone(), sha, move |change| match change {
        Change::Contents { bytes, sha256 } => {
            let mut event = AuditEvent::new(Stage::Policy);
            match Policy::from_yaml(&String::from_utf8_lossy(bytes), &path) {
                Ok(fresh) => {
                    current.store(Arc::new(fresh));
                    metrics.policy_reload(true);
                    tracing::info!(file = %shown, %sha256, "policy reloaded");
                    event.details = vec![("policy_sha256", sha256), ("result", "loaded".into())];
                }
                Err(err) => {
                    metrics.policy_reload(false);
                    tracing::error!(error = %err, "policy not reloaded; keeping the last good one");
                    event.reason = Some(err.to_string().into());
                    event.details = vec![("policy_sha256", sha256), ("result", "rejected".into())];
                }
            }
            audit.append_detached(event);
        }
        Change::Unreadable(err) => {
            metrics.policy_reload(false);
            tracing::error!(file = %shown, error = %err, "policy unreadable; keeping the last good one")
        }
    })
}
