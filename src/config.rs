//! `sluice.yaml`: parsed once into typed, validated structs. Relative paths are resolved
//! against the config file's directory here, so nothing downstream re-checks or re-resolves.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::yaml::{self, YamlError};

/// The whole of `sluice.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where agents connect.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    pub tls: TlsConfig,
    /// Omitted: in-cluster if available, else the current kubeconfig.
    #[serde(default)]
    pub upstream: UpstreamConfig,
    pub credentials: PathBuf,
    pub policy: PathBuf,
    pub audit: AuditConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub approvals: ApprovalsConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    /// The file this was read from (set by [`Config::load`]).
    #[serde(skip)]
    pub source: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// When set, clients may present a certificate signed by this CA (mTLS identity).
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// A kubeconfig file; `~` expands to the home directory.
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    #[serde(default)]
    pub context: Option<String>,
    /// An explicit apiserver URL (with `ca` and `token_file`).
    #[serde(default)]
    pub server: Option<String>,
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Re-read when it changes (projected ServiceAccount tokens rotate).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Add `Impersonate-User: sluice:agent:<name>` so Kubernetes RBAC and audit see the agent.
    #[serde(default)]
    pub impersonate: bool,
    /// How long to wait for the upstream's response headers before answering 504.
    #[serde(default = "default_upstream_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// How long to wait for a TCP + TLS connection before answering 502.
    #[serde(default = "default_connect_timeout", deserialize_with = "duration")]
    pub connect_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// Acknowledge an event only after `fdatasync`.
    Fsync,
    /// Acknowledge once the bytes reach the OS.
    Flush,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    pub path: PathBuf,
    #[serde(default = "default_sync")]
    pub sync: SyncMode,
    #[serde(default = "default_rotate_bytes")]
    pub rotate_bytes: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    #[serde(default = "default_admin_listen")]
    pub listen: SocketAddr,
    /// Serve the admin listener over TLS with the agent certificate (default: true unless
    /// the address is loopback).
    #[serde(default)]
    pub tls: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalsConfig {
    #[serde(default = "default_approval_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Per-tier override of `timeout`, e.g. `{4: 10m}`.
    #[serde(default, deserialize_with = "tier_durations")]
    pub timeouts: BTreeMap<u8, Duration>,
    /// How many distinct approvers a tier needs, e.g. `{4: 2}`; default 1.
    #[serde(default)]
    pub required: BTreeMap<u8, u8>,
    #[serde(default = "default_max_pending")]
    pub max_pending: usize,
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    #[serde(default)]
    pub notify: Option<NotifyConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    pub url: String,
    /// HMAC-SHA256 key for `X-Sluice-Signature`; `secret_file` keeps it out of the config.
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
}

/// Limits that bound what one client can make sluice hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// A client must send its request headers within this time (slowloris).
    #[serde(default = "default_header_timeout", deserialize_with = "duration")]
    pub header_read_timeout: Duration,
    /// In-flight requests finish within this time after SIGTERM, then connections close.
    #[serde(default = "default_shutdown_grace", deserialize_with = "duration")]
    pub shutdown_grace: Duration,
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
    #[serde(default = "default_max_uri_bytes")]
    pub max_uri_bytes: usize,
}

