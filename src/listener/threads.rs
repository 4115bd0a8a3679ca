//! Agents' connections served on a thread per core (see [`AgentThreads`]).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::Service;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use super::{Connections, Peer, accept};
use crate::Body;
use crate::config::LimitsConfig;

/// Threads that serve agent connections, each on a single-threaded runtime of its own.
///
/// With one runtime whose workers steal each other's tasks, a request crossed threads
/// twice: the agent's connection task handed it to the upstream connection's task, and
/// tokio woke the other worker to run it, and back (with two workers, a third of sluice's
/// CPU on HTTP/1.1 went to the scheduler; one worker spent 0.65 of the CPU a request, but
/// one core is not enough for many connections). Here each thread runs whole connections
/// with their own upstream connections ([`crate::forward::Upstream::for_another_thread`]):
/// a request stays on one thread from the agent's bytes to the upstream's and back, and the
/// threads share only policy, credentials, approvals and the audit log.
///
/// The first share is served on the runtime that accepts (the main thread); each new
/// connection goes to the share holding the fewest, that one on a tie, so the threads are
/// balanced by what they hold, not by a port hash, and a connection kept on the accepting
/// thread is neither moved between reactors nor woken across threads.
pub struct AgentThreads<M> {
    local: Share<M>,
    remote: Vec<AgentThread>,
    grace: Duration,
}

/// Another thread's share, and how to hand it connections.
struct AgentThread {
    /// n in the thread's name, `sluice-agents-n`.
    number: usize,
    hand_off: mpsc::UnboundedSender<(std::net::TcpStream, SocketAddr, Open)>,
    open: Arc<AtomicUsize>,
    stopped: oneshot::Receiver<()>,
}

