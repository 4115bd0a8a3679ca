//! The end-to-end benchmark's driver (`benches/run-e2e.sh` and the scripts beside it build
//! and run it); not part of sluice. A `[[bench]]` without a harness, so that `cargo test`
//! does not build it; `cargo bench` runs it with `--bench`, and it only says so.
//!
//! ```text
//! bench_e2e pki DIR                      CA + a server certificate for 127.0.0.1/localhost
//! bench_e2e upstream CERT KEY ADDR [BYTES]
//!                                        a TLS (h2 + http/1.1) server: every GET gets a JSON
//!                                        object of ~BYTES (1 KB by default) at once;
//!                                        `?watch=1|true` gets a chunked stream that sends one
//!                                        event and never ends
//! bench_e2e watchers URL CA TOKEN N SECS [PER_CONN]
//!                                        opens N HTTP/2 watch streams (PER_CONN, 200 by
//!                                        default, a connection; 1: N agents' connections),
//!                                        holds them SECS seconds, prints how many opened
//! bench_e2e connections URL CA TOKEN PROTO CONC SECS LOGFILE
//!                                        CONC clients, each in a loop for SECS seconds: a new
//!                                        TCP connection, a TLS handshake (ALPN h2 or http/1.1
//!                                        by PROTO; none for http://), one GET, close — what
//!                                        every `kubectl` run costs; writes h2load-style lines
//!                                        (start µs, status, µs) to LOGFILE, prints how many
//!                                        were answered 2xx and how many a second
//! bench_e2e stats LOGFILE...             p50/p99 (ms) and count of h2load --log-file output
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
};
use tokio::net::{TcpListener, TcpStream};

type BoxBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;
type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--bench") {
        println!("e2e: the end-to-end driver, run by benches/run-e2e.sh");
        return Ok(());
    }
    let arg = |i: usize| -> Result<&str, Error> {
        args.get(i)
            .map(String::as_str)
            .ok_or_else(|| format!("missing argument {i}; see the file's doc comment").into())
    };
    match arg(0)? {
        "pki" => pki(Path::new(arg(1)?)),
        "stats" => stats(&args[1..]),
        "upstream" => {
            let bytes = match args.get(4) {
                Some(n) => n
                    .parse()
                    .map_err(|e| format!("BYTES {n:?} is not a byte count: {e}"))?,
                None => 1000,
            };
            runtime()?.block_on(upstream(arg(1)?, arg(2)?, arg(3)?.parse()?, bytes))
        }
        "watchers" => runtime()?.block_on(watchers(
            arg(1)?,
            arg(2)?,
            arg(3)?,
            arg(4)?.parse()?,
            arg(5)?.parse()?,
            match args.get(6) {
                Some(n) => n
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("PER_CONN {n:?} is not a positive count"))?,
                None => 200,
            },
        )),
        "connections" => runtime()?.block_on(connections(Fresh {
            url: arg(1)?.parse()?,
            ca: arg(2)?,
            token: arg(3)?,
            h2: match arg(4)? {
                "h2" => true,
                "h1" => false,
                other => return Err(format!("PROTO {other:?} is neither h1 nor h2").into()),
            },
            clients: arg(5)?.parse()?,
            secs: arg(6)?.parse()?,
            log: arg(7)?,
        })),
        other => Err(format!("unknown command {other}").into()),
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

fn pki(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir)?;
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Distinct names: OpenSSL (nginx) takes a leaf whose issuer equals its subject for
    // self-signed.
    ca.distinguished_name = name("sluice bench CA");
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
    leaf.distinguished_name = name("sluice bench server");
    let key = KeyPair::generate()?;
    let cert = leaf.signed_by(&key, &issuer)?;
    std::fs::write(dir.join("ca.crt"), ca_cert.pem())?;
    std::fs::write(dir.join("server.crt"), cert.pem())?;
    std::fs::write(dir.join("server.key"), key.serialize_pem())?;
    Ok(())
}

fn name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name
}

/// A JSON object of about `bytes` (at least ~120), like a Kubernetes ConfigMap: 1 KB is a
/// small one, megabytes stand for a large list.
fn object(bytes: usize) -> Bytes {
    let blob = bytes.saturating_sub(100).max(1);
    let data: String = "abcdefghijklmnopqrstuvwxyz0123456789"
        .chars()
        .cycle()
        .take(blob)
        .collect();
    Bytes::from(format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"bench","namespace":"default","resourceVersion":"1"}},"data":{{"blob":"{data}"}}}}"#
    ))
}

async fn upstream(cert: &str, key: &str, addr: SocketAddr, bytes: usize) -> Result<(), Error> {
    let certs = rustls_pemfile::certs(&mut &std::fs::read(cert)?[..]).collect::<Result<_, _>>()?;
    let key = rustls_pemfile::private_key(&mut &std::fs::read(key)?[..])?.ok_or("no key")?;
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = TcpListener::bind(addr).await?;
    let body = object(bytes);
    println!("upstream: serving on https://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let body = body.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let service = hyper::service::service_fn(move |req| answer(req, body.clone()));
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            // kube-apiserver allows 100 streams a connection unless
            // --http2-max-streams-per-connection says otherwise (since Kubernetes 1.29).
            builder.http2().max_concurrent_streams(100);
            let _ = builder.serve_connection(TokioIo::new(tls), service).await;
        });
    }
}

