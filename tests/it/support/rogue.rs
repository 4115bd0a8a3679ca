//! A misbehaving upstream for fault tests: speaks just enough HTTP/1.1 over TLS to answer
//! sluice, then streams forever, resets mid-response or mid-watch, or refuses an upgrade;
//! or speaks HTTP/2 and closes each connection after one request, as kube-apiserver's
//! `--goaway-chance` does to some. It records the X-Request-ID of each request, counts the
//! bytes it managed to write and the connections it accepted.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::pki::{self, TestCa};

/// What the rogue does once it has read a request head.
#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// 200 with a chunked body that never ends, written as fast as the peer reads.
    StreamForever,
    /// 200 promising 1 MB, sends `n` bytes, then resets the connection.
    ResetMidResponse(usize),
    /// A chunked watch stream: one event, then a reset.
    ResetMidWatch,
    /// 400 Status to anything (an upgrade whose 101 never comes).
    BadRequest,
    /// HTTP/2 (ALPN h2 only): on each connection, sends GOAWAY as the first request arrives,
    /// answers that request with an empty PodList and closes the connection.
    GoAwayAfterOneRequest,
    /// HTTP/2 by ALPN, then silence: reads what it is sent and never sends a frame (not even
    /// the SETTINGS every HTTP/2 server opens with).
    SilentHttp2,
}

