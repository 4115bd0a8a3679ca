//! Connection attacks: not-TLS on the TLS port, certificates sluice must not trust,
//! slowloris, and a client that never reads what it asked for.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Version};
use http_body_util::Full;
use rand::RngCore;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::support::ApiServer;
use crate::support::certs::DatedCa;
use crate::support::client::HttpsClient;
use crate::support::raw::{self, assert_still_serving, read_until_close, status, tls_config};
use crate::support::rogue::{Behaviour, Rogue};
use crate::support::rss::{open_fds, rss_kib};
use crate::support::sluice::{AGENT_TOKEN, Options, Sluice};

const SPIFFE: &str = "spiffe://sluice.local/agent/cert-bot";

#[tokio::test]
async fn plaintext_and_random_bytes_on_the_tls_port_get_no_http() {
    let api = ApiServer::start().await;
    let sluice = Sluice::start(&api).await;
    let mut noise = vec![0u8; 64 * 1024];
    rand::rng().fill_bytes(&mut noise);
    for bytes in [raw::get("/api/v1/namespaces/default/secrets"), noise] {
        let mut tcp = TcpStream::connect(sluice.addr).await.unwrap();
        let _ = tcp.write_all(&bytes).await;
        let text = read_until_close(&mut tcp).await;
        assert!(!text.contains("HTTP/1."), "{text}");
    }
    assert!(api.requests().is_empty());
    assert_still_serving(&sluice).await;
}

/// Sends one request with `identity` and returns the status (0: no HTTP response at all).
async fn status_with_cert(sluice: &Sluice, identity: Option<(&str, &str)>) -> u16 {
    let config = tls_config(&sluice.ca.cert_pem(), &[b"http/1.1"], identity);
    let Ok(mut tls) = raw::connect(sluice.addr, config).await else {
        return 0;
    };
    let request =
        b"GET /api/v1/namespaces/default/pods HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    if tls.write_all(request).await.is_err() {
        return 0;
    }
    status(&read_until_close(&mut tls).await)
}

/// A workstation's soft limit on open files (1024 by default) would stop sluice near a
/// thousand connections, new ones waiting in the backlog while accept fails; sluice takes
/// the hard limit at start.
#[tokio::test]
async fn connections_past_the_soft_open_files_limit_are_all_accepted() {
    let api = ApiServer::start().await;
    let options = Options {
        open_files: Some((64, 4096)),
        ..Options::default()
    };
    let sluice = Sluice::start_with(&api, options).await;
    let config = tls_config(&sluice.ca.cert_pem(), &[b"http/1.1"], None);
    let mut held = Vec::new();
    for i in 0..100 {
        let connect = raw::connect(sluice.addr, config.clone());
        let tls = tokio::time::timeout(Duration::from_secs(5), connect)
            .await
            .unwrap_or_else(|_| panic!("connection {i}: no handshake within 5 s"))
            .unwrap();
        held.push(tls);
    }
    assert_still_serving(&sluice).await;
}

/// Every connection makes a full handshake: sluice issues no session tickets (TLS 1.3) and
/// keeps no session ids (TLS 1.2). kubectl (Go) never resumes a session, so tickets were
/// work and bytes for nothing on every `kubectl` run; and a resumed session would skip
/// verifying its client certificate again.
#[tokio::test]
async fn no_tls_session_is_resumed() {
    let api = ApiServer::start().await;
    let sluice = Sluice::start(&api).await;
    // A client that keeps and offers sessions (rustls's default).
    let config = tls_config(&sluice.ca.cert_pem(), &[b"http/1.1"], None);
    let request = raw::get("/version");
    for attempt in 0..3 {
        let mut tls = raw::connect(sluice.addr, config.clone()).await.unwrap();
        assert_eq!(
            tls.get_ref().1.handshake_kind(),
            Some(rustls::HandshakeKind::Full),
            "connection {attempt}"
        );
        // Reading to the end takes in any ticket sent after the handshake.
        tls.write_all(&request).await.unwrap();
        assert_eq!(status(&read_until_close(&mut tls).await), 200);
    }
}