impl<M, S> AgentThreads<M>
where
    M: Fn(Arc<Peer>) -> S + Clone + Send + 'static,
    S: Service<Request<Incoming>, Response = Response<Body>, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    /// Serves a share for each of `setups`: the first on the current runtime, each other on
    /// a thread of its own, which runs its setup on its runtime first (the setup gives the
    /// share's service maker).
    pub fn start<F>(
        tls: Option<Arc<rustls::ServerConfig>>,
        limits: &LimitsConfig,
        setups: Vec<F>,
    ) -> std::io::Result<AgentThreads<M>>
    where
        F: FnOnce() -> M + Send + 'static,
    {
        let mut setups = setups.into_iter();
        let first = setups
            .next()
            .ok_or_else(|| std::io::Error::other("no thread to serve agents"))?;
        let connections = Connections::new(tls.clone(), limits);
        let local = Share::new(connections, first(), Arc::new(AtomicUsize::new(0)));
        let mut remote = Vec::new();
        for (number, setup) in (1..).zip(setups) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (hand_off, mut handed) = mpsc::unbounded_channel();
            let (stop, stopped) = oneshot::channel();
            let open = Arc::new(AtomicUsize::new(0));
            let counted = open.clone();
            let connections = Connections::new(tls.clone(), limits);
            let grace = limits.shutdown_grace;
            std::thread::Builder::new()
                .name(format!("sluice-agents-{number}"))
                .spawn(move || {
                    runtime.block_on(async move {
                        let share = Share::new(connections, setup(), counted);
                        while let Some((stream, addr, open)) = handed.recv().await {
                            match TcpStream::from_std(stream) {
                                Ok(stream) => share.serve(stream, addr, open),
                                Err(err) => {
                                    tracing::warn!(peer = %addr, error = %err, "cannot serve a connection");
                                }
                            }
                        }
                        share.drain(grace).await;
                    });
                    // Whatever outlived the grace period is closed with the runtime.
                    drop(runtime);
                    let _ = stop.send(());
                })?;
            remote.push(AgentThread {
                number,
                hand_off,
                open,
                stopped,
            });
        }
        Ok(AgentThreads {
            local,
            remote,
            grace: limits.shutdown_grace,
        })
    }

    /// Each share's count of open connections, this runtime's first (for tests).
    #[cfg(test)]
    fn open_counts(&self) -> Vec<Arc<AtomicUsize>> {
        std::iter::once(self.local.open.clone())
            .chain(self.remote.iter().map(|t| t.open.clone()))
            .collect()
    }

    /// Accepts connections from `listener` and serves them until `shutdown` resolves, then
    /// lets every share drain its connections (within `limits.shutdown_grace`) and waits.
    pub async fn serve(mut self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        accept(listener, shutdown, |stream, addr| {
            self.hand_off(stream, addr)
        })
        .await;
        // Every share drains at once: the senders go first, then the waits.
        let stopped: Vec<_> = self.remote.into_iter().map(|t| t.stopped).collect();
        self.local.drain(self.grace).await;
        for thread in stopped {
            let _ = thread.await;
        }
    }

    /// Gives a connection to the share with the fewest open, this runtime's on a tie.
    fn hand_off(&mut self, stream: TcpStream, addr: SocketAddr) {
        let least = |remote: &[AgentThread]| {
            remote
                .iter()
                .enumerate()
                .map(|(index, thread)| (thread.open.load(Ordering::Relaxed), index))
                .min()
        };
        let here = self.local.open.load(Ordering::Relaxed);
        if least(&self.remote).is_none_or(|(open, _)| here <= open) {
            return self
                .local
                .serve(stream, addr, Open::count(&self.local.open));
        }
        let mut stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(err) => {
                tracing::warn!(peer = %addr, error = %err, "cannot hand a connection over");
                return;
            }
        };
        while let Some((_, index)) = least(&self.remote) {
            let thread = &self.remote[index];
            // Counted now, so the next hand-off sees it before the thread does.
            let open = Open::count(&thread.open);
            match thread.hand_off.send((stream, addr, open)) {
                Ok(()) => return,
                Err(mpsc::error::SendError((back, _, _))) => {
                    // Named by number: removing it reorders the others.
                    tracing::error!(
                        thread = thread.number,
                        "a thread serving agents has stopped"
                    );
                    stream = back;
                    self.remote.swap_remove(index);
                }
            }
        }
        // Every other thread has stopped: serve it here.
        match TcpStream::from_std(stream) {
            Ok(stream) => self
                .local
                .serve(stream, addr, Open::count(&self.local.open)),
            Err(err) => tracing::warn!(peer = %addr, error = %err, "cannot serve a connection"),
        }
    }
}

/// One runtime's connections: counted, each served in a task of its own.
struct Share<M> {
    connections: Connections,
    make_service: M,
    /// Open connections: each counted from its hand-off until it ends ([`Open`]).
    open: Arc<AtomicUsize>,
    /// Told of each new connection, for [`keep_a_timer_while_busy`].
    busy: Arc<tokio::sync::Notify>,
    timer: tokio::task::JoinHandle<()>,
}

impl<M, S> Share<M>
where
    M: Fn(Arc<Peer>) -> S + Clone + Send + 'static,
    S: Service<Request<Incoming>, Response = Response<Body>, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    /// A share on the current runtime, its connections counted in `open`.
    fn new(connections: Connections, make_service: M, open: Arc<AtomicUsize>) -> Share<M> {
        let busy = Arc::new(tokio::sync::Notify::new());
        let timer = tokio::spawn(keep_a_timer_while_busy(open.clone(), busy.clone()));
        Share {
            connections,
            make_service,
            open,
            busy,
            timer,
        }
    }

    /// Serves a connection, counted in `open` until it ends.
    fn serve(&self, stream: TcpStream, addr: SocketAddr, open: Open) {
        self.busy.notify_one();
        // The count goes into the connection's own future: a future wrapped in another
        // and awaited there is held twice over, and a connection's is kilobytes (spawning
        // it so cost ~100,000 instructions a connection in copies).
        let make_service = self.make_service.clone();
        tokio::spawn(self.connections.run(stream, addr, make_service, Some(open)));
    }

    async fn drain(self, grace: Duration) {
        self.connections.drain(grace).await;
        self.timer.abort();
    }
}

