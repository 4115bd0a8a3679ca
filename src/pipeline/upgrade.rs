//! Connection upgrades (exec, attach, port-forward over SPDY/3.1 or WebSocket): once the
//! upstream answers 101, the agent's connection and the upstream's are spliced byte for
//! byte until either side closes. Whether the upgrade is *allowed* was policy's job.

use http::{Request, Version, header};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

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
pub async fn splice(agent: OnUpgrade, upstream: OnUpgrade, mut completion: Completion) {
    let (agent, upstream) = match tokio::try_join!(agent, upstream) {
        Ok(pair) => pair,
        Err(err) => {
            completion.set_reason(format!("upgrade failed: {err}"));
            return;
        }
    };
    let mut agent = TokioIo::new(agent);
    let mut upstream = TokioIo::new(upstream);
    match tokio::io::copy_bidirectional(&mut agent, &mut upstream).await {
        Ok((to_upstream, to_agent)) => completion.add_bytes(to_upstream + to_agent),
        Err(err) => completion.set_reason(format!("stream ended: {err}")),
    }
}
