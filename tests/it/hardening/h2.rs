//! HTTP/2 floods: rapid reset (CVE-2023-44487) with the `h2` crate as a client, and a
//! CONTINUATION flood (CVE-2024-27316) written frame by frame. sluice must cut the
//! connection, keep its memory, and go on serving everyone else.

use std::time::Duration;

use http::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::ApiServer;
use crate::support::raw::{assert_still_serving, connect, tls_config};
use crate::support::rss::rss_kib;
use crate::support::sluice::{AGENT_TOKEN, Sluice};

#[tokio::test]
async fn rapid_reset_is_cut_off_and_sluice_keeps_serving() {
    let api = ApiServer::start().await;
    let sluice = Sluice::start(&api).await;
    let config = tls_config(&sluice.ca.cert_pem(), &[b"h2"], None);
    let tls = connect(sluice.addr, config).await.unwrap();
    let (client, connection) = h2::client::handshake(tls).await.unwrap();
    let driver = tokio::spawn(connection);
    let mut client = client;
    let mut opened = 0;
    // Open and reset streams until sluice stops taking them (or 10 000 have gone by).
    let _ = tokio::time::timeout(Duration::from_secs(20), async {
        for _ in 0..10_000 {
            let Ok(ready) = client.clone().ready().await else {
                return;
            };
            client = ready;
            let request = Request::get(format!("{}/api/v1/namespaces/default/pods", sluice.url()))
                .header("authorization", format!("Bearer {AGENT_TOKEN}"))
                .body(())
                .unwrap();
            let Ok((response, mut stream)) = client.send_request(request, false) else {
                return;
            };
            stream.send_reset(h2::Reason::CANCEL);
            drop(response);
            opened += 1;
        }
    })
    .await;
    // The client still holds the connection open: only sluice can have ended it.
    let ended = tokio::time::timeout(Duration::from_secs(10), driver)
        .await
        .expect("sluice kept a rapid-reset connection open")
        .unwrap();
    // GOAWAY (ENHANCE_YOUR_CALM), or a broken pipe when it lands mid-write.
    assert!(
        ended.is_err(),
        "after {opened} reset streams the connection ended cleanly"
    );
    drop(client);
    assert_still_serving(&sluice).await;
    // Upstream work is bounded: far fewer requests than streams opened reached the double.
    assert!(
        api.requests().len() < 1_000,
        "{} requests reached the upstream",
        api.requests().len()
    );
}

/// One HTTP/2 frame: 24-bit length, type, flags, stream id.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HPACK literal header without indexing (names and values shorter than 127 bytes).
fn literal(name: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = vec![0x00, name.len() as u8];
    out.extend_from_slice(name);
    out.push(value.len() as u8);
    out.extend_from_slice(value);
    out
}

#[tokio::test]
async fn continuation_flood_is_cut_off_with_bounded_memory() {
    let api = ApiServer::start().await;
    let sluice = Sluice::start(&api).await;
    let before = rss_kib(sluice.pid());
    let config = tls_config(&sluice.ca.cert_pem(), &[b"h2"], None);
    let mut tls = connect(sluice.addr, config).await.unwrap();
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    tls.write_all(&frame(0x4, 0, 0, &[])).await.unwrap(); // SETTINGS
    // :method GET, :scheme https, :path /, then :authority, all from the static table.
    let mut block = vec![0x82, 0x87, 0x84];
    block.extend(literal(b":authority", b"127.0.0.1"));
    // HEADERS without END_HEADERS, then CONTINUATION frames that never end.
    tls.write_all(&frame(0x1, 0x1, 1, &block)).await.unwrap();
    let mut chunk = Vec::new();
    while chunk.len() < 15_000 {
        chunk.extend(literal(b"x-flood", &[b'a'; 100]));
    }
    let continuation = frame(0x9, 0, 1, &chunk);
    let (mut read, mut write) = tokio::io::split(tls);
    let reader = tokio::spawn(async move {
        let mut sink = Vec::new();
        let _ = read.read_to_end(&mut sink).await;
    });
    let mut sent = 0usize;
    let writer = async {
        // Up to 64 MiB: a server that buffered it all would show in its RSS.
        while sent < 64 << 20 {
            if write.write_all(&continuation).await.is_err() {
                return;
            }
            sent += continuation.len();
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(20), writer).await;
    assert!(
        sent < 64 << 20,
        "sluice read 64 MiB of one header block without closing the connection"
    );
    tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("sluice closed the connection")
        .unwrap();
    let after = rss_kib(sluice.pid());
    assert!(
        after < before + 32 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    assert!(api.requests().is_empty());
    assert_still_serving(&sluice).await;
}

#[tokio::test]
async fn a_foreign_authority_over_http2_does_not_reach_the_upstream() {
    let api = ApiServer::start().await;
    let sluice = Sluice::start(&api).await;
    let config = tls_config(&sluice.ca.cert_pem(), &[b"h2"], None);
    let tls = connect(sluice.addr, config).await.unwrap();
    let (client, connection) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = Request::get("https://evil.example:6443/api/v1/namespaces/default/pods")
        .header("authorization", format!("Bearer {AGENT_TOKEN}"))
        .header("host", "evil.example")
        .body(())
        .unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 200);
    let seen = api.requests();
    assert_eq!(seen.len(), 1);
    for (name, value) in &seen[0].headers {
        assert!(
            !value.as_bytes().windows(4).any(|w| w == b"evil"),
            "{name}: {value:?} reached the upstream"
        );
    }
}
