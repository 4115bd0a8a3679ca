//! A test double of kube-apiserver that speaks the real wire format: TLS with
//! ALPN h2 and http/1.1, bearer-token authentication, discovery, in-memory objects,
//! chunked watches, pod logs, and exec/attach/port-forward over WebSocket and SPDY/3.1.
//! It records every request so tests can assert on what reached the apiserver.
//!
//! Layout: this file accepts connections, records, authenticates and routes;
//! `discovery` answers /version, /api, /apis, /openapi; `objects` serves the
//! resources kept in `store` (request bodies in JSON or, from kubectl's typed
//! clients, `protobuf`), `watch` the watch streams, `table` the Table output
//! kubectl asks for; `upgrade` picks the streaming protocol, and `websocket` and
//! `spdy` carry `remotecommand` (exec/attach, running `exec`) and `portforward`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rand::Rng;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch as shutdown};
use tokio_rustls::TlsAcceptor;

use super::body::{Body, status_response};
use super::kubeconfig::{self, Credential};
use super::pki::TestCa;
use super::store::Store;
use super::{discovery, objects, upgrade};

/// The running double. Stops (all its connections too) when dropped.
pub struct ApiServer {
    addr: SocketAddr,
    ca_pem: String,
    shared: Arc<Shared>,
    stop: shutdown::Sender<bool>,
}

/// One request as the double received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: Method,
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub version: Version,
}

/// State shared by every connection.
pub(super) struct Shared {
    token: String,
    requests: Mutex<Vec<RecordedRequest>>,
    pub store: Mutex<Store>,
    pub events: broadcast::Sender<super::watch::Event>,
    pub open_watches: Arc<AtomicUsize>,
    pub open_sessions: Arc<AtomicUsize>,
    response_delay: Mutex<Duration>,
    /// HTTP/2 streams a connection may have open at once (hyper's default when `None`).
    stream_limit: Option<u32>,
}

/// Counts something as open for as long as this guard lives.
pub(super) struct Open(Arc<AtomicUsize>);

/// A request, parsed enough for routing, with its whole body.
pub(super) struct Req {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub on_upgrade: Option<OnUpgrade>,
}

impl ApiServer {
    /// Starts the double on 127.0.0.1 with a fresh CA and a random token.
    pub async fn start() -> ApiServer {
        ApiServer::start_with_stream_limit(None).await
    }

    /// Like [`ApiServer::start`], allowing `limit` concurrent HTTP/2 streams a connection
    /// (kube-apiserver allows 1000).
    pub async fn start_with_stream_limit(limit: Option<u32>) -> ApiServer {
        let ca = TestCa::new("apiserver test CA");
        let (cert_pem, key_pem) = ca.issue_server(&["localhost", "127.0.0.1"]);
        let acceptor = tls_acceptor(&cert_pem, &key_pem);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let token: String = rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(32)
            .map(char::from)
            .collect();
        let shared = Arc::new(Shared {
            token,
            requests: Mutex::new(Vec::new()),
            store: Mutex::new(Store::seeded()),
            events: broadcast::channel(1024).0,
            open_watches: Arc::new(AtomicUsize::new(0)),
            open_sessions: Arc::new(AtomicUsize::new(0)),
            response_delay: Mutex::new(Duration::ZERO),
            stream_limit: limit,
        });
        let (stop, stopped) = shutdown::channel(false);
        tokio::spawn(accept_loop(listener, acceptor, shared.clone(), stopped));
        ApiServer {
            addr,
            ca_pem: ca.cert_pem(),
            shared,
            stop,
        }
    }

    /// `https://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The CA that signed the double's serving certificate.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// The only bearer token the double accepts.
    pub fn token(&self) -> String {
        self.shared.token.clone()
    }

    /// Every request received so far, in order (including refused ones).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Watch streams currently open (the client has not gone away yet).
    pub fn open_watches(&self) -> usize {
        self.shared.open_watches.load(Ordering::SeqCst)
    }

    /// exec/attach/port-forward sessions still being served.
    pub fn open_sessions(&self) -> usize {
        self.shared.open_sessions.load(Ordering::SeqCst)
    }

    /// Holds every later authenticated request for `delay` before answering
    /// (an upstream that has become slow); zero turns it off.
    pub fn set_response_delay(&self, delay: Duration) {
        *self.shared.response_delay.lock().unwrap() = delay;
    }

    /// Writes `dir/kubeconfig` pointing kubectl straight at the double.
    pub fn write_kubeconfig(&self, dir: &Path) -> PathBuf {
        kubeconfig::write(
            dir,
            &self.url(),
            &self.ca_pem,
            Credential::Token(&self.shared.token),
        )
    }

    /// Creates (or replaces) an object directly, as if another client had;
    /// open watches see it. `resource` is e.g. "pods"; namespace comes from the object.
    pub fn put_object(&self, resource: &str, object: serde_json::Value) {
        objects::put(&self.shared, resource, object);
    }

    /// Deletes an object directly, as if another client had; open watches see
    /// DELETED. `namespace` is "" for cluster-scoped resources. False if absent.
    pub fn delete_object(&self, resource: &str, namespace: &str, name: &str) -> bool {
        objects::remove(&self.shared, resource, namespace, name)
    }

    /// Stops accepting and closes every connection.
    pub fn stop(self) {}
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl Open {
    pub fn count(counter: &Arc<AtomicUsize>) -> Open {
        counter.fetch_add(1, Ordering::SeqCst);
        Open(counter.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Req {
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn query_all(&self, key: &str) -> Vec<String> {
        self.query
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn query_flag(&self, key: &str) -> bool {
        matches!(self.query(key), Some("true" | "1"))
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// All values of a header, comma-separated lists split.
    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect()
    }
}

fn tls_acceptor(cert_pem: &str, key_pem: &str) -> TlsAcceptor {
    super::pki::acceptor(cert_pem, key_pem, &[b"h2", b"http/1.1"])
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    mut stopped: shutdown::Receiver<bool>,
) {
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => continue,
            },
            _ = stopped.changed() => return,
        };
        let acceptor = acceptor.clone();
        let shared = shared.clone();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let stream_limit = shared.stream_limit;
            let service = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(shared, req).await) }
            });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http2().max_concurrent_streams(stream_limit);
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            tokio::select! {
                _ = conn => {}
                _ = stopped.changed() => {}
            }
        });
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let (mut parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    shared.requests.lock().unwrap().push(RecordedRequest {
        method: parts.method.clone(),
        path_and_query,
        headers: parts.headers.clone(),
        body: body.clone(),
        version: parts.version,
    });
    let expected = format!("Bearer {}", shared.token);
    let authorized = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == expected.as_bytes());
    if !authorized {
        return status_response(401, "Unauthorized", "Unauthorized", None);
    }
    let delay = *shared.response_delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let req = Req {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parse_query(parts.uri.query().unwrap_or("")),
        headers: parts.headers,
        body,
        on_upgrade: parts.extensions.remove::<OnUpgrade>(),
    };
    route(&shared, req).await
}

async fn route(shared: &Arc<Shared>, mut req: Req) -> Response<Body> {
    if let Some(response) = upgrade::handle(shared, &mut req) {
        return response;
    }
    if let Some(response) = discovery::handle(&req) {
        return response;
    }
    objects::handle(shared, req).await
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(pair), String::new()),
        })
        .collect()
}
