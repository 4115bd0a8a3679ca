//! Starting and stopping sluice: load everything once (fatal on any error, naming the file),
//! record a `start` event, watch the policy and credentials for changes, serve agents and
//! the admin listener, and drain on shutdown.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::net::SocketAddr;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;

use crate::admin::Admin;
use crate::approval::Approvals;
use crate::audit::{AuditEvent, AuditLog, Stage};
use crate::authn::Credentials;
use crate::config::Config;
use crate::forward::Upstream;
use crate::health::Check;
use crate::listener::AgentThreads;
use crate::metrics::{AuditCounts, Metrics};
use crate::pipeline::Proxy;
use crate::policy::Policy;
use crate::reload::{self, Change};

/// sluice could not start. Each variant names the file or address at fault.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    File(#[from] crate::yaml::YamlError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Upstream(#[from] crate::forward::UpstreamError),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    #[error("TOKIO_WORKER_THREADS={0:?}: not a number of threads (1 to {MAX_THREADS})")]
    ThreadCount(String),
    #[error("cannot start the threads that serve agents: {0}")]
    Threads(#[source] std::io::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Where sluice listens, once it does.
#[derive(Debug, Clone, Copy)]
pub struct Ready {
    pub agents: SocketAddr,
    pub admin: SocketAddr,
    pub admin_tls: bool,
}

/// Runs sluice with `config` until `shutdown` resolves. `on_ready` is called with the bound
/// addresses once sluice accepts connections.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(Ready),
) -> Result<(), StartError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let threads = agent_threads()?;
    let (credentials, credentials_sha) =
        load_with_hash(&config.credentials, Credentials::from_yaml)?;
    let (policy, policy_sha) = load_with_hash(&config.policy, Policy::from_yaml)?;
    let tls = crate::tls::server_config(&config.tls)?;
    let upstream = Upstream::from_config(&config.upstream).await?;
    let (audit, audit_task) = AuditLog::open(&config.audit).await?;
    audit
        .append(start_event(&config, &policy_sha, &credentials_sha))
        .await?;

    let metrics = Arc::new(Metrics::new());
    let credentials = Arc::new(ArcSwap::from_pointee(credentials));
    let policy = Arc::new(ArcSwap::from_pointee(policy));
    let watchers = [
        watch_credentials(
            config.credentials.clone(),
            credentials_sha,
            credentials.clone(),
            metrics.clone(),
        ),
        watch_policy(
            config.policy.clone(),
            policy_sha,
            policy.clone(),
            audit.clone(),
            metrics.clone(),
        ),
    ];

    let listener = bind(config.listen).await?;
    let admin_listener = bind(config.admin.listen).await?;
    let addr = local_addr(&listener, config.listen)?;
    let admin_addr = local_addr(&admin_listener, config.admin.listen)?;
    let approvals = Approvals::new(config.approvals.clone(), audit.clone());
    let notifier = match &config.approvals.notify {
        Some(notify) => Some(crate::approval::spawn_notifier(&approvals, notify).map_err(
            |message| {
                StartError::Config(crate::config::ConfigError::Invalid {
                    path: config.source.clone(),
                    message,
                })
            },
        )?),
        None => None,
    };
    let counted = audit.clone();
    metrics.set_audit_source(move || AuditCounts {
        events: counted.events_written(),
        write_errors: counted.write_errors(),
    });
    tracing::info!(%addr, %admin_addr, upstream = upstream.display(), "sluice is serving agents");
    let admin = Arc::new(Admin {
        approvals: approvals.clone(),
        credentials: credentials.clone(),
        metrics: metrics.clone(),
        ready_checks: ready_checks(upstream.authority(), audit.clone()),
    });
    // One proxy a thread: the upstream's connections are each thread's own. The first
    // serves on this thread.
    let mut upstreams = vec![upstream];
    for _ in 1..threads {
        upstreams.push(upstreams[0].for_another_thread());
    }
    let setups = upstreams
        .into_iter()
        .map(|upstream| {
            let credentials = credentials.clone();
            let policy = policy.clone();
            let audit = audit.clone();
            let limits = config.limits.clone();
            let approvals = approvals.clone();
            let metrics = metrics.clone();
            // Run on the share's thread.
            move || {
                let proxy = Arc::new(Proxy {
                    credentials,
                    policy,
                    audit,
                    upstream,
                    limits,
                    approvals,
                    metrics,
                });
                move |peer: Arc<crate::listener::Peer>| {
                    let proxy = proxy.clone();
                    hyper::service::service_fn(move |request| {
                        proxy.clone().handle(peer.clone(), request)
                    })
                }
            }
        })
        .collect();
    let agent_threads = AgentThreads::start(Some(tls.clone()), &config.limits, setups)
        .map_err(StartError::Threads)?;
    on_ready(Ready {
        agents: addr,
        admin: admin_addr,
        admin_tls: config.admin_tls(),
    });
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin_tls = config.admin_tls().then(|| tls.clone());
    let admin_task = tokio::spawn(crate::listener::serve(
        admin_listener,
        admin_tls,
        config.limits.clone(),
        move |_peer| {
            let admin = admin.clone();
            hyper::service::service_fn(move |request| admin.clone().handle(request))
        },
        async move {
            let _ = admin_stopped.await;
        },
    ));
    agent_threads.serve(listener, shutdown).await;
    let _ = stop_admin.send(());
    let _ = admin_task.await;
    if let Some(notifier) = notifier {
        notifier.abort();
    }
    for watcher in watchers {
        watcher.abort();
    }
    drop(audit_task);
    tracing::info!("sluice stopped");
    Ok(())
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })
}

