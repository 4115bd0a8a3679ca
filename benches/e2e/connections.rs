//! `connections`: a new connection for every request, as each `kubectl` run makes.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use super::{Error, client_tls};

/// What `connections` runs.
pub(crate) struct Fresh<'a> {
    pub(crate) url: http::Uri,
    pub(crate) ca: &'a str,
    pub(crate) token: &'a str,
    pub(crate) h2: bool,
    pub(crate) clients: usize,
    pub(crate) secs: u64,
    pub(crate) log: &'a str,
}

/// A connection for every request, as each `kubectl` run makes: see main.rs.
pub(crate) async fn connections(run: Fresh<'_>) -> Result<(), Error> {
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
