//! A lane: the HTTP/2 connections to the upstream that a kind of request shares (requests
//! that end, or long-lived streams), held directly rather than through a connection pool.
//!
//! With HTTP/2 there is little to pool: a request of a lane goes over the lane's first
//! connection with a stream to spare. A pool cannot do what a lane must: know how many
//! streams each connection carries and dial another before a request would wait.
//!
//! A connection carries at most as many streams at once as the server allows (its SETTINGS
//! say, as h2 reads them; kube-apiserver allows 100 by default since Kubernetes 1.29, 250 or
//! 1000 before), and a stream past that would wait inside the connection for another to end
//! (for a watch, as long as the watch before it lasts). So a lane dials another connection
//! when all of its connections are full, and open watches, long lists and responses an agent
//! is slow to read never make other requests wait for a stream. A stream's slot is held
//! until its response body ends or is dropped ([`UpstreamBody`]).
//!
//! Connections are dialled on first use and whenever every open one is full or closed (a
//! GOAWAY, a reset, a failed keep-alive ping); one dial at a time, the others wait for it,
//! and a dial that fails answers them all (dialling again one after another would make the
//! last of them wait out every dial before its own, past `upstream.timeout`). A request the
//! connection refused before sending a byte of it is sent once more on a fresh one: that
//! cannot make anything happen twice. A request that was sent is never retried.
//!
//! An upstream that does not speak HTTP/2 (ALPN, or a plain `http://` server) is left to
//! hyper-util's HTTP/1.1 pool, which is what HTTP/1.1 needs.

mod dial;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::client::conn::http2::SendRequest;
use tokio::time::Instant;

use super::HttpsClient;
use crate::{Body, BoxError};
pub(crate) use dial::Dialer;
use dial::Dialled;

/// Connections a lane opens at most (6,400 streams at kube-apiserver's default). Past that,
/// requests share the least busy connection and wait there for a stream, rather than opening
/// connections without end.
const MAX_CONNECTIONS: usize = 64;

/// One HTTP/2 connection of a lane and the streams it carries now.
struct Connection {
    sender: SendRequest<Body>,
    streams: AtomicUsize,
    /// The server's stream limit for this connection, as its SETTINGS say (kept by the
    /// task that drives the connection).
    max_streams: Arc<AtomicUsize>,
    /// Set when the connection refused a request before sending it (it is closing, though
    /// hyper may not say so yet): it takes no more.
    retired: AtomicBool,
}

impl Connection {
    fn is_open(&self) -> bool {
        !self.retired.load(Ordering::Relaxed) && !self.sender.is_closed()
    }

    /// A stream slot on this connection, if it is open and (unless `full_ok`) has one free.
    fn slot(self: &Arc<Self>, full_ok: bool) -> Option<Slot> {
        // A plain load first: connections full of watches are passed over by every request
        // that looks for a slot, and each would otherwise pay two read-modify-writes there.
        let max_streams = self.max_streams.load(Ordering::Relaxed);
        let full = || self.streams.load(Ordering::Relaxed) >= max_streams;
        if !self.is_open() || (!full_ok && full()) {
            return None;
        }
        let before = self.streams.fetch_add(1, Ordering::Relaxed);
        if before >= max_streams && !full_ok {
            self.streams.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Slot(self.clone()))
    }
}