fn local_addr(listener: &TcpListener, addr: SocketAddr) -> Result<SocketAddr, StartError> {
    listener
        .local_addr()
        .map_err(|source| StartError::Listen { addr, source })
}

/// How many threads serve agents: `TOKIO_WORKER_THREADS` if set, else one a CPU sluice may
/// use (its cgroup's CPU limit counts: the Deployment's 1-CPU limit gives one).
fn agent_threads() -> Result<usize, StartError> {
    // Read lossily: a value that is not UTF-8 is refused by name, not taken as unset.
    let set = std::env::var_os("TOKIO_WORKER_THREADS").map(|v| v.to_string_lossy().into_owned());
    let cpus = || std::thread::available_parallelism().map_or(1, usize::from);
    threads_from(set.as_deref(), cpus)
}

/// More agent threads than any machine sluice runs on has CPUs: a larger setting is a
/// mistake (each thread holds a runtime and its own upstream connections).
const MAX_THREADS: usize = 1024;

fn threads_from(set: Option<&str>, cpus: impl FnOnce() -> usize) -> Result<usize, StartError> {
    match set {
        None => Ok(cpus().min(MAX_THREADS)),
        Some(value) => match value.trim().parse::<usize>() {
            Ok(n) if (1..=MAX_THREADS).contains(&n) => Ok(n),
            _ => Err(StartError::ThreadCount(value.to_owned())),
        },
    }
}

fn ready_checks(upstream: String, audit: AuditLog) -> Vec<Check> {
    vec![
        Check::tcp("upstream", upstream, Duration::from_secs(2)),
        Check::new("audit", move || {
            let health = audit.health();
            async move { health }
        }),
        // The policy is loaded before sluice serves, and a bad reload keeps the last good one.
        Check::new("policy", || async { Ok(()) }),
    ]
}

/// Reads `path`, parses it with `parse`, and returns the value with the SHA-256 of the bytes.
fn load_with_hash<T>(
    path: &Path,
    parse: impl FnOnce(&str, &Path) -> Result<T, crate::yaml::YamlError>,
) -> Result<(T, String), crate::yaml::YamlError> {
    let bytes = std::fs::read(path).map_err(|source| crate::yaml::YamlError::Read {
        path: path.to_owned(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    Ok((parse(&text, path)?, reload::sha256_hex(&bytes)))
}

fn start_event(config: &Config, policy_sha: &str, credentials_sha: &str) -> AuditEvent<'static> {
    let config_sha = std::fs::read(&config.source)
        .map(|b| reload::sha256_hex(&b))
        .unwrap_or_default();
    let mut event = AuditEvent::new(Stage::Start);
    event.details = vec![
        ("version", crate::VERSION.to_owned()),
        ("config_path", config.source.display().to_string()),
        ("config_sha256", config_sha),
        ("policy_sha256", policy_sha.to_owned()),
        ("credentials_sha256", credentials_sha.to_owned()),
    ];
    event
}

fn watch_credentials(
    path: PathBuf,
    sha: String,
    current: Arc<ArcSwap<Credentials>>,
    metrics: Arc<Metrics>,
) -> tokio::task::JoinHandle<()> {
    let shown = path.display().to_string();
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

fn watch_policy(
    path: PathBuf,
    sha: String,
    current: Arc<ArcSwap<Policy>>,
    audit: AuditLog,
    metrics: Arc<Metrics>,
) -> tokio::task::JoinHandle<()> {
    let shown = path.display().to_string();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thread_count_is_the_cpus_unless_set_and_a_bad_setting_is_named() {
        assert_eq!(threads_from(None, || 3).unwrap(), 3);
        assert_eq!(threads_from(Some(" 2 "), || 3).unwrap(), 2);
        assert_eq!(threads_from(Some("1024"), || 3).unwrap(), 1024);
        assert_eq!(threads_from(None, || 4096).unwrap(), 1024);
        for bad in ["0", "two", "", "-1", "1025", "99999999999999999999999"] {
            let err = threads_from(Some(bad), || 3).unwrap_err().to_string();
            assert_eq!(
                err,
                format!("TOKIO_WORKER_THREADS={bad:?}: not a number of threads (1 to 1024)")
            );
        }
    }
}
