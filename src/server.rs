//! Starting and stopping sluice, in two steps a test can drive in-process (as mini-redis's
//! `run(listener, shutdown)`):
//!
//! - [`Sluice::load`] reads everything the config names (fatal on any error, naming the
//!   file), builds the upstream, opens the audit log and records a `start` event;
//! - [`Sluice::serve`] serves agents and the admin listener on [`Listeners`] already bound
//!   until `shutdown` resolves, then lets in-flight requests finish.
//!
//! `sluice serve` is the two with [`Listeners::bind`] between them.

mod watch;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::admin::Admin;
use crate::approval::Approvals;
use crate::audit::{AuditEvent, AuditLog, AuditTask, Stage};
use crate::authn::Credentials;
use crate::config::{Config, LimitsConfig};
use crate::forward::Upstream;
use crate::health::Check;
use crate::metrics::{AuditCounts, Metrics};
use crate::pipeline::Proxy;
use crate::policy::Policy;
use crate::yaml::YamlError;

/// sluice could not start. Each variant names the file or address at fault.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    File(#[from] YamlError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Upstream(#[from] crate::forward::UpstreamError),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    /// `approvals.notify` names a secret file or URL that cannot be used.
    #[error("{path}: {message}")]
    Notify {
        path: std::path::PathBuf,
        message: String,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// sluice, loaded and ready to serve.
pub struct Sluice {
    proxy: Arc<Proxy>,
    admin: Arc<Admin>,
    tls: Arc<rustls::ServerConfig>,
    admin_tls: bool,
    limits: LimitsConfig,
    /// Reloads and approval notifications: stopped with sluice.
    background: Background,
    /// Dropped last: the audit writer finishes what it was given.
    audit_task: AuditTask,
}

/// The two listeners sluice serves, bound.
pub struct Listeners {
    /// Agents' connections (TLS).
    pub agents: TcpListener,
    /// The approvals API, health and metrics.
    pub admin: TcpListener,
}

impl Sluice {
    /// Loads what `config` names: credentials, policy, TLS, the upstream and the audit log,
    /// whose `start` event records what was loaded.
    pub async fn load(config: &Config) -> Result<Sluice, StartError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (credentials, credentials_sha) =
            load_with_hash(&config.credentials, Credentials::from_yaml)?;
        let (policy, policy_sha) = load_with_hash(&config.policy, Policy::from_yaml)?;
        let tls = crate::tls::server_config(&config.tls)?;
        let upstream = Upstream::from_config(&config.upstream).await?;
        let (audit, audit_task) = AuditLog::open(&config.audit).await?;
        audit
            .append(start_event(config, &policy_sha, &credentials_sha))
            .await?;

        let metrics = Arc::new(Metrics::new());
        count_audit_events(&metrics, &audit);
        let credentials = Arc::new(ArcSwap::from_pointee(credentials));
        let policy = Arc::new(ArcSwap::from_pointee(policy));
        let approvals = Approvals::new(config.approvals.clone(), audit.clone());
        let mut background = Background(vec![
            watch::credentials(config, credentials_sha, &credentials, &metrics),
            watch::policy(config, policy_sha, &policy, &audit, &metrics),
        ]);
        if let Some(notify) = &config.approvals.notify {
            let notifier =
                crate::approval::spawn_notifier(&approvals, notify).map_err(|message| {
                    StartError::Notify {
                        path: config.source.clone(),
                        message,
                    }
                })?;
            background.0.push(notifier);
        }
        let admin = Arc::new(Admin {
            approvals: approvals.clone(),
            credentials: credentials.clone(),
            metrics: metrics.clone(),
            ready_checks: ready_checks(upstream.authority(), audit.clone()),
        });
        let proxy = Arc::new(Proxy {
            credentials,
            policy,
            audit,
            upstream,
            limits: config.limits.clone(),
            approvals,
            metrics,
        });
        Ok(Sluice {
            proxy,
            admin,
            tls,
            admin_tls: config.admin.tls,
            limits: config.limits.clone(),
            background,
            audit_task,
        })
    }

    /// Whether the admin listener speaks TLS (else plain HTTP, on loopback only).
    pub fn admin_tls(&self) -> bool {
        self.admin_tls
    }

    /// Serves agents on `listeners.agents` and the admin API on `listeners.admin` until
    /// `shutdown` resolves; then stops accepting, lets in-flight requests finish within
    /// `limits.shutdown_grace`, and stops.
    pub async fn serve(self, listeners: Listeners, shutdown: impl Future<Output = ()>) {
        let Sluice {
            proxy,
            admin,
            tls,
            admin_tls,
            limits,
            background,
            audit_task,
        } = self;
        tracing::info!(
            agents = ?listeners.agents.local_addr().ok(),
            admin = ?listeners.admin.local_addr().ok(),
            upstream = proxy.upstream.display(),
            "sluice is serving agents"
        );
        // The admin listener outlives the agents' drain: health and approvals stay up.
        let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
        let admin_task = tokio::spawn(crate::listener::serve(
            listeners.admin,
            admin_tls.then(|| tls.clone()),
            limits.clone(),
            move |_peer| {
                let admin = admin.clone();
                hyper::service::service_fn(move |request| admin.clone().handle(request))
            },
            async move {
                let _ = admin_stopped.await;
            },
        ));
        let agents = move |peer: Arc<crate::listener::Peer>| {
            let proxy = proxy.clone();
            hyper::service::service_fn(move |request| proxy.clone().handle(peer.clone(), request))
        };
        crate::listener::serve(listeners.agents, Some(tls), limits, agents, shutdown).await;
        let _ = stop_admin.send(());
        let _ = admin_task.await;
        drop(background);
        drop(audit_task);
        tracing::info!("sluice stopped");
    }
}