/// A config that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Yaml(#[from] YamlError),
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Config {
    /// Reads `path`, resolves relative paths against its directory, and validates.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = yaml::read_file(path)?;
        config.source = path.to_owned();
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        config.validate()?;
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let join = |p: &mut PathBuf| *p = resolve(base, p);
        join(&mut self.tls.cert);
        join(&mut self.tls.key);
        self.tls.client_ca.as_mut().map(join);
        join(&mut self.credentials);
        join(&mut self.policy);
        join(&mut self.audit.path);
        self.upstream.kubeconfig.as_mut().map(join);
        self.upstream.ca.as_mut().map(join);
        self.upstream.token_file.as_mut().map(join);
        if let Some(notify) = self.approvals.notify.as_mut() {
            notify.secret_file.as_mut().map(join);
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: self.source.clone(),
            message,
        };
        let up = &self.upstream;
        if up.server.is_some() && up.kubeconfig.is_some() {
            return Err(invalid(
                "upstream: set either server (with ca / token_file) or kubeconfig, not both".into(),
            ));
        }
        if up.context.is_some() && up.kubeconfig.is_none() {
            return Err(invalid(
                "upstream.context: needs upstream.kubeconfig".into(),
            ));
        }
        if let Some(server) = &up.server
            && !(server.starts_with("https://") || server.starts_with("http://"))
        {
            return Err(invalid(format!(
                "upstream.server: {server:?} is not an http(s) URL"
            )));
        }
        if self.audit.rotate_bytes < 4096 {
            return Err(invalid(format!(
                "audit.rotate_bytes: {} is too small (at least 4096)",
                self.audit.rotate_bytes
            )));
        }
        for tier in self
            .approvals
            .timeouts
            .keys()
            .chain(self.approvals.required.keys())
        {
            if *tier > 4 {
                return Err(invalid(format!(
                    "approvals: tier {tier} does not exist (0-4)"
                )));
            }
        }
        if self.approvals.required.values().any(|n| *n == 0) {
            return Err(invalid(
                "approvals.required: a tier needs at least 1 approver".into(),
            ));
        }
        if let Some(notify) = &self.approvals.notify
            && !(notify.url.starts_with("https://") || notify.url.starts_with("http://"))
        {
            return Err(invalid(format!(
                "approvals.notify.url: {:?} is not an http(s) URL",
                notify.url
            )));
        }
        let admin_tls = self
            .admin
            .tls
            .unwrap_or(!self.admin.listen.ip().is_loopback());
        if !admin_tls && !self.admin.listen.ip().is_loopback() {
            return Err(invalid(format!(
                "admin: plain HTTP is allowed only on loopback, not {}",
                self.admin.listen
            )));
        }
        Ok(())
    }

    /// Whether the admin listener speaks TLS.
    pub fn admin_tls(&self) -> bool {
        self.admin
            .tls
            .unwrap_or(!self.admin.listen.ip().is_loopback())
    }
}

impl ApprovalsConfig {
    /// How long a request of `tier` may be held.
    pub fn timeout_for(&self, tier: u8) -> Duration {
        self.timeouts.get(&tier).copied().unwrap_or(self.timeout)
    }

    /// How many distinct approvers a request of `tier` needs.
    pub fn required_for(&self, tier: u8) -> u8 {
        self.required.get(&tier).copied().unwrap_or(1)
    }
}

/// `~/x` → `$HOME/x`; relative → against `base`.
pub fn resolve(base: &Path, path: &Path) -> PathBuf {
    if let Ok(rest) = path.strip_prefix("~")
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home).join(rest);
    }
    if path.is_absolute() {
        path.to_owned()
    } else {
        base.join(path)
    }
}

fn duration<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(de)?;
    humantime::parse_duration(&text)
        .map_err(|e| serde::de::Error::custom(format!("{text:?} is not a duration like 30s: {e}")))
}

fn tier_durations<'de, D: Deserializer<'de>>(de: D) -> Result<BTreeMap<u8, Duration>, D::Error> {
    let raw = BTreeMap::<u8, String>::deserialize(de)?;
    raw.into_iter()
        .map(|(tier, text)| {
            humantime::parse_duration(&text)
                .map(|d| (tier, d))
                .map_err(|e| serde::de::Error::custom(format!("tier {tier}: {text:?}: {e}")))
        })
        .collect()
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8443))
}
fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9443))
}
fn default_sync() -> SyncMode {
    SyncMode::Fsync
}
fn default_rotate_bytes() -> u64 {
    256 * 1024 * 1024
}
fn default_upstream_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_approval_timeout() -> Duration {
    Duration::from_secs(120)
}
fn default_max_pending() -> usize {
    1000
}
fn default_max_body_bytes() -> usize {
    1024 * 1024
}
fn default_header_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_shutdown_grace() -> Duration {
    Duration::from_secs(20)
}
fn default_max_header_bytes() -> usize {
    64 * 1024
}
fn default_max_uri_bytes() -> usize {
    8 * 1024
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: default_admin_listen(),
            tls: None,
        }
    }
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        ApprovalsConfig {
            timeout: default_approval_timeout(),
            timeouts: BTreeMap::new(),
            required: BTreeMap::new(),
            max_pending: default_max_pending(),
            max_body_bytes: default_max_body_bytes(),
            notify: None,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            header_read_timeout: default_header_timeout(),
            shutdown_grace: default_shutdown_grace(),
            max_header_bytes: default_max_header_bytes(),
            max_uri_bytes: default_max_uri_bytes(),
        }
    }
}
