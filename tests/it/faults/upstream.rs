//! The upstream refuses, resets, stalls, or presents a certificate sluice must not trust;
//! its token file rotates or vanishes.

use std::time::Duration;

use super::eventually;
use crate::support::ApiServer;
use crate::support::TestCa;
use crate::support::raw::{self, assert_still_serving, exchange, status};
use crate::support::rogue::{Behaviour, Rogue};
use crate::support::rss::open_fds;
use crate::support::sluice::{Options, Sluice};

const PODS: &str = "/api/v1/namespaces/default/pods";

async fn with_upstream(api: &ApiServer, upstream: String) -> Sluice {
    Sluice::start_with(api, Options::with_upstream(upstream)).await
}

/// The `complete` event of the request whose response was `text`.
async fn completion(sluice: &Sluice, text: &str) -> serde_json::Value {
    let id = text
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .expect("the response carries X-Request-ID")
        .trim()
        .to_owned();
    sluice
        .wait_for_event("the completion", |e| {
            e["stage"] == "complete" && e["request_id"] == id.as_str()
        })
        .await
}

/// The request's completion event, checked to give a reason that says `what`.
async fn completion_saying(sluice: &Sluice, text: &str, what: &str) -> serde_json::Value {
    let event = completion(sluice, text).await;
    let reason = event["reason"].as_str().unwrap_or_default();
    assert!(reason.contains(what), "reason should say {what:?}: {event}");
    event
}

#[tokio::test]
async fn a_refused_connection_is_a_502_with_a_complete_event() {
    let api = ApiServer::start().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let upstream = format!(
        "upstream: {{server: \"https://127.0.0.1:{port}\", ca: upstream-ca.crt, token_file: upstream-token, connect_timeout: 1s}}\n"
    );
    let sluice = with_upstream(&api, upstream).await;
    let text = exchange(&sluice, &raw::get(PODS)).await;
    assert_eq!(status(&text), 502, "{text}");
    let event = completion_saying(&sluice, &text, "upstream").await;
    assert_eq!(event["status"], 502);
}

/// An upstream that accepts TCP and never answers the TLS handshake is unreachable after
/// `connect_timeout`, like one that refuses; and requests that queued behind that one dial
/// share its failure rather than each dialling in turn (the last would wait out every dial
/// before its own and time out).
#[tokio::test]
async fn an_upstream_that_accepts_and_never_answers_is_a_502_for_every_waiting_request() {
    let api = ApiServer::start().await;
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let upstream = format!(
        "upstream: {{server: \"https://127.0.0.1:{port}\", ca: upstream-ca.crt, token_file: upstream-token, connect_timeout: 1s, timeout: 4s}}\n"
    );
    let sluice = with_upstream(&api, upstream).await;
    let request = raw::get(PODS);
    let requests = (0..6).map(|_| exchange(&sluice, &request));
    let texts = futures_util::future::join_all(requests).await;
    for text in &texts {
        assert_eq!(status(text), 502, "{text}");
    }
    completion_saying(&sluice, &texts[0], "no answer within").await;
    holder.abort();
}

/// A server that agrees to HTTP/2 and then never sends its SETTINGS: sluice waits for them
/// (they carry the stream limit) only as long as `connect_timeout`, then answers 502.
#[tokio::test]
async fn an_http2_upstream_that_never_sends_its_settings_is_a_502() {
    let rogue = Rogue::start(Behaviour::SilentHttp2).await;
    let api = ApiServer::start().await;
    let upstream = rogue
        .upstream_config("4s")
        .replace("timeout: 4s", "connect_timeout: 1s, timeout: 4s");
    let sluice = Sluice::start_with(&api, Options::with_upstream(upstream)).await;
    let started = std::time::Instant::now();
    let text = exchange(&sluice, &raw::get(PODS)).await;
    assert_eq!(status(&text), 502, "{text}\n{}", sluice.log());
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    completion_saying(&sluice, &text, "no answer within").await;
}

#[tokio::test]
async fn an_upstream_with_a_certificate_from_another_ca_is_a_502() {
    let api = ApiServer::start().await;
    let sluice = Sluice::start(&api).await;
    // Replace the trusted upstream CA before sluice connects: sluice read it at start, so
    // start a second sluice whose CA file is some other CA.
    let other = TestCa::new("not the apiserver's CA");
    let dir = tempfile::tempdir().unwrap();
    let ca = other.write_cert(dir.path(), "ca.crt");
    let upstream = format!(
        "upstream: {{server: \"{}\", ca: \"{}\", token_file: upstream-token}}\n",
        api.url(),
        ca.display()
    );
    let wrong = with_upstream(&api, upstream).await;
    let text = exchange(&wrong, &raw::get(PODS)).await;
    assert_eq!(status(&text), 502, "{text}");
    assert!(
        api.requests().is_empty(),
        "a request crossed an untrusted TLS session"
    );
    assert_eq!(completion(&wrong, &text).await["status"], 502);
    assert_still_serving(&sluice).await;
}

#[tokio::test]
async fn a_slow_upstream_is_a_504_and_sluice_lets_go_of_it() {
    let api = ApiServer::start().await;
    let upstream = format!(
        "upstream: {{server: \"{}\", ca: upstream-ca.crt, token_file: upstream-token, timeout: 1s}}\n",
        api.url()
    );
    let sluice = with_upstream(&api, upstream).await;
    assert_still_serving(&sluice).await;
    let baseline = open_fds(sluice.pid());
    api.set_response_delay(Duration::from_secs(3));
    let text = exchange(&sluice, &raw::get(PODS)).await;
    assert_eq!(status(&text), 504, "{text}");
    assert_eq!(completion(&sluice, &text).await["status"], 504);
    api.set_response_delay(Duration::ZERO);
    assert_still_serving(&sluice).await;
    // Two upstream connections may have been added (each request takes the next of the
    // pooled clients); the agent's last connection closes on sluice's side a moment after
    // the client hangs up, so wait for it rather than count it as a leak.
    eventually(
        "sluice's sockets settle at most two upstream connections above where they were",
        &sluice,
        || async { open_fds(sluice.pid()) <= baseline + 2 },
    )
    .await;
}