#[tokio::test]
async fn client_certificates_sluice_must_not_trust_fail_the_handshake() {
    let api = ApiServer::start().await;
    let trusted = DatedCa::new();
    let sluice = Sluice::start_with(
        &api,
        Options {
            policy: "default: allow\nagents: {}\n".into(),
            cert_agents: vec![("cert-bot".into(), SPIFFE.into())],
            agents_ca: Some(trusted.cert_pem.clone()),
            ..Options::default()
        },
    )
    .await;
    let good = trusted.issue(SPIFFE, 2020, 2090);
    assert_eq!(
        status_with_cert(&sluice, Some((&good.0, &good.1))).await,
        200
    );
    let foreign = DatedCa::new().issue(SPIFFE, 2020, 2090);
    let expired = trusted.issue(SPIFFE, 2000, 2010);
    let not_yet = trusted.issue(SPIFFE, 2080, 2090);
    for (what, (cert, key)) in [
        ("foreign CA", foreign),
        ("expired", expired),
        ("not yet valid", not_yet),
    ] {
        let code = status_with_cert(&sluice, Some((&cert, &key))).await;
        assert_eq!(code, 0, "{what}: sluice answered HTTP {code}");
    }
    // Without a certificate the connection is fine but unauthenticated.
    assert_eq!(status_with_cert(&sluice, None).await, 401);
    assert_eq!(
        api.requests().len(),
        1,
        "only the trusted certificate's request"
    );
}

#[tokio::test]
async fn slowloris_connections_are_closed_after_the_header_timeout() {
    const CONNECTIONS: usize = 500;
    let api = ApiServer::start().await;
    let sluice = Sluice::start_with(
        &api,
        Options {
            extra_config: "limits: {header_read_timeout: 1s}".into(),
            ..Options::default()
        },
    )
    .await;
    let baseline = open_fds(sluice.pid());
    let config = tls_config(&sluice.ca.cert_pem(), &[b"http/1.1"], None);
    let mut slow = JoinSet::new();
    let waiting = Arc::new(AtomicUsize::new(0));
    for _ in 0..CONNECTIONS {
        let config = config.clone();
        let addr = sluice.addr;
        let waiting = waiting.clone();
        slow.spawn(async move {
            let mut tls = raw::connect(addr, config).await.unwrap();
            tls.write_all(b"GET /api/v1/namespaces/default/pods HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
            waiting.fetch_add(1, Ordering::SeqCst);
            let sent = Instant::now();
            let _ = read_until_close(&mut tls).await;
            sent.elapsed()
        });
    }
    // With all of them hanging, everyone else is still served.
    while waiting.load(Ordering::SeqCst) < CONNECTIONS {
        assert!(!slow.is_empty());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_still_serving(&sluice).await;
    let mut closed = 0;
    while let Some(held) = slow.join_next().await {
        let held = held.unwrap();
        assert!(
            held < Duration::from_secs(8),
            "a slow connection was held {held:?}"
        );
        closed += 1;
    }
    assert_eq!(closed, CONNECTIONS);
    // sluice let go of the sockets too.
    let deadline = Instant::now() + Duration::from_secs(5);
    while open_fds(sluice.pid()) > baseline + 10 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        open_fds(sluice.pid()) <= baseline + 10,
        "{} fds",
        open_fds(sluice.pid())
    );
    assert_still_serving(&sluice).await;
}

#[tokio::test]
async fn a_client_that_never_reads_does_not_grow_sluice() {
    let rogue = Rogue::start(Behaviour::StreamForever).await;
    let api = ApiServer::start().await;
    let sluice =
        Sluice::start_with(&api, Options::with_upstream(rogue.upstream_config("5s"))).await;
    let before = rss_kib(sluice.pid());
    let mut stalled = raw::connect_h1(&sluice).await;
    stalled
        .write_all(&raw::get("/api/v1/namespaces/default/pods?watch=1"))
        .await
        .unwrap();
    // Wait until the rogue's writes stall (backpressure all the way), then check memory.
    let mut last = u64::MAX;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = rogue.written.load(Ordering::SeqCst);
        if now == last && now > 0 || Instant::now() > deadline {
            break;
        }
        last = now;
    }
    let written = rogue.written.load(Ordering::SeqCst);
    let after = rss_kib(sluice.pid());
    assert!(
        written < 64 << 20,
        "the rogue wrote {written} bytes into sluice"
    );
    assert!(after < before + 32 * 1024, "RSS {before} KiB → {after} KiB");
    drop(stalled);
    // The agent left: sluice drops the upstream stream too, and records the completion.
    sluice
        .wait_for_event("the abandoned stream's completion", |e| {
            e["stage"] == "complete"
        })
        .await;
}

