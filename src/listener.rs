//! Accepting connections: TLS (rustls) with ALPN h2 / http/1.1, the verified client
//! certificate's SPIFFE id, HTTP served by hyper with upgrades, and a graceful stop: on
//! shutdown, stop accepting, let in-flight requests finish within the grace period, then
//! close what is left. Both listeners, agents' and admin, are served by [`serve`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::convert::Infallible;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::Body;
use crate::config::LimitsConfig;
use crate::executor::BoxingExecutor;

/// What sluice knows about the other end of a connection.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The peer's IP as text, formatted once a connection for every request's audit events.
    pub ip: Box<str>,
    /// The SPIFFE id of a client certificate that verified against `tls.client_ca`.
    pub spiffe_id: Option<String>,
}

impl Peer {
    pub fn new(addr: SocketAddr, spiffe_id: Option<String>) -> Peer {
        Peer {
            ip: addr.ip().to_string().into_boxed_str(),
            spiffe_id,
        }
    }
}

/// More request headers than any Kubernetes client sends; beyond it, 431.
const MAX_HEADERS: usize = 100;

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves connections from `listener` on this task's runtime until `shutdown` resolves,
/// then drains.
///
/// `make_service` builds the per-connection service once the peer is known.
pub async fn serve<M, S>(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: LimitsConfig,
    make_service: M,
    shutdown: impl Future<Output = ()>,
) where
    M: Fn(Arc<Peer>) -> S + Clone + Send + 'static,
    S: Service<Request<Incoming>, Response = Response<Body>, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    let connections = Connections::new(tls, &limits);
    accept(listener, shutdown, |stream, addr| {
        // The handshake runs in the connection's own task so a slow client blocks nobody.
        tokio::spawn(connections.run(stream, addr, make_service.clone()));
    })
    .await;
    connections.drain(limits.shutdown_grace).await;
}

/// Accepts connections and gives each to `hand_off` until `shutdown` resolves.
async fn accept(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    mut hand_off: impl FnMut(TcpStream, SocketAddr),
) {
    tokio::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(err) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        hand_off(stream, addr);
    }
}

/// What every connection of a listener shares: TLS, the HTTP settings, and the graceful
/// stop that drains them.
struct Connections {
    acceptor: Option<TlsAcceptor>,
    builder: Arc<auto::Builder<BoxingExecutor>>,
    graceful: GracefulShutdown,
}

impl Connections {
    fn new(tls: Option<Arc<rustls::ServerConfig>>, limits: &LimitsConfig) -> Connections {
        Connections {
            acceptor: tls.map(TlsAcceptor::from),
            builder: Arc::new(http_builder(limits)),
            graceful: GracefulShutdown::new(),
        }
    }

    /// The connection's whole life: handshake, then HTTP until it closes or is drained.
    fn run<M, S>(
        &self,
        stream: TcpStream,
        addr: SocketAddr,
        make_service: M,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        M: Fn(Arc<Peer>) -> S + Send + 'static,
        S: Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        let conn = Connection {
            acceptor: self.acceptor.clone(),
            builder: self.builder.clone(),
            watcher: self.graceful.watcher(),
        };
        conn.run(stream, addr, make_service)
    }

    /// Lets in-flight requests finish within `grace`, then gives up on them.
    async fn drain(self, grace: Duration) {
        if tokio::time::timeout(grace, self.graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                ?grace,
                "connections still open after the grace period; closing them"
            );
        }
    }
}

struct Connection {
    acceptor: Option<TlsAcceptor>,
    builder: Arc<auto::Builder<BoxingExecutor>>,
    watcher: Watcher,
}

impl Connection {
    async fn run<M, S>(self, stream: TcpStream, addr: SocketAddr, make_service: M)
    where
        M: Fn(Arc<Peer>) -> S,
        S: Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        let Some(acceptor) = &self.acceptor else {
            let peer = Arc::new(Peer::new(addr, None));
            return self
                .serve_io(TokioIo::new(stream), make_service(peer))
                .await;
        };
        let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(err)) => {
                tracing::debug!(peer = %addr, error = %err, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(peer = %addr, "TLS handshake timed out");
                return;
            }
        };
        let spiffe_id = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(crate::tls::spiffe_id);
        let peer = Arc::new(Peer::new(addr, spiffe_id));
        self.serve_io(TokioIo::new(tls), make_service(peer)).await
    }

    async fn serve_io<I, S>(self, io: TokioIo<I>, service: S)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
        S: Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
            + Send
            + 'static,
        S::Future: Send + 'static,
    {
        let conn = self.builder.serve_connection_with_upgrades(io, service);
        let conn = self.watcher.watch(conn.into_owned());
        if let Err(err) = conn.await {
            tracing::debug!(error = %err, "connection ended with an error");
        }
    }
}

fn http_builder(limits: &LimitsConfig) -> auto::Builder<BoxingExecutor> {
    let mut builder = auto::Builder::new(BoxingExecutor);
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(MAX_HEADERS)
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(250)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        // Rapid reset (CVE-2023-44487) and local-error floods: bound what a client can make
        // the server track before the connection is closed.
        .max_pending_accept_reset_streams(Some(20))
        .max_local_error_reset_streams(Some(256))
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}