#[tokio::test]
async fn a_reset_mid_response_is_recorded_in_the_complete_event() {
    let rogue = Rogue::start(Behaviour::ResetMidResponse(1000)).await;
    let api = ApiServer::start().await;
    let sluice = with_upstream(&api, rogue.upstream_config("5s")).await;
    let text = exchange(&sluice, &raw::get(PODS)).await;
    assert_eq!(status(&text), 200, "the head had already gone: {text}");
    // The agent's connection is cut too: it never mistakes the truncated body for a whole one.
    assert!(text.len() < 1_000_000, "a truncated body looked complete");
    let event = completion_saying(&sluice, &text, "upstream stream failed").await;
    assert!(event["bytes"].as_u64().unwrap() <= 1000, "{event}");
    assert_eq!(rogue.requests().len(), 1);
}

#[tokio::test]
async fn a_reset_mid_watch_is_recorded_and_the_agent_sees_the_stream_end() {
    let rogue = Rogue::start(Behaviour::ResetMidWatch).await;
    let api = ApiServer::start().await;
    let sluice = with_upstream(&api, rogue.upstream_config("5s")).await;
    let text = exchange(&sluice, &raw::get(&format!("{PODS}?watch=1"))).await;
    assert_eq!(status(&text), 200, "{text}");
    assert!(
        text.contains("\"ADDED\""),
        "the event before the reset arrived: {text}"
    );
    assert!(
        !text.ends_with("0\r\n\r\n"),
        "a reset must not look like a clean end: {text}"
    );
    completion_saying(&sluice, &text, "upstream stream failed").await;
    eventually("the rogue's connection is closed", &sluice, || async {
        rogue.open.load(std::sync::atomic::Ordering::SeqCst) == 0
    })
    .await;
}

#[tokio::test]
async fn the_upstream_token_file_rotates_and_its_deletion_keeps_the_last_token() {
    let api = ApiServer::start().await;
    let sluice = Sluice::start(&api).await;
    let token = sluice.path("upstream-token");
    assert_still_serving(&sluice).await;
    // Rotated to a token the double does not know: the double now says 401.
    std::fs::write(&token, "rotated-but-wrong").unwrap();
    eventually("the rotated token is used", &sluice, || async {
        status(&exchange(&sluice, &raw::get(PODS)).await) == 401
    })
    .await;
    assert_eq!(
        api.requests().last().unwrap().header("authorization"),
        Some("Bearer rotated-but-wrong")
    );
    std::fs::write(&token, api.token()).unwrap();
    eventually("the good token is back", &sluice, || async {
        status(&exchange(&sluice, &raw::get(PODS)).await) == 200
    })
    .await;
    // Deleted (a projected volume mid-swap): the last good token keeps working.
    std::fs::remove_file(&token).unwrap();
    eventually("the deletion is noticed", &sluice, || async {
        sluice.log().contains("upstream token file unreadable")
    })
    .await;
    assert_still_serving(&sluice).await;
}

#[tokio::test]
async fn agents_that_vanish_mid_watch_leak_no_upstream_watch_or_socket() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let api = ApiServer::start().await;
    let sluice = Sluice::start(&api).await;
    let open_watch = || async {
        let mut tls = raw::connect_h1(&sluice).await;
        tls.write_all(&raw::get(&format!("{PODS}?watch=1")))
            .await
            .unwrap();
        let mut first = [0u8; 64];
        let n = tls.read(&mut first).await.unwrap();
        assert!(first[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &first[..n]);
        tls
    };
    // sluice keeps pooled upstream HTTP/2 connections open while idle: one for requests
    // that end, a few for watches, taken in turn. Warm them all before counting, so only
    // leaks show up in the difference.
    assert_still_serving(&sluice).await;
    let mut warm = Vec::new();
    for _ in 0..6 {
        warm.push(open_watch().await);
    }
    drop(warm);
    eventually("the warm-up watches are released", &sluice, || async {
        api.open_watches() == 0
    })
    .await;
    let baseline = open_fds(sluice.pid());
    let mut agents = Vec::new();
    for _ in 0..20 {
        agents.push(open_watch().await);
    }
    eventually("20 watches are open upstream", &sluice, || async {
        api.open_watches() == 20
    })
    .await;
    drop(agents);
    eventually("every upstream watch is released", &sluice, || async {
        api.open_watches() == 0
    })
    .await;
    eventually(
        "sluice's sockets are back to where they were",
        &sluice,
        || async { open_fds(sluice.pid()) <= baseline + 2 },
    )
    .await;
    assert_still_serving(&sluice).await;
}

#[tokio::test]
async fn an_upstream_http2_connection_that_goes_away_is_dialled_again() {
    let rogue = Rogue::start(Behaviour::GoAwayAfterOneRequest).await;
    let api = ApiServer::start().await;
    let sluice = with_upstream(&api, rogue.upstream_config("5s")).await;
    for n in 1..=3 {
        let text = exchange(&sluice, &raw::get(PODS)).await;
        assert_eq!(status(&text), 200, "request {n}: {text}");
        assert!(text.contains("PodList"), "request {n}: {text}");
    }
    assert_eq!(
        rogue.requests().len(),
        3,
        "each request reached the upstream once"
    );
    let accepted = rogue.accepted.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        accepted, 3,
        "one connection a request: the closed ones were not reused"
    );
}
