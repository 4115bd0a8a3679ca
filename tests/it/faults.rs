//! Faults around a running sluice: the upstream misbehaves, config files go bad, the disk
//! under the audit log fills up. sluice must answer with a clean Status, record what
//! happened, keep its last good config, and never forward what it could not record.

mod config;
mod disk;
mod upstream;

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::support::raw::read_until_close;
use crate::support::sluice::Sluice;

/// Polls `check` until it holds, for at most 15 s.
pub(super) async fn eventually<F, Fut>(what: &str, sluice: &Sluice, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "never: {what}\nlog:\n{}",
            sluice.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The admin listener's /metrics text.
pub(super) async fn metrics(sluice: &Sluice) -> String {
    let mut tcp = TcpStream::connect(sluice.admin).await.unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    read_until_close(&mut tcp).await
}

/// The value of one metric sample line (`name{labels}`), 0 if absent.
pub(super) fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}