impl Listeners {
    /// Binds `config.listen` and `config.admin.listen`.
    pub async fn bind(config: &Config) -> Result<Listeners, StartError> {
        Ok(Listeners {
            agents: bind(config.listen).await?,
            admin: bind(config.admin.listen).await?,
        })
    }

    /// Where agents connect and where the admin listener is, as bound (a port 0 resolved).
    pub fn local_addrs(&self) -> std::io::Result<(SocketAddr, SocketAddr)> {
        Ok((self.agents.local_addr()?, self.admin.local_addr()?))
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })
}

/// Tasks that run as long as sluice does: aborted when it stops, or if it never serves.
struct Background(Vec<JoinHandle<()>>);

impl Drop for Background {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

fn count_audit_events(metrics: &Metrics, audit: &AuditLog) {
    let audit = audit.clone();
    metrics.set_audit_source(move || AuditCounts {
        events: audit.events_written(),
        write_errors: audit.write_errors(),
    });
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
    parse: impl FnOnce(&str, &Path) -> Result<T, YamlError>,
) -> Result<(T, String), YamlError> {
    let bytes = std::fs::read(path).map_err(|source| YamlError::Read {
        path: path.to_owned(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    Ok((parse(&text, path)?, crate::reload::sha256_hex(&bytes)))
}

fn start_event(config: &Config, policy_sha: &str, credentials_sha: &str) -> AuditEvent<'static> {
    let config_sha = std::fs::read(&config.source)
        .map(|b| crate::reload::sha256_hex(&b))
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

#[cfg(test)]
mod tests {
    use clap::Parser;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::config::Upstream;

    /// What `sluice init` writes, on ports the system picks, in front of an apiserver that is
    /// never contacted.
    fn initialised(dir: &Path) -> Config {
        let dir_arg = dir.to_str().unwrap();
        let init = crate::cli::Cli::try_parse_from(["sluice", "init", "--dir", dir_arg]).unwrap();
        assert_eq!(crate::cli::run(init), 0);
        let mut config = Config::load(&dir.join("sluice.yaml")).unwrap();
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.admin.listen = "127.0.0.1:0".parse().unwrap();
        config.upstream.target = Upstream::Explicit {
            server: "https://127.0.0.1:9".parse().unwrap(),
            ca: Some(dir.join("ca.crt")),
            token_file: None,
        };
        config
    }

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: sluice\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }

    #[tokio::test]
    async fn serves_in_process_on_the_listeners_it_is_given_until_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let config = initialised(dir.path());
        let sluice = Sluice::load(&config).await.unwrap();
        let listeners = Listeners::bind(&config).await.unwrap();
        let (_, admin) = listeners.local_addrs().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(sluice.serve(listeners, async {
            let _ = stopped.await;
        }));

        let response = get(admin, "/healthz").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");

        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), serving)
            .await
            .expect("sluice stops once shutdown resolves")
            .unwrap();
        let log = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
        assert!(log.contains("\"stage\":\"start\""), "{log}");
    }
}
