//! Connection upgrades (exec, attach, port-forward over SPDY/3.1 or WebSocket): once the
//! upstream answers 101, the agent's connection and the upstream's are spliced byte for
//! byte until either side closes. Whether the upgrade is *allowed* was policy's job.

use std::sync::atomic::{AtomicU64, Ordering};

use http::{Request, Version, header};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::Completion;

/// An HTTP/1.1 request asking to switch protocols.
pub fn is_upgrade<B>(request: &Request<B>) -> bool {
    request.version() == Version::HTTP_11
        && request.headers().contains_key(header::UPGRADE)
        && request
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

/// Copies bytes both ways until both directions are done; the completion records the total.
/// Each direction is counted on its own, so the total survives an abrupt close (kubectl
/// often drops the TLS connection without close_notify when a command ends).
pub async fn splice(agent: OnUpgrade, upstream: OnUpgrade, mut completion: Completion) {
    let (agent, upstream) = match tokio::try_join!(agent, upstream) {
        Ok(pair) => pair,
        Err(err) => {
            completion.set_reason(format!("upgrade failed: {err}"));
            return;
        }
    };
    let (agent_read, agent_write) = tokio::io::split(TokioIo::new(agent));
    let (upstream_read, upstream_write) = tokio::io::split(TokioIo::new(upstream));
    let (sent, received) = (AtomicU64::new(0), AtomicU64::new(0));
    let to_upstream = pump(agent_read, upstream_write, &sent);
    let to_agent = pump(upstream_read, agent_write, &received);
    tokio::pin!(to_upstream, to_agent);
    // The session lasts as long as the upstream side: once the upstream has closed, what the
    // agent still sends has nowhere to go, so its direction is dropped too. An agent that
    // half-closes keeps receiving until the upstream is done (port-forward relies on it).
    let ended = tokio::select! {
        ended = &mut to_agent => ended,
        ended = &mut to_upstream => match ended {
            None => to_agent.await,
            // The agent's side broke: nobody is left to receive.
            err => err,
        },
    };
    completion.add_bytes(sent.load(Ordering::Relaxed) + received.load(Ordering::Relaxed));
    if let Some(err) = ended {
        tracing::debug!(error = %err, "upgraded stream ended abruptly");
    }
}

/// Copies until EOF or error, counting into `count`, then shuts the writer down
/// (half-close). Returns the error that ended it, if any.
async fn pump<R, W>(mut from: R, mut to: W, count: &AtomicU64) -> Option<std::io::Error>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    let error = loop {
        match from.read(&mut buf).await {
            Ok(0) => break None,
            Ok(n) => {
                if let Err(err) = to.write_all(&buf[..n]).await {
                    break Some(err);
                }
                count.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(err) => break Some(err),
        }
    };
    let _ = to.shutdown().await;
    error
}
