//! Byte-level clients for attacks a well-behaved HTTP library will not send: raw HTTP/1.1
//! over TLS (the path exactly as written, folded headers, CL + TE), plain TCP bytes, and TLS
//! handshakes with chosen client certificates.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::sluice::{AGENT_TOKEN, Sluice};

/// How long a raw exchange may take before the test gives up on the server.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS client config trusting `ca_pem`, ALPN `alpn`, with an optional client identity.
pub fn tls_config(
    ca_pem: &str,
    alpn: &[&[u8]],
    identity: Option<(&str, &str)>,
) -> Arc<rustls::ClientConfig> {
    Arc::new(super::pki::client_config(ca_pem, alpn, identity))
}

/// Opens a TLS connection to `addr` (server name 127.0.0.1).
pub async fn connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    TlsConnector::from(config).connect(name, tcp).await
}

/// An HTTP/1.1-over-TLS connection to sluice.
pub async fn connect_h1(sluice: &Sluice) -> TlsStream<TcpStream> {
    let config = tls_config(&sluice.ca.cert_pem(), &[b"http/1.1"], None);
    connect(sluice.addr, config).await.unwrap()
}

/// Writes `bytes` on a fresh connection and reads until the server closes (or the timeout).
pub async fn exchange(sluice: &Sluice, bytes: &[u8]) -> String {
    let mut tls = connect_h1(sluice).await;
    // The server may answer and close before it has read everything (a refused head).
    let _ = tls.write_all(bytes).await;
    let _ = tls.flush().await;
    read_until_close(&mut tls).await
}

/// Reads what the server sends until it closes the connection; errors end the read too.
pub async fn read_until_close<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let _ = tokio::time::timeout(EXCHANGE_TIMEOUT, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The status codes of every response in `text` (pipelined responses included).
pub fn statuses(text: &str) -> Vec<u16> {
    text.match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| text.get(i + 9..i + 12)?.parse().ok())
        .collect()
}

/// The first status code in `text`, or 0 when the server sent no response at all.
pub fn status(text: &str) -> u16 {
    statuses(text).first().copied().unwrap_or(0)
}

/// A GET for `target` as raw bytes with the agent's token, closing after the response.
pub fn get(target: &str) -> Vec<u8> {
    request("GET", target, &[])
}

/// A request for `target` with the agent's token plus `extra` header lines, closing after.
pub fn request(method: &str, target: &str, extra: &[&str]) -> Vec<u8> {
    let mut text = format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {AGENT_TOKEN}\r\n"
    );
    for line in extra {
        text.push_str(line);
        text.push_str("\r\n");
    }
    text.push_str("Connection: close\r\n\r\n");
    text.into_bytes()
}

/// A request sluice must serve: proves it is still up after an attack.
pub async fn assert_still_serving(sluice: &Sluice) {
    let text = exchange(sluice, &get("/api/v1/namespaces/default/pods")).await;
    assert_eq!(
        status(&text),
        200,
        "sluice stopped serving:\n{text}\n{}",
        sluice.log()
    );
}
