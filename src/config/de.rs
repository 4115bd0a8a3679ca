//! How `sluice.yaml`'s text becomes typed values: the shapes as written (`UpstreamFile`,
//! `AdminFile`) and their conversion, the field parsers, and the defaults. A conversion's
//! error is reported at its key (`upstream: ...`, `admin: ...`) by [`crate::yaml`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroU8;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer, de::Error as _};

use super::{AdminConfig, SyncMode, Upstream, UpstreamConfig};
use crate::classify::Tier;

/// `upstream:` as written: `server` (with `ca`, `token_file`) or `kubeconfig` (with
/// `context`), or neither.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UpstreamFile {
    #[serde(default)]
    kubeconfig: Option<PathBuf>,
    #[serde(default)]
    context: Option<String>,
    #[serde(default, deserialize_with = "optional_http_url")]
    server: Option<http::Uri>,
    #[serde(default)]
    ca: Option<PathBuf>,
    #[serde(default)]
    token_file: Option<PathBuf>,
    #[serde(default)]
    impersonate: bool,
    #[serde(default = "default_upstream_timeout", deserialize_with = "duration")]
    timeout: Duration,
    #[serde(default = "default_connect_timeout", deserialize_with = "duration")]
    connect_timeout: Duration,
}

impl TryFrom<UpstreamFile> for UpstreamConfig {
    type Error = String;

    fn try_from(file: UpstreamFile) -> Result<UpstreamConfig, String> {
        let explicit_only = file.ca.is_some() || file.token_file.is_some();
        let target = match (file.server, file.kubeconfig) {
            (Some(_), Some(_)) => {
                return Err(
                    "set either server (with ca / token_file) or kubeconfig, not both".into(),
                );
            }
            (None, Some(path)) if !explicit_only => Upstream::Kubeconfig {
                path,
                context: file.context,
            },
            (None, _) if explicit_only => return Err("ca and token_file need server".into()),
            (_, _) if file.context.is_some() => return Err("context needs kubeconfig".into()),
            (Some(server), None) => Upstream::Explicit {
                server,
                ca: file.ca,
                token_file: file.token_file,
            },
            (None, _) => Upstream::InCluster,
        };
        Ok(UpstreamConfig {
            target,
            impersonate: file.impersonate,
            timeout: file.timeout,
            connect_timeout: file.connect_timeout,
        })
    }
}

/// `admin:` as written; `tls` omitted means TLS unless `listen` is loopback.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AdminFile {
    #[serde(default = "default_admin_listen")]
    listen: SocketAddr,
    #[serde(default)]
    tls: Option<bool>,
}

impl TryFrom<AdminFile> for AdminConfig {
    type Error = String;

    fn try_from(file: AdminFile) -> Result<AdminConfig, String> {
        let loopback = file.listen.ip().is_loopback();
        let tls = file.tls.unwrap_or(!loopback);
        if !tls && !loopback {
            return Err(format!(
                "plain HTTP is allowed only on loopback, not {}",
                file.listen
            ));
        }
        Ok(AdminConfig {
            listen: file.listen,
            tls,
        })
    }
}

/// A duration like `30s` or `10m`.
pub(super) fn duration<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(de)?;
    parse_duration(&text).map_err(D::Error::custom)
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{text:?} is not a duration like 30s: {e}"))
}

/// An `http://` or `https://` URL.
pub(super) fn http_url<'de, D: Deserializer<'de>>(de: D) -> Result<http::Uri, D::Error> {
    let text = String::deserialize(de)?;
    let url: http::Uri = text
        .parse()
        .map_err(|e| D::Error::custom(format!("{text:?}: {e}")))?;
    match url.scheme_str() {
        Some("https" | "http") if url.authority().is_some() => Ok(url),
        _ => Err(D::Error::custom(format!("{text:?} is not an http(s) URL"))),
    }
}

fn optional_http_url<'de, D: Deserializer<'de>>(de: D) -> Result<Option<http::Uri>, D::Error> {
    http_url(de).map(Some)
}

/// At least 4096 bytes: a rotated file must hold more than a line or two.
pub(super) fn rotate_bytes<'de, D: Deserializer<'de>>(de: D) -> Result<u64, D::Error> {
    let bytes = u64::deserialize(de)?;
    if bytes < 4096 {
        return Err(D::Error::custom(format!(
            "{bytes} is too small (at least 4096)"
        )));
    }
    Ok(bytes)
}

/// `{tier: duration}`, e.g. `{4: 10m}`.
pub(super) fn tier_durations<'de, D: Deserializer<'de>>(
    de: D,
) -> Result<BTreeMap<Tier, Duration>, D::Error> {
    by_tier(de, |text: String| parse_duration(&text))
}

/// `{tier: approvers}`, e.g. `{4: 2}`; each at least 1.
pub(super) fn tier_approvers<'de, D: Deserializer<'de>>(
    de: D,
) -> Result<BTreeMap<Tier, NonZeroU8>, D::Error> {
    by_tier(de, |n: u8| {
        NonZeroU8::new(n).ok_or_else(|| "a tier needs at least 1 approver".to_owned())
    })
}

/// A map keyed by tier number (0 to 4), each value read as `V` and made a `T` by `parse`.
fn by_tier<'de, D, V, T>(
    de: D,
    parse: impl Fn(V) -> Result<T, String>,
) -> Result<BTreeMap<Tier, T>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    BTreeMap::<u8, V>::deserialize(de)?
        .into_iter()
        .map(|(n, value)| {
            let tier = Tier::from_u8(n)
                .ok_or_else(|| D::Error::custom(format!("tier {n} does not exist (0-4)")))?;
            let value = parse(value).map_err(|e| D::Error::custom(format!("tier {n}: {e}")))?;
            Ok((tier, value))
        })
        .collect()
}

pub(super) fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8443))
}
pub(super) fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9443))
}
pub(super) fn default_sync() -> SyncMode {
    SyncMode::Fsync
}
pub(super) fn default_rotate_bytes() -> u64 {
    256 * 1024 * 1024
}
pub(super) fn default_upstream_timeout() -> Duration {
    Duration::from_secs(60)
}
pub(super) fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}
pub(super) fn default_approval_timeout() -> Duration {
    Duration::from_secs(120)
}
pub(super) fn default_max_pending() -> usize {
    1000
}
pub(super) fn default_max_body_bytes() -> usize {
    1024 * 1024
}
pub(super) fn default_header_timeout() -> Duration {
    Duration::from_secs(10)
}
pub(super) fn default_shutdown_grace() -> Duration {
    Duration::from_secs(20)
}
pub(super) fn default_max_header_bytes() -> usize {
    64 * 1024
}
pub(super) fn default_max_uri_bytes() -> usize {
    8 * 1024
}
pub(super) fn default_max_inspected_body_bytes() -> usize {
    4 * 1024 * 1024
}
pub(super) fn default_body_read_timeout() -> Duration {
    Duration::from_secs(30)
}
