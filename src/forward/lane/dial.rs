//! Dialling the upstream: TCP, TLS and the HTTP/2 handshake of one connection, with the
//! HTTP/2 settings every lane connection gets.

use std::sync::Arc;
use std::time::Duration;

use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::settings::Sniffed;
use crate::executor::BoxingExecutor;
use crate::{Body, BoxError};

/// What one stream may hold unread: the most sluice buffers for a response its agent is not
/// reading (hyper's own default, stated here because the bound matters). 2 MiB in flight
/// keeps a large list at ~2 GB/s over a 1 ms round trip.
const STREAM_WINDOW: u32 = 2 << 20;

/// What the whole connection may hold unread: so large that only the streams' own windows
/// ever bind. A lane's connection is shared by every agent, and HTTP/2 counts the bytes a
/// stream holds unread against the connection too; with hyper's 5 MiB, three agents that
/// stopped reading a large response stopped every response on the lane, for every agent.
/// Go's HTTP/2 client (client-go's) makes the same choice, 1 GiB.
const CONNECTION_WINDOW: u32 = 1 << 30;

/// How sluice reaches the upstream over TLS: where, as whom it checks the certificate, and
/// the HTTP/2 settings of every connection.
pub(crate) struct Dialer {
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    tls: TlsConnector,
    connect_timeout: Duration,
    http2: http2::Builder<BoxingExecutor>,
}

/// What a dial gave.
pub(super) enum Dialled {
    /// The connection's sender, and its stream limit as the server's SETTINGS give it.
    Http2(SendRequest<Body>, usize),
    /// The server chose HTTP/1.1 (or nothing) by ALPN.
    NotHttp2,
}

impl Dialer {
    /// `host` as in the URL (an IPv6 literal in brackets is accepted), `tls` the upstream's
    /// client config (its ALPN is replaced: h2, then http/1.1).
    pub(crate) fn new(
        host: &str,
        port: u16,
        tls: &rustls::ClientConfig,
        connect_timeout: Duration,
        keep_alive: Duration,
    ) -> Result<Dialer, String> {
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|e| format!("{host} is not a TLS server name: {e}"))?;
        let mut tls = tls.clone();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let mut http2 = http2::Builder::new(BoxingExecutor);
        http2
            .timer(TokioTimer::new())
            .keep_alive_interval(keep_alive)
            .keep_alive_while_idle(true)
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW);
        Ok(Dialer {
            host: host.to_owned(),
            port,
            server_name,
            tls: TlsConnector::from(Arc::new(tls)),
            connect_timeout,
            http2,
        })
    }

    /// TCP, then TLS and HTTP/2 handshakes, each within `connect_timeout` (a server that
    /// accepts and never answers is as unreachable as one that refuses).
    pub(super) async fn dial(&self) -> Result<Dialled, BoxError> {
        let tcp = self.connect().await?;
        tokio::time::timeout(self.connect_timeout, self.handshake(tcp))
            .await
            .map_err(|_| {
                format!(
                    "TLS and HTTP/2 handshake with {}: no answer within {:?}",
                    self.host, self.connect_timeout
                )
            })?
    }

    async fn handshake(&self, tcp: TcpStream) -> Result<Dialled, BoxError> {
        let tls = self
            .tls
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| format!("TLS handshake: {e}"))?;
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Ok(Dialled::NotHttp2);
        }
        let (tls, limit) = Sniffed::new(tls);
        let (sender, connection) = self.http2.handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "upstream HTTP/2 connection ended");
            }
        });
        // The server's SETTINGS come at once; until they have, the lane would not know how
        // many streams to put on this connection.
        let limit = limit
            .await
            .map_err(|_| "the upstream closed the connection before its HTTP/2 SETTINGS")?;
        Ok(Dialled::Http2(sender, limit))
    }

    /// A TCP connection to the first of the host's addresses that answers.
    async fn connect(&self) -> Result<TcpStream, BoxError> {
        let addresses = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("resolving {}: {e}", self.host))?;
        let mut last: Option<BoxError> = None;
        for address in addresses {
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(address)).await {
                Ok(Ok(tcp)) => {
                    tcp.set_nodelay(true)?;
                    return Ok(tcp);
                }
                Ok(Err(err)) => last = Some(format!("connecting to {address}: {err}").into()),
                Err(_) => {
                    last = Some(
                        format!(
                            "connecting to {address}: no answer within {:?}",
                            self.connect_timeout
                        )
                        .into(),
                    )
                }
            }
        }
        Err(last.unwrap_or_else(|| format!("{} has no address", self.host).into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls() -> rustls::ClientConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
    }

    #[test]
    fn a_dialer_takes_every_host_form_and_names_a_host_that_is_not_one() {
        let second = Duration::from_secs(1);
        for (host, name) in [
            ("kubernetes.default.svc", "kubernetes.default.svc"),
            ("10.96.0.1", "10.96.0.1"),
            ("[fd00::1]", "fd00::1"),
        ] {
            let dialer = Dialer::new(host, 443, &tls(), second, second).unwrap();
            assert_eq!(dialer.host, name);
            assert_eq!(
                dialer.server_name,
                ServerName::try_from(name.to_owned()).unwrap()
            );
        }
        let Err(err) = Dialer::new("not a host name!", 443, &tls(), second, second) else {
            panic!("a host that is no TLS server name was accepted");
        };
        assert!(err.contains("not a host name!"), "{err}");
    }
}
