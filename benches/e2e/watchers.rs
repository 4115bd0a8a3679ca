//! `watchers`: many idle watch streams held open through a proxy.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use super::{Error, client_tls};

/// Opens `n` watches as HTTP/2 streams, `per_conn` a connection (sluice allows 250).
pub(crate) async fn watchers(
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