async fn answer(req: Request<Incoming>, body: Bytes) -> Result<Response<BoxBody>, Infallible> {
    let watch = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "watch=1" || kv == "watch=true"));
    let response = Response::builder().header("content-type", "application/json");
    if !watch {
        return Ok(response.body(Full::new(body).boxed()).unwrap_or_default());
    }
    // One ADDED event, then silence: an idle watch held open.
    let first = Bytes::from_static(b"{\"type\":\"ADDED\",\"object\":{\"kind\":\"ConfigMap\"}}\n");
    let stream = futures_util::stream::unfold(Some(first), |next| async move {
        match next {
            Some(event) => Some((Ok::<_, Infallible>(Frame::data(event)), None)),
            None => futures_util::future::pending().await,
        }
    });
    Ok(response
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .unwrap_or_default())
}

/// Opens `n` watches as HTTP/2 streams, `per_conn` a connection (sluice allows 250).
async fn watchers(
    url: &str,
    ca: &str,
    token: &str,
    n: usize,
    secs: u64,
    per_conn: usize,
) -> Result<(), Error> {
    let uri: http::Uri = url.parse()?;
    let addr = format!(
        "{}:{}",
        uri.host().ok_or("no host")?,
        uri.port_u16().unwrap_or(443)
    );
    let connector = client_tls(ca, b"h2")?;
    let opened = Arc::new(AtomicUsize::new(0));
    let mut held = Vec::new();
    for c in 0..n.div_ceil(per_conn) {
        let tcp = TcpStream::connect(&addr).await?;
        let stream = connector
            .connect(rustls::pki_types::ServerName::try_from("127.0.0.1")?, tcp)
            .await?;
        let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .initial_stream_window_size(65_535)
            .handshake::<_, Full<Bytes>>(TokioIo::new(stream))
            .await?;
        tokio::spawn(conn);
        for i in 0..per_conn.min(n - c * per_conn) {
            let req = Request::get(format!(
                "{url}/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={i}"
            ))
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::new()))?;
            held.push(tokio::spawn(hold_watch(
                sender.clone(),
                req,
                opened.clone(),
            )));
        }
    }
    report_open(&opened, secs).await;
    for task in held {
        task.abort();
    }
    Ok(())
}

/// Opens one watch on `sender` and holds it, counting it in `opened` at its first event.
async fn hold_watch(
    mut sender: hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
    opened: Arc<AtomicUsize>,
) {
    if sender.ready().await.is_err() {
        return;
    }
    let Ok(response) = sender.send_request(req).await else {
        return;
    };
    if !response.status().is_success() {
        eprintln!("watch refused: {}", response.status());
        return;
    }
    let mut body = response.into_body();
    // The first event proves the stream reached the upstream and back.
    if let Some(Ok(_)) = body.frame().await {
        opened.fetch_add(1, Ordering::Relaxed);
    }
    while let Some(Ok(_)) = body.frame().await {}
}

/// Prints how many watches are open whenever that changes, for `secs` seconds.
async fn report_open(opened: &AtomicUsize, secs: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut last = usize::MAX;
    while tokio::time::Instant::now() < deadline {
        let now = opened.load(Ordering::Relaxed);
        if now != last {
            println!("watchers: {now} open");
            last = now;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!(
        "watchers: {} open at the end",
        opened.load(Ordering::Relaxed)
    );
}

fn client_tls(ca: &str, alpn: &[u8]) -> Result<tokio_rustls::TlsConnector, Error> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &std::fs::read(ca)?[..]) {
        roots.add(cert?)?;
    }
    // Go's order (kubectl's TLS): AES-128-GCM with SHA-256 first on a CPU with AES
    // instructions; rustls puts AES-256-GCM with SHA-384 first.
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|suite| suite.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![alpn.to_vec()];
    // A new client process (kubectl) has no session to resume.
    tls.resumption = rustls::client::Resumption::disabled();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(tls)))
}

/// What `connections` runs.
struct Fresh<'a> {
    url: http::Uri,
    ca: &'a str,
    token: &'a str,
    h2: bool,
    clients: usize,
    secs: u64,
    log: &'a str,
}

