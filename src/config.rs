//! `sluice.yaml`, parsed once into typed values: durations are `Duration`s, tiers are
//! [`Tier`]s, the upstream is one of the three ways to reach it ([`Upstream`]), URLs are
//! `http::Uri`s. A value that cannot mean anything (a tier 5, a plain-HTTP admin listener
//! off loopback, both `server` and `kubeconfig`) fails the parse, naming the file and the
//! key; nothing downstream re-checks. Relative paths are resolved against the config file's
//! directory here, so nothing downstream re-resolves either.

mod de;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroU8;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::classify::Tier;
use crate::yaml::{self, YamlError};

/// The whole of `sluice.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where agents connect.
    #[serde(default = "de::default_listen")]
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

/// `upstream:`: which apiserver sluice forwards to, and how.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "de::UpstreamFile")]
pub struct UpstreamConfig {
    pub target: Upstream,
    /// Add `Impersonate-User: sluice:agent:<name>` so Kubernetes RBAC and audit see the agent.
    pub impersonate: bool,
    /// How long to wait for the upstream's response headers before answering 504.
    pub timeout: Duration,
    /// How long to wait for a TCP + TLS connection before answering 502.
    pub connect_timeout: Duration,
}

/// Where the apiserver is and which credential reaches it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Upstream {
    /// Neither `server` nor `kubeconfig`: the pod's ServiceAccount when sluice runs in a
    /// cluster, else the current kubeconfig.
    #[default]
    InCluster,
    /// `kubeconfig` (`~` expands to the home directory), with an optional `context`.
    Kubeconfig {
        path: PathBuf,
        context: Option<String>,
    },
    /// `server`, with the `ca` that signs its certificate and a `token_file` (re-read when
    /// it changes: projected ServiceAccount tokens rotate).
    Explicit {
        server: http::Uri,
        ca: Option<PathBuf>,
        token_file: Option<PathBuf>,
    },
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
    #[serde(default = "de::default_sync")]
    pub sync: SyncMode,
    /// At least 4096.
    #[serde(
        default = "de::default_rotate_bytes",
        deserialize_with = "de::rotate_bytes"
    )]
    pub rotate_bytes: u64,
}

/// `admin:`: the listener for the approvals API, health and metrics.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "de::AdminFile")]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// Whether it speaks TLS (with the agent certificate). Set from `admin.tls`, by default
    /// true unless `listen` is loopback; plain HTTP is refused anywhere but loopback.
    pub tls: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalsConfig {
    #[serde(
        default = "de::default_approval_timeout",
        deserialize_with = "de::duration"
    )]
    pub timeout: Duration,
    /// Per-tier override of `timeout`, e.g. `{4: 10m}`.
    #[serde(default, deserialize_with = "de::tier_durations")]
    pub timeouts: BTreeMap<Tier, Duration>,
    /// How many distinct approvers a tier needs, e.g. `{4: 2}`; default 1.
    #[serde(default, deserialize_with = "de::tier_approvers")]
    pub required: BTreeMap<Tier, NonZeroU8>,
    #[serde(default = "de::default_max_pending")]
    pub max_pending: usize,
    #[serde(default = "de::default_max_body_bytes")]
    pub max_body_bytes: usize,
    #[serde(default)]
    pub notify: Option<NotifyConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// An http(s) URL.
    #[serde(deserialize_with = "de::http_url")]
    pub url: http::Uri,
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
    #[serde(
        default = "de::default_header_timeout",
        deserialize_with = "de::duration"
    )]
    pub header_read_timeout: Duration,
    /// In-flight requests finish within this time after SIGTERM, then connections close.
    #[serde(
        default = "de::default_shutdown_grace",
        deserialize_with = "de::duration"
    )]
    pub shutdown_grace: Duration,
    #[serde(default = "de::default_max_header_bytes")]
    pub max_header_bytes: usize,
    #[serde(default = "de::default_max_uri_bytes")]
    pub max_uri_bytes: usize,
    /// The body of a pod or workload write is read (to rate its pod spec) up to this size;
    /// beyond it the request is refused with 413.
    #[serde(default = "de::default_max_inspected_body_bytes")]
    pub max_body_bytes: usize,
    /// Such a body must arrive within this time, or the request is refused with 408.
    #[serde(
        default = "de::default_body_read_timeout",
        deserialize_with = "de::duration"
    )]
    pub body_read_timeout: Duration,
}

impl Config {
    /// Reads and parses `path`, and resolves relative paths against its directory.
    pub fn load(path: &Path) -> Result<Config, YamlError> {
        let mut config: Config = yaml::read_file(path)?;
        config.source = path.to_owned();
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
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
        match &mut self.upstream.target {
            Upstream::InCluster => {}
            Upstream::Kubeconfig { path, .. } => join(path),
            Upstream::Explicit { ca, token_file, .. } => {
                ca.as_mut().map(join);
                token_file.as_mut().map(join);
            }
        }
        if let Some(notify) = self.approvals.notify.as_mut() {
            notify.secret_file.as_mut().map(join);
        }
    }
}

impl ApprovalsConfig {
    /// How long a request of `tier` may be held.
    pub fn timeout_for(&self, tier: Tier) -> Duration {
        self.timeouts.get(&tier).copied().unwrap_or(self.timeout)
    }