/// The running rogue; stops accepting when dropped.
pub struct Rogue {
    pub port: u16,
    dir: tempfile::TempDir,
    pub request_ids: Arc<Mutex<Vec<String>>>,
    pub written: Arc<AtomicU64>,
    pub open: Arc<AtomicUsize>,
    /// Connections accepted so far.
    pub accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Rogue {
    pub async fn start(behaviour: Behaviour) -> Rogue {
        let ca = TestCa::new("rogue CA");
        let dir = tempfile::tempdir().unwrap();
        ca.write_cert(dir.path(), "ca.crt");
        pki::write_file(dir.path(), "token", "rogue-token");
        let (cert, key) = ca.issue_server(&["127.0.0.1"]);
        let alpn: &[&[u8]] = match behaviour {
            Behaviour::GoAwayAfterOneRequest | Behaviour::SilentHttp2 => &[b"h2"],
            _ => &[b"http/1.1"],
        };
        let acceptor = pki::acceptor(&cert, &key, alpn);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let request_ids = Arc::new(Mutex::new(Vec::new()));
        let written = Arc::new(AtomicU64::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (ids, count, opened) = (request_ids.clone(), written.clone(), open.clone());
        let accepts = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                accepts.fetch_add(1, Ordering::SeqCst);
                let (acceptor, ids, count, opened) =
                    (acceptor.clone(), ids.clone(), count.clone(), opened.clone());
                tokio::spawn(async move {
                    opened.fetch_add(1, Ordering::SeqCst);
                    serve(tcp, acceptor, behaviour, ids, count).await;
                    opened.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Rogue {
            port,
            dir,
            request_ids,
            written,
            open,
            accepted,
            task,
        }
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// The `upstream:` section that points sluice at the rogue.
    pub fn upstream_config(&self, timeout: &str) -> String {
        format!(
            "upstream: {{server: \"https://127.0.0.1:{}\", ca: \"{}\", token_file: \"{}\", timeout: {timeout}}}\n",
            self.port,
            self.ca_path().display(),
            self.dir.path().join("token").display()
        )
    }

    pub fn requests(&self) -> Vec<String> {
        self.request_ids.lock().unwrap().clone()
    }
}

impl Drop for Rogue {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Tls = tokio_rustls::server::TlsStream<TcpStream>;

async fn serve(
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    behaviour: Behaviour,
    ids: Arc<Mutex<Vec<String>>>,
    written: Arc<AtomicU64>,
) {
    let Ok(mut tls) = acceptor.accept(tcp).await else {
        return;
    };
    if let Behaviour::GoAwayAfterOneRequest = behaviour {
        return serve_one_http2_request(tls, ids).await;
    }
    if let Behaviour::SilentHttp2 = behaviour {
        let mut sink = [0u8; 4096];
        while matches!(tls.read(&mut sink).await, Ok(n) if n > 0) {}
        return;
    }
    let Some(head) = read_request_head(&mut tls).await else {
        return;
    };
    record_request_id(&head, &ids);
    match behaviour {
        Behaviour::StreamForever => stream_forever(tls, &written).await,
        Behaviour::ResetMidResponse(n) => reset_mid_response(tls, n, &written).await,
        Behaviour::ResetMidWatch => reset_mid_watch(tls).await,
        Behaviour::GoAwayAfterOneRequest | Behaviour::SilentHttp2 => {
            unreachable!("served over HTTP/2 above")
        }
        Behaviour::BadRequest => refuse_upgrade(tls).await,
    }
}

/// Reads up to the end of an HTTP/1.1 request head; `None` if the peer closes first.
async fn read_request_head(tls: &mut Tls) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tls.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    Some(head)
}

fn record_request_id(head: &[u8], ids: &Mutex<Vec<String>>) {
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    if let Some(id) = text
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id:"))
        .map(|v| v.trim().to_owned())
    {
        ids.lock().unwrap().push(id);
    }
}

/// Closes the connection with a TCP reset (linger zero), not a TLS close.
fn reset(tls: Tls) {
    let (tcp, _) = tls.into_inner();
    #[allow(deprecated)]
    let _ = tcp.set_linger(Some(Duration::ZERO));
    drop(tcp);
}

async fn stream_forever(mut tls: Tls, written: &AtomicU64) {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                Transfer-Encoding: chunked\r\n\r\n";
    if tls.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
    while tls.write_all(chunk.as_bytes()).await.is_ok() {
        written.fetch_add(0x10000, Ordering::SeqCst);
    }
}

async fn reset_mid_response(mut tls: Tls, n: usize, written: &AtomicU64) {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                Content-Length: 1000000\r\n\r\n";
    let _ = tls.write_all(head.as_bytes()).await;
    let _ = tls.write_all(&vec![b'x'; n]).await;
    let _ = tls.flush().await;
    written.fetch_add(n as u64, Ordering::SeqCst);
    // Let the head and the first bytes reach the agent before the reset.
    tokio::time::sleep(Duration::from_millis(300)).await;
    reset(tls);
}

async fn reset_mid_watch(mut tls: Tls) {
    let event = r#"{"type":"ADDED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p","namespace":"default","resourceVersion":"1"}}}"#;
    let body = format!("{:x}\r\n{event}\n\r\n", event.len() + 1);
    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                Transfer-Encoding: chunked\r\n\r\n";
    let _ = tls.write_all(head.as_bytes()).await;
    let _ = tls.write_all(body.as_bytes()).await;
    let _ = tls.flush().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    reset(tls);
}

/// 400 Status: the upgrade's 101 never comes.
async fn refuse_upgrade(mut tls: Tls) {
    let body = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"no upgrade for you","reason":"BadRequest","code":400}"#;
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tls.write_all(response.as_bytes()).await;
    let _ = tls.shutdown().await;
}

/// One request over HTTP/2, with the connection's GOAWAY (last stream: this one) sent
/// before its response, so sluice learns the connection is closing before its agent does.
async fn serve_one_http2_request(tls: Tls, ids: Arc<Mutex<Vec<String>>>) {
    let arrived = Arc::new(tokio::sync::Notify::new());
    let (signal, held) = (arrived.clone(), Arc::new(tokio::sync::Notify::new()));
    let release = held.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
        if let Some(id) = request.headers().get("x-request-id") {
            ids.lock().unwrap().push(id.to_str().unwrap().to_owned());
        }
        signal.notify_one();
        let held = held.clone();
        async move {
            held.notified().await;
            let body = r#"{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[]}"#;
            let response = hyper::Response::builder()
                .header("content-type", "application/json")
                .body(http_body_util::Full::new(bytes::Bytes::from_static(
                    body.as_bytes(),
                )))
                .unwrap();
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let connection = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .serve_connection(hyper_util::rt::TokioIo::new(tls), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = arrived.notified() => {}
    }
    // Queued now, the GOAWAY is written before the response, which is only made after it.
    connection.as_mut().graceful_shutdown();
    release.notify_one();
    let _ = connection.await;
}
