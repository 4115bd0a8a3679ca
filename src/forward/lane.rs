//! A lane: one HTTP/2 connection to the upstream that a kind of request shares (requests
//! that end, or long-lived streams), held directly rather than through a connection pool.
//!
//! With HTTP/2 there is nothing to pool: every request of a lane goes over the same
//! connection, so hyper-util's pooled client only added work to each request (hashing the
//! pool key byte by byte, a locked checkout, a larger future moved at every await: ~5% of
//! sluice's instructions a request, BENCHMARKS.md session 7). Here a request clones the
//! connection's sender (two reference counts) and is on its way.
//!
//! The connection is dialled on first use and again whenever it has closed (a GOAWAY, a
//! reset, a failed keep-alive ping); one dial at a time, the others wait for it, and a dial
//! that fails answers them all (dialling again one after another would make the last of
//! them wait out every dial before its own, past `upstream.timeout`). A request
//! the connection refused before sending a byte of it is sent once more on a fresh one:
//! that cannot make anything happen twice. A request that was sent is never retried.
//!
//! An upstream that does not speak HTTP/2 (ALPN, or a plain `http://` server) is left to
//! hyper-util's HTTP/1.1 pool, which is what HTTP/1.1 needs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::HttpsClient;
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
pub(super) struct Dialer {
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    tls: TlsConnector,
    connect_timeout: Duration,
    http2: http2::Builder<BoxingExecutor>,
}

/// What a dial gave.
enum Dialled {
    Http2(SendRequest<Body>),
    /// The server chose HTTP/1.1 (or nothing) by ALPN.
    NotHttp2,
}

impl Dialer {
    /// `host` as in the URL (an IPv6 literal in brackets is accepted), `tls` the upstream's
    /// client config (its ALPN is replaced: h2, then http/1.1).
    pub(super) fn new(
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
    async fn dial(&self) -> Result<Dialled, BoxError> {
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
        let (sender, connection) = self.http2.handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "upstream HTTP/2 connection ended");
            }
        });
        Ok(Dialled::Http2(sender))
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

/// The lane's connection as it holds it, and a sender of the request's own, cloned from it.
type Taken = (Arc<SendRequest<Body>>, SendRequest<Body>);

/// When and why a lane's last dial failed.
struct FailedDial {
    at: Instant,
    error: String,
}

/// One kind of request's way to the upstream.
pub(super) struct Lane {
    /// `None` for a plain `http://` upstream: HTTP/1.1 only.
    dialer: Option<Arc<Dialer>>,
    current: ArcSwapOption<SendRequest<Body>>,
    /// One dial at a time; holds how the last one failed, if it did.
    dialling: tokio::sync::Mutex<Option<FailedDial>>,
    /// Set once the upstream has answered ALPN without h2.
    http1_only: AtomicBool,
    http1: HttpsClient,
}

impl Lane {
    pub(super) fn new(dialer: Option<Arc<Dialer>>, http1: HttpsClient) -> Lane {
        Lane {
            http1_only: AtomicBool::new(dialer.is_none()),
            dialer,
            current: ArcSwapOption::empty(),
            dialling: tokio::sync::Mutex::new(None),
            http1,
        }
    }

    /// Sends `request` (absolute URI) and waits for the response head.
    pub(super) async fn send(
        &self,
        request: Request<Body>,
    ) -> Result<Response<Incoming>, BoxError> {
        let mut request = request;
        let mut fresh_tries = 1;
        loop {
            let Some((connection, mut sender)) = self.connection().await? else {
                return Ok(self.http1.request(request).await?);
            };
            match sender.try_send_request(request).await {
                Ok(response) => return Ok(response),
                Err(mut err) => match err.take_message() {
                    // Refused before a byte was sent: the connection is closing.
                    Some(unsent) if fresh_tries > 0 => {
                        fresh_tries -= 1;
                        self.current.compare_and_swap(&connection, None);
                        request = unsent;
                    }
                    _ => return Err(Box::new(err.into_error())),
                },
            }
        }
    }

    /// The lane's open HTTP/2 connection (dialled if there is none), or `None` when the
    /// upstream speaks HTTP/1.1 only.
    async fn connection(&self) -> Result<Option<Taken>, BoxError> {
        if let Some(open) = self.open() {
            return Ok(Some(open));
        }
        if self.http1_only.load(Ordering::Relaxed) {
            return Ok(None);
        }
        // Boxed: the dial's TLS handshake would otherwise make every request's future as
        // large as itself, and that future is moved at each await.
        Box::pin(self.redial()).await
    }

    /// Dials a new connection, unless another request did while this one waited its turn
    /// (then it takes that connection, or that dial's failure).
    async fn redial(&self) -> Result<Option<Taken>, BoxError> {
        let asked = Instant::now();
        let mut last_failure = self.dialling.lock().await;
        if let Some(open) = self.open() {
            return Ok(Some(open));
        }
        if self.http1_only.load(Ordering::Relaxed) {
            return Ok(None);
        }
        if let Some(failed) = last_failure.as_ref().filter(|failed| failed.at >= asked) {
            return Err(failed.error.clone().into());
        }
        let Some(dialer) = &self.dialer else {
            return Ok(None);
        };
        let dialled = dialer.dial().await.inspect_err(|error| {
            *last_failure = Some(FailedDial {
                at: Instant::now(),
                error: error.to_string(),
            });
        })?;
        match dialled {
            Dialled::Http2(sender) => {
                let connection = Arc::new(sender.clone());
                self.current.store(Some(connection.clone()));
                Ok(Some((connection, sender)))
            }
            Dialled::NotHttp2 => {
                tracing::info!("the upstream does not speak HTTP/2; using HTTP/1.1");
                self.http1_only.store(true, Ordering::Relaxed);
                Ok(None)
            }
        }
    }

    fn open(&self) -> Option<Taken> {
        let connection = self.current.load_full()?;
        (!connection.is_closed()).then(|| {
            let sender = (*connection).clone();
            (connection, sender)
        })
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