/// A stream's place on a connection, given back when dropped.
struct Slot(Arc<Connection>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An upstream response body. Over a lane's HTTP/2 connection it holds its stream's slot
/// until it ends or is dropped (an unread watch holds its slot as long as it is open, as it
/// holds its stream); over HTTP/1.1 (and for upgrades) it holds none.
pub struct UpstreamBody {
    body: Incoming,
    slot: Option<Slot>,
}

impl UpstreamBody {
    /// A body that holds no slot (HTTP/1.1).
    pub(super) fn unslotted(body: Incoming) -> UpstreamBody {
        UpstreamBody { body, slot: None }
    }
}

impl HttpBody for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(None | Some(Err(_))) = polled {
            // The stream is over: its slot is free for the next request at once.
            self.slot = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// When and why a lane's last dial failed.
struct FailedDial {
    at: Instant,
    error: String,
}

/// One kind of request's way to the upstream.
pub(super) struct Lane {
    /// `None` for a plain `http://` upstream: HTTP/1.1 only.
    dialer: Option<Arc<Dialer>>,
    /// The open connections, in the order they were dialled; the first with a stream to
    /// spare carries the next request.
    connections: ArcSwap<Vec<Arc<Connection>>>,
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
            connections: ArcSwap::from_pointee(Vec::new()),
            dialling: tokio::sync::Mutex::new(None),
            http1,
        }
    }

    /// Sends `request` (absolute URI) and waits for the response head.
    pub(super) async fn send(
        &self,
        request: Request<Body>,
    ) -> Result<Response<UpstreamBody>, BoxError> {
        let mut request = request;
        let mut fresh_tries = 1;
        loop {
            let Some(slot) = self.slot().await? else {
                let response = self.http1.request(request).await?;
                return Ok(response.map(UpstreamBody::unslotted));
            };
            let mut sender = slot.0.sender.clone();
            match sender.try_send_request(request).await {
                Ok(response) => {
                    return Ok(response.map(|body| UpstreamBody {
                        body,
                        slot: Some(slot),
                    }));
                }
                Err(mut err) => match err.take_message() {
                    // Refused before a byte was sent: the connection is closing.
                    Some(unsent) if fresh_tries > 0 => {
                        fresh_tries -= 1;
                        slot.0.retired.store(true, Ordering::Relaxed);
                        request = unsent;
                    }
                    _ => return Err(Box::new(err.into_error())),
                },
            }
        }
    }

    /// A stream slot on one of the lane's connections (dialling one if every open connection
    /// is full), or `None` when the upstream speaks HTTP/1.1 only.
    async fn slot(&self) -> Result<Option<Slot>, BoxError> {
        if let Some(slot) = self.free_slot() {
            return Ok(Some(slot));
        }
        if self.http1_only.load(Ordering::Relaxed) {
            return Ok(None);
        }
        // Boxed: the dial's TLS handshake would otherwise make every request's future as
        // large as itself, and that future is moved at each await.
        Box::pin(self.dial_for_slot()).await
    }

    /// Dials a new connection, unless another request did while this one waited its turn
    /// (then it takes a slot there, or that dial's failure).
    async fn dial_for_slot(&self) -> Result<Option<Slot>, BoxError> {
        let asked = Instant::now();
        let mut last_failure = self.dialling.lock().await;
        if let Some(slot) = self.free_slot() {
            return Ok(Some(slot));
        }
        if self.http1_only.load(Ordering::Relaxed) {
            return Ok(None);
        }
        if let Some(failed) = last_failure.as_ref().filter(|failed| failed.at >= asked) {
            return Err(failed.error.clone().into());
        }
        let open = self.open_connections();
        if open.len() >= MAX_CONNECTIONS
            && let Some(slot) = least_busy(&open).and_then(|c| c.slot(true))
        {
            return Ok(Some(slot));
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
            Dialled::Http2(sender, max_streams) => {
                let connection = Arc::new(Connection {
                    sender,
                    streams: AtomicUsize::new(0),
                    max_streams,
                    retired: AtomicBool::new(false),
                });
                let slot = connection
                    .slot(true)
                    .ok_or("the new upstream connection closed at once")?;
                let mut connections = self.open_connections();
                connections.push(connection);
                self.connections.store(Arc::new(connections));
                Ok(Some(slot))
            }
            Dialled::NotHttp2 => {
                tracing::info!("the upstream does not speak HTTP/2; using HTTP/1.1");
                self.http1_only.store(true, Ordering::Relaxed);
                Ok(None)
            }
        }
    }

    /// A free stream slot on the first open connection that has one.
    fn free_slot(&self) -> Option<Slot> {
        self.connections
            .load()
            .iter()
            .find_map(|connection| connection.slot(false))
    }

    /// The connections that are still open (closed and retired ones leave the lane when the
    /// next dial stores the list: only a dial changes it, one at a time).
    fn open_connections(&self) -> Vec<Arc<Connection>> {
        let connections = self.connections.load();
        connections
            .iter()
            .filter(|c| c.is_open())
            .cloned()
            .collect()
    }
}

/// The open connection carrying the fewest streams.
fn least_busy(connections: &[Arc<Connection>]) -> Option<&Arc<Connection>> {
    connections
        .iter()
        .min_by_key(|c| c.streams.load(Ordering::Relaxed))
}