    /// How many distinct approvers a request of `tier` needs.
    pub fn required_for(&self, tier: Tier) -> u8 {
        self.required.get(&tier).map_or(1, |n| n.get())
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

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            target: Upstream::InCluster,
            impersonate: false,
            timeout: de::default_upstream_timeout(),
            connect_timeout: de::default_connect_timeout(),
        }
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: de::default_admin_listen(),
            tls: false,
        }
    }
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        ApprovalsConfig {
            timeout: de::default_approval_timeout(),
            timeouts: BTreeMap::new(),
            required: BTreeMap::new(),
            max_pending: de::default_max_pending(),
            max_body_bytes: de::default_max_body_bytes(),
            notify: None,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            header_read_timeout: de::default_header_timeout(),
            shutdown_grace: de::default_shutdown_grace(),
            max_header_bytes: de::default_max_header_bytes(),
            max_uri_bytes: de::default_max_uri_bytes(),
            max_body_bytes: de::default_max_inspected_body_bytes(),
            body_read_timeout: de::default_body_read_timeout(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str =
        "tls: {cert: c, key: k}\ncredentials: creds.yaml\npolicy: p.yaml\naudit: {path: a.jsonl}\n";

    fn parse(extra: &str) -> Result<Config, String> {
        yaml::parse_str(&format!("{MINIMAL}{extra}"), Path::new("sluice.yaml"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn values_are_typed_as_they_are_read() {
        let config = parse(
            "upstream: {server: \"https://10.0.0.1:6443\", ca: ca.crt, timeout: 5s}
approvals: {timeout: 90s, timeouts: {4: 10m}, required: {3: 2}, notify: {url: \"https://hooks.example/x\"}}
admin: {listen: \"0.0.0.0:9443\"}
",
        )
        .unwrap();
        let Upstream::Explicit { server, ca, .. } = &config.upstream.target else {
            panic!("{:?}", config.upstream.target)
        };
        assert_eq!(server.authority().unwrap().as_str(), "10.0.0.1:6443");
        assert_eq!(ca.as_deref(), Some(Path::new("ca.crt")));
        assert_eq!(config.upstream.timeout, Duration::from_secs(5));
        assert_eq!(config.upstream.connect_timeout, Duration::from_secs(10));
        let approvals = &config.approvals;
        assert_eq!(approvals.timeout_for(Tier::T4), Duration::from_secs(600));
        assert_eq!(approvals.timeout_for(Tier::T2), Duration::from_secs(90));
        assert_eq!(
            (
                approvals.required_for(Tier::T3),
                approvals.required_for(Tier::T4)
            ),
            (2, 1)
        );
        assert!(config.admin.tls, "off loopback, TLS by default");
        assert!(
            !parse("").unwrap().admin.tls,
            "on loopback, plain by default"
        );
        assert_eq!(parse("").unwrap().upstream.target, Upstream::InCluster);
        let kubeconfig = parse("upstream: {kubeconfig: kc, context: dev}").unwrap();
        assert_eq!(
            kubeconfig.upstream.target,
            Upstream::Kubeconfig {
                path: "kc".into(),
                context: Some("dev".into())
            }
        );
    }

    /// Config text after the minimal one, and the start of the error it makes.
    const REFUSED: &[(&str, &str)] = &[
        (
            "upstream: {server: \"https://a\", kubeconfig: kc}",
            "sluice.yaml: upstream: set either server (with ca / token_file) or kubeconfig, not both",
        ),
        (
            "upstream: {context: dev}",
            "sluice.yaml: upstream: context needs kubeconfig",
        ),
        (
            "upstream: {kubeconfig: kc, ca: ca.crt}",
            "sluice.yaml: upstream: ca and token_file need server",
        ),
        (
            "upstream: {server: \"10.0.0.1:6443\"}",
            "sluice.yaml: upstream.server: \"10.0.0.1:6443\" is not an http(s) URL",
        ),
        (
            "upstream: {timeout: soon}",
            "sluice.yaml: upstream.timeout: \"soon\" is not a duration like 30s",
        ),
        (
            "audit: {path: a, rotate_bytes: 100}",
            "sluice.yaml: audit.rotate_bytes: 100 is too small (at least 4096)",
        ),
        (
            "approvals: {timeouts: {5: 1m}}",
            "sluice.yaml: approvals.timeouts: tier 5 does not exist (0-4)",
        ),
        (
            "approvals: {timeouts: {4: soon}}",
            "sluice.yaml: approvals.timeouts: tier 4: \"soon\" is not a duration",
        ),
        (
            "approvals: {required: {4: 0}}",
            "sluice.yaml: approvals.required: tier 4: a tier needs at least 1 approver",
        ),
        (
            "approvals: {notify: {url: \"ftp://x\"}}",
            "sluice.yaml: approvals.notify.url: \"ftp://x\" is not an http(s) URL",
        ),
        (
            "admin: {listen: \"0.0.0.0:9443\", tls: false}",
            "sluice.yaml: admin: plain HTTP is allowed only on loopback, not 0.0.0.0:9443",
        ),
        (
            "upstream: {sever: \"https://a\"}",
            "sluice.yaml: upstream.sever: unknown field",
        ),
    ];

    #[test]
    fn a_value_that_cannot_mean_anything_names_the_file_and_the_key() {
        for &(extra, expected) in REFUSED {
            let text = if extra.starts_with("audit") {
                format!("{}{extra}", MINIMAL.replace("audit: {path: a.jsonl}\n", ""))
            } else {
                format!("{MINIMAL}{extra}")
            };
            let err = yaml::parse_str::<Config>(&text, Path::new("sluice.yaml"))
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(expected),
                "{extra}:\n  {err}\n  wanted {expected}"
            );
        }
    }
}
