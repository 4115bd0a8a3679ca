//! The body phase: the writes whose tier depends on their body have it read here, before
//! classification, and everything else streams on untouched.
//!
//! - a create, update or patch of a pod or pod-template workload: its pod spec is judged
//!   ([`crate::inspect`]), and the body tier raises the path tier;
//! - a DELETE or DELETECOLLECTION: its `DeleteOptions` body, if any, decides whether it is a
//!   dry run, as the apiserver reads it (a body overrides the query).
//!
//! A body that is too large (413), too slow (408), of a type sluice does not read (415) or
//! undecodable (400) is refused: a body sluice could not read is never rated lower.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Request, header};
use http_body_util::BodyExt;

use crate::Body;
use crate::config::LimitsConfig;
use crate::error::{Refusal, full};
use crate::inspect::{self, BodyKind, BodyTier, Reads};
use crate::request_info::{RequestInfo, Verb};

/// What the body phase learned: the body tier of a workload write, if anything raised it.
pub type Judged = Option<BodyTier>;

/// Reads the body where the tier depends on it; returns the request to go on with.
pub(super) async fn read_if_needed(
    limits: &LimitsConfig,
    request: Request<Body>,
    info: &mut RequestInfo,
) -> Result<(Request<Body>, Judged), Refusal> {
    let reads = Reads::of(info);
    if reads == Reads::Nothing {
        return Ok((request, None));
    }
    let content_type = content_type(&request);
    // The body kind is settled before the body is read: no type sluice cannot read is
    // worth waiting for.
    let kind = match reads {
        Reads::PodSpec(_) => Some(
            BodyKind::of(info.kube_verb() == Some(Verb::Patch), &content_type)
                .map_err(|err| Refusal::UnsupportedMediaType(format!("sluice: {err}")))?,
        ),
        _ => None,
    };
    let (request, body) = buffer(limits, request).await?;
    let judged = match (reads, kind) {
        (Reads::PodSpec(workload), Some(kind)) => {
            let resource = info.resource().unwrap_or("");
            inspect::judge(workload, resource, kind, &body)
                .map_err(|err| Refusal::BadRequest(format!("sluice: {err}")))?
        }
        _ => {
            inspect::settle_delete_dry_run(info, &body, &content_type);
            None
        }
    };
    Ok((request, judged))
}

/// The whole body, bounded by `limits.max_body_bytes` and `limits.body_read_timeout`,
/// and the request rebuilt around it.
async fn buffer(
    limits: &LimitsConfig,
    request: Request<Body>,
) -> Result<(Request<Body>, Bytes), Refusal> {
    let (parts, body) = request.into_parts();
    let body = read_within(
        body,
        limits.max_body_bytes,
        limits.body_read_timeout,
        "limits.max_body_bytes",
    )
    .await?;
    Ok((Request::from_parts(parts, full(body.clone())), body))
}

/// A body read whole, refusing (413) one larger than `max` bytes (the config key `setting`
/// is named) and (408) one that has not arrived `within`.
pub(super) async fn read_within(
    body: Body,
    max: usize,
    within: Duration,
    setting: &str,
) -> Result<Bytes, Refusal> {
    match tokio::time::timeout(within, read_at_most(body, max)).await {
        Ok(Ok(Some(bytes))) => Ok(bytes),
        Ok(Ok(None)) => Err(Refusal::PayloadTooLarge(format!(
            "sluice: this request may carry at most {max} bytes ({setting})"
        ))),
        Ok(Err(err)) => Err(Refusal::BadRequest(format!(
            "sluice: could not read the request body: {err}"
        ))),
        Err(_) => Err(Refusal::BodyTimeout(format!(
            "sluice: the request body did not arrive within {}s",
            within.as_secs()
        ))),
    }
}

/// The whole body, or `None` once it passes `max` bytes. Frame by frame rather than through
/// `http_body_util::Limited`: its bound on the inner body's error, a boxed `dyn Error` here,
/// is one rustc cannot prove for every lifetime, so no request future holding it is `Send`.
async fn read_at_most(mut body: Body, max: usize) -> Result<Option<Bytes>, crate::BoxError> {
    let mut read = BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if read.len() + data.len() > max {
                return Ok(None);
            }
            read.extend_from_slice(&data);
        }
    }
    Ok(Some(read.freeze()))
}

fn content_type<B>(request: &Request<B>) -> String {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}
