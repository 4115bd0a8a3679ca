//! Dialling the upstream: TCP, TLS and the HTTP/2 handshake of one connection, with the
//! HTTP/2 settings every lane connection gets, and the task that drives the connection and
//! keeps its stream limit where the lane can read it.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;
use tokio_util::io::{InspectReader, InspectWriter};

use crate::executor::BoxingExecutor;
use crate::{Body, BoxError};

/// Streams a connection carries until the server says otherwise: kube-apiserver's default
/// since Kubernetes 1.29 (and what Go's HTTP/2 client assumes before it hears).
const DEFAULT_MAX_STREAMS: usize = 100;

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
    /// The connection's sender, and its stream limit as the server's SETTINGS give it
    /// (kept up to date while the connection lives).
    Http2(SendRequest<Body>, Arc<AtomicUsize>),
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
            .initial_connection_window_size(CONNECTION_WINDOW)
            .initial_max_send_streams(DEFAULT_MAX_STREAMS);
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
        let (tls, acked) = watch_settings(tls);
        let (sender, connection) = self.http2.handshake(TokioIo::new(tls)).await?;
        let limit = Arc::new(AtomicUsize::new(DEFAULT_MAX_STREAMS));
        let (told, settings) = oneshot::channel();
        tokio::spawn(drive(connection, acked, limit.clone(), told));
        // Until the SETTINGS have come, the lane would not know how many streams to put on
        // this connection (a server may allow fewer than the default).
        settings
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

/// `tls`, and a receiver told once h2 has applied the server's SETTINGS. The server's side
/// of a connection opens with them (RFC 9113 §3.4); h2 applies them as it queues their
/// acknowledgement, and writes that before anything else it has to say: so the first write
/// after the first read means the server's stream limit is in force.
fn watch_settings<T>(tls: T) -> (impl AsyncRead + AsyncWrite + Unpin, oneshot::Receiver<()>)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let heard = Arc::new(AtomicBool::new(false));
    let (tell, acked) = oneshot::channel();
    let mut tell = Some(tell);
    let read = {
        let heard = heard.clone();
        move |bytes: &[u8]| {
            if !bytes.is_empty() {
                heard.store(true, Ordering::Relaxed);
            }
        }
    };
    let written = move |bytes: &[u8]| {
        if !bytes.is_empty()
            && heard.load(Ordering::Relaxed)
            && let Some(tell) = tell.take()
        {
            let _ = tell.send(());
        }
    };
    let tls = InspectWriter::new(InspectReader::new(tls, read), written);
    (tls, acked)
}

/// Drives one HTTP/2 connection until it ends. Once the server's SETTINGS are in force
/// (`acked`), keeps `limit` at its stream limit (read again at every turn: SETTINGS may
/// change it) and tells `told`.
async fn drive<T>(
    connection: http2::Connection<T, Body, BoxingExecutor>,
    mut acked: oneshot::Receiver<()>,
    limit: Arc<AtomicUsize>,
    told: oneshot::Sender<()>,
) where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let mut connection = std::pin::pin!(connection);
    let mut told = Some(told);
    let mut in_force = false;
    let ended = std::future::poll_fn(|cx| {
        let polled = connection.as_mut().poll(cx);
        if !in_force {
            match std::pin::Pin::new(&mut acked).poll(cx) {
                std::task::Poll::Ready(Ok(())) => in_force = true,
                // The connection went away first: the dial hears of it from `told`.
                std::task::Poll::Ready(Err(_)) => drop(told.take()),
                std::task::Poll::Pending => {}
            }
        }
        if in_force {
            // A limit of 0 would mean "no new streams now"; a lane needs one.
            let max = connection.current_max_send_streams().max(1);
            limit.store(max, Ordering::Relaxed);
            if let Some(told) = told.take() {
                let _ = told.send(());
            }
        }
        polled
    })
    .await;
    if let Err(err) = ended {
        tracing::debug!(error = %err, "upstream HTTP/2 connection ended");
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
