//! The credential sluice presents upstream. A token file (explicit `token_file`, in-cluster,
//! or a kubeconfig's `tokenFile`) is watched and re-read when it changes: projected
//! ServiceAccount tokens rotate. Everything else the kube crate knows (static tokens, exec
//! plugins, OIDC refresh) is delegated to its own auth layer, so sluice does not re-implement
//! kubeconfig credentials.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderValue, Request, header};
use http_body_util::Empty;
use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceExt};

use super::{ForwardError, UpstreamError};
use crate::reload::{self, Change};

type KubeAuthService =
    BoxCloneSyncService<Request<Empty<Bytes>>, Option<HeaderValue>, crate::BoxError>;

/// Where the upstream `Authorization` header comes from.
pub enum UpstreamAuth {
    /// Client certificate only (it is in the TLS config), or no credential at all.
    None,
    /// A token file, re-read when it changes; the last good token stays if it vanishes.
    File { current: Arc<ArcSwap<HeaderValue>> },
    /// The kube crate's auth layer, run on an empty request to obtain the header.
    Kube(KubeAuthService),
}

impl UpstreamAuth {
    /// Picks the credential source for a resolved kube config.
    pub fn from_kube_config(config: &kube::Config) -> Result<UpstreamAuth, UpstreamError> {
        if let Some(path) = &config.auth_info.token_file {
            return UpstreamAuth::watch_file(PathBuf::from(path));
        }
        use kube::client::ConfigExt;
        let layer = config
            .auth_layer()
            .map_err(|e| UpstreamError::Config(format!("credential: {e}")))?;
        Ok(match layer {
            None => UpstreamAuth::None,
            Some(layer) => {
                // The layers expect an HTTP service underneath; this one echoes the header
                // they set back in its response.
                let capture = tower::service_fn(|req: Request<Empty<Bytes>>| async move {
                    let mut echo = http::Response::new(Empty::<Bytes>::new());
                    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
                        echo.headers_mut()
                            .insert(header::AUTHORIZATION, value.clone());
                    }
                    Ok::<_, crate::BoxError>(echo)
                });
                let service = layer
                    .layer(capture)
                    .map_response(|echo| echo.headers().get(header::AUTHORIZATION).cloned());
                UpstreamAuth::Kube(BoxCloneSyncService::new(service))
            }
        })
    }

    fn watch_file(path: PathBuf) -> Result<UpstreamAuth, UpstreamError> {
        let bytes = std::fs::read(&path)
            .map_err(|e| UpstreamError::Config(format!("token file {}: {e}", path.display())))?;
        let value = bearer(&bytes).ok_or_else(|| {
            UpstreamError::Config(format!(
                "token file {}: empty or not a token",
                path.display()
            ))
        })?;
        let current = Arc::new(ArcSwap::from_pointee(value));
        let swap = current.clone();
        let shown = path.display().to_string();
        reload::watch(
            path.clone(),
            reload::sha256_hex(&bytes),
            move |change| match change {
                Change::Contents { bytes, .. } => match bearer(bytes) {
                    Some(value) => {
                        swap.store(Arc::new(value));
                        tracing::info!(file = %shown, "upstream token reloaded");
                    }
                    None => {
                        tracing::warn!(file = %shown, "upstream token file is empty or invalid; keeping the last good token")
                    }
                },
                Change::Unreadable(err) => {
                    tracing::warn!(file = %shown, error = %err, "upstream token file unreadable; keeping the last good token")
                }
            },
        );
        Ok(UpstreamAuth::File { current })
    }

    /// The `Authorization` header for the next upstream request, if any.
    pub async fn header(&self) -> Result<Option<HeaderValue>, ForwardError> {
        match self {
            UpstreamAuth::None => Ok(None),
            UpstreamAuth::File { current, .. } => Ok(Some(HeaderValue::clone(&current.load()))),
            UpstreamAuth::Kube(service) => service
                .clone()
                .oneshot(Request::new(Empty::new()))
                .await
                .map_err(|e| ForwardError::Credential(e.to_string())),
        }
    }
}

/// `Bearer <token>` from a token file's bytes (trailing newline trimmed).
fn bearer(bytes: &[u8]) -> Option<HeaderValue> {
    let token = std::str::from_utf8(bytes).ok()?.trim();
    if token.is_empty() {
        return None;
    }
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}