/// Agents that ask for a large object and never read it must not hold up anyone else: sluice
/// shares one HTTP/2 connection to the apiserver among agents, so what it holds unread for
/// one agent cannot be allowed to use up that connection's flow-control window.
#[tokio::test]
async fn agents_that_never_read_a_large_response_do_not_stall_other_agents() {
    let api = ApiServer::start().await;
    let sluice = Sluice::start(&api).await;
    let before = rss_kib(sluice.pid());
    let stalled = stall_agents(&api, &sluice, 4).await;
    // What sluice holds for them is bounded by each stream's own window (2 MiB upstream,
    // hyper's send buffer towards the agent), not by the 32 MiB they asked for.
    let after = rss_kib(sluice.pid());
    assert!(
        after < before + 24 * 1024,
        "RSS {before} KiB -> {after} KiB"
    );
    assert_answered_soon(&sluice).await;
    drop(stalled);
}

/// Nor may they take every stream the apiserver allows on a connection: past its limit,
/// sluice opens another connection rather than make other agents' requests wait.
#[tokio::test]
async fn agents_that_never_read_do_not_take_the_streams_others_need() {
    let api = ApiServer::start_with_stream_limit(Some(4)).await;
    let sluice = Sluice::start(&api).await;
    let stalled = stall_agents(&api, &sluice, 6).await;
    assert_answered_soon(&sluice).await;
    drop(stalled);
}

/// `count` agents, each on its own connection (so only sluice's upstream side is shared),
/// that ask for an 8 MB object and read none of it; returned so they stay open.
async fn stall_agents(
    api: &ApiServer,
    sluice: &Sluice,
    count: usize,
) -> Vec<(HttpsClient, http::Response<hyper::body::Incoming>)> {
    let data = "x".repeat(8 << 20);
    api.put_object(
        "configmaps",
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "big", "namespace": "default"}, "data": {"blob": data}}),
    );
    let url = format!("{}/api/v1/namespaces/default/configmaps/big", sluice.url());
    let mut stalled = Vec::new();
    for _ in 0..count {
        let client = HttpsClient::new(&sluice.ca.cert_pem(), Version::HTTP_2);
        let request = Request::get(&url)
            .header("authorization", format!("Bearer {AGENT_TOKEN}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = tokio::time::timeout(Duration::from_secs(10), client.open(request))
            .await
            .unwrap_or_else(|_| panic!("no response head in 10 s\n{}", sluice.log()));
        assert_eq!(response.status(), 200);
        stalled.push((client, response));
    }
    // Give the apiserver time to push what the windows allow.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stalled
}

/// A small request from another agent is answered within 5 s.
async fn assert_answered_soon(sluice: &Sluice) {
    let probe = HttpsClient::new(&sluice.ca.cert_pem(), Version::HTTP_2);
    let started = Instant::now();
    let got = tokio::time::timeout(
        Duration::from_secs(10),
        probe.get(
            &format!("{}/api/v1/namespaces/default/pods", sluice.url()),
            &[("authorization", &format!("Bearer {AGENT_TOKEN}"))],
        ),
    )
    .await;
    let response = got.unwrap_or_else(|_| {
        panic!(
            "a small request waited 10 s behind agents that do not read\n{}",
            sluice.log()
        )
    });
    assert_eq!(response.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