/// How far ahead an agent thread with connections keeps a timer pending.
const TIMER_KEEPER: Duration = Duration::from_secs(5);

/// Keeps a timer pending on this runtime while its thread holds connections.
///
/// Every request registers two timers on its thread: its connection's header-read timeout
/// (HTTP/1.1, 10 s) and its upstream timeout (60 s). When tokio's timer driver parked with
/// no timer pending, it noted no next wake, and until it parks again each timer registered
/// "unparks" the thread, which is running: a write to its own eventfd and a spurious return
/// from its next `epoll_wait` (0.8 writes a request at h1 x 8, BENCHMARKS.md session 11).
/// A timer pending nearer than those keeps the driver's next wake before them, so they
/// unpark nothing. It fires every [`TIMER_KEEPER`] while the thread has connections, and
/// not at all while it has none.
async fn keep_a_timer_while_busy(open: Arc<AtomicUsize>, busy: Arc<tokio::sync::Notify>) {
    loop {
        while open.load(Ordering::Relaxed) == 0 {
            busy.notified().await;
        }
        tokio::time::sleep(TIMER_KEEPER).await;
    }
}

/// A connection counted as open on its thread from its hand-off until it ends.
pub(super) struct Open(Arc<AtomicUsize>);

impl Open {
    fn count(open: &Arc<AtomicUsize>) -> Open {
        open.fetch_add(1, Ordering::Relaxed);
        Open(open.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    use http_body_util::BodyExt;
    use hyper::client::conn::http1;
    use hyper_util::rt::TokioIo;

    /// A kept connection, and which thread serves it.
    async fn connect(addr: SocketAddr) -> (http1::SendRequest<Body>, String) {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(conn);
        let request = Request::get("/").body(crate::error::full("")).unwrap();
        let response = sender.send_request(request).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (sender, String::from_utf8(body.to_vec()).unwrap())
    }

    /// Each connection goes to the thread holding the fewest (the accepting one on a tie),
    /// is served there from start to end, and no longer counts once closed.
    #[tokio::test]
    async fn connections_go_to_the_thread_with_the_fewest_open() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Each thread's service answers with the thread's name.
        let setups = (0..2)
            .map(|_| {
                || {
                    |_peer: Arc<Peer>| {
                        hyper::service::service_fn(|_request| async {
                            let name = std::thread::current().name().unwrap_or("").to_owned();
                            Ok::<_, Infallible>(Response::new(crate::error::full(name)))
                        })
                    }
                }
            })
            .collect();
        let threads = AgentThreads::start(None, &LimitsConfig::default(), setups).unwrap();
        let counts = threads.open_counts();
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = tokio::spawn(threads.serve(listener, async {
            let _ = stopped.await;
        }));

        let here = std::thread::current().name().unwrap().to_owned();
        let (a, thread_a) = connect(addr).await;
        let (_b, thread_b) = connect(addr).await;
        assert_eq!(thread_a, here, "the first stays on the accepting thread");
        assert_eq!(thread_b, "sluice-agents-1", "the second goes to the other");

        drop(a);
        let deadline = Instant::now() + Duration::from_secs(5);
        while counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum::<usize>()
            != 1
        {
            assert!(
                Instant::now() < deadline,
                "the closed connection still counts"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (_c, thread_c) = connect(addr).await;
        assert_eq!(thread_c, thread_a, "the next goes where one was closed");
        let (_d, thread_d) = connect(addr).await;
        let (_e, thread_e) = connect(addr).await;
        assert_ne!(thread_d, thread_e, "two more: one each");

        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(10), serving)
            .await
            .expect("the threads drain and stop")
            .unwrap();
    }
}