/// A connection for every request, as each `kubectl` run makes: see the file's doc comment.
async fn connections(run: Fresh<'_>) -> Result<(), Error> {
    let host = run.url.host().ok_or("no host in URL")?.to_owned();
    let tls = match run.url.scheme_str() {
        Some("https") => Some(client_tls(
            run.ca,
            if run.h2 { b"h2" } else { b"http/1.1" },
        )?),
        Some("http") => None,
        other => return Err(format!("URL scheme {other:?} is neither http nor https").into()),
    };
    let addr = format!("{host}:{}", run.url.port_u16().ok_or("no port in URL")?);
    let epoch = tokio::time::Instant::now();
    let deadline = epoch + Duration::from_secs(run.secs);
    let client = Client {
        tls,
        addr,
        host,
        url: run.url.clone(),
        authorization: format!("Bearer {}", run.token),
        h2: run.h2,
    };
    let clients: Vec<_> = (0..run.clients)
        .map(|_| tokio::spawn(client.clone().run(epoch, deadline)))
        .collect();
    let (mut out, mut done, mut ok) = (String::new(), 0, 0);
    for client in clients {
        let (lines, answered) = client.await?;
        done += lines.len();
        ok += answered;
        out.extend(lines);
    }
    std::fs::write(run.log, out)?;
    let secs = epoch.elapsed().as_secs_f64();
    println!(
        "connections: {ok} answered 2xx of {done} in {secs:.2} s, {:.1} a second",
        ok as f64 / secs
    );
    Ok(())
}

/// One of `connections`' clients.
#[derive(Clone)]
struct Client {
    tls: Option<tokio_rustls::TlsConnector>,
    addr: String,
    host: String,
    url: http::Uri,
    authorization: String,
    h2: bool,
}

impl Client {
    /// Makes requests, a connection each, until `deadline`: h2load-style log lines (start
    /// µs since `epoch`, status, µs) and how many were answered 2xx.
    async fn run(
        self,
        epoch: tokio::time::Instant,
        deadline: tokio::time::Instant,
    ) -> (Vec<String>, usize) {
        let (mut lines, mut answered) = (Vec::new(), 0usize);
        while tokio::time::Instant::now() < deadline {
            let start = tokio::time::Instant::now();
            let status = self.status().await;
            answered += usize::from((200..300).contains(&status));
            lines.push(format!(
                "{}\t{status}\t{}\n",
                (start - epoch).as_micros(),
                start.elapsed().as_micros()
            ));
        }
        (lines, answered)
    }

    /// One request on a new connection: its status, 0 if it failed.
    async fn status(&self) -> u16 {
        // HTTP/1.1 in origin form with a Host header, HTTP/2 with :authority.
        let request = if self.h2 {
            Request::get(self.url.clone())
        } else {
            Request::get(self.url.path_and_query().map_or("/", |p| p.as_str()))
                .header("host", self.host.as_str())
        };
        let request = request
            .header("authorization", self.authorization.as_str())
            .body(Full::new(Bytes::new()));
        let request = match request {
            Ok(request) => request,
            Err(err) => {
                eprintln!("request: {err}");
                return 0;
            }
        };
        let tls = self.tls.as_ref();
        match one_request(&self.addr, &self.host, tls, self.h2, request).await {
            Ok(status) => status,
            Err(err) => {
                eprintln!("connection failed: {err}");
                // Not a tight loop of failures against a server that is down.
                tokio::time::sleep(Duration::from_millis(10)).await;
                0
            }
        }
    }
}

/// Connects, shakes hands, sends `request`, reads the whole answer, closes: the status.
async fn one_request(
    addr: &str,
    host: &str,
    tls: Option<&tokio_rustls::TlsConnector>,
    h2: bool,
    request: Request<Full<Bytes>>,
) -> Result<u16, Error> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let Some(tls) = tls else {
        return exchange(TokioIo::new(tcp), h2, request).await;
    };
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())?;
    exchange(TokioIo::new(tls.connect(name, tcp).await?), h2, request).await
}

/// One request over `io`, its answer read to the end; the connection is closed after.
async fn exchange<I>(io: TokioIo<I>, h2: bool, request: Request<Full<Bytes>>) -> Result<u16, Error>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let response = if h2 {
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(conn);
        sender.send_request(request).await?
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(conn);
        sender.send_request(request).await?
    };
    let status = response.status().as_u16();
    response.into_body().collect().await?;
    Ok(status)
}

/// Reads h2load `--log-file` output (start µs, status, duration µs, tab-separated).
fn stats(files: &[String]) -> Result<(), Error> {
    let mut durations = Vec::new();
    let mut failed = 0usize;
    for file in files {
        for line in std::fs::read_to_string(file)?.lines() {
            let cols: Vec<&str> = line.split('\t').collect();
            if cols.len() < 3 {
                continue;
            }
            if !cols[1].starts_with('2') {
                failed += 1;
            }
            durations.push(cols[2].trim().parse::<u64>()?);
        }
    }
    durations.sort_unstable();
    let pct = |p: f64| -> f64 {
        if durations.is_empty() {
            return f64::NAN;
        }
        let i = ((durations.len() as f64 - 1.0) * p).round() as usize;
        durations[i] as f64 / 1000.0
    };
    println!(
        "{:.3} {:.3} {} {}",
        pct(0.50),
        pct(0.99),
        durations.len(),
        failed
    );
    Ok(())
}
