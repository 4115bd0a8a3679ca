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

mod connections;
mod upstream;
mod watchers;

use std::path::Path;
use std::sync::Arc;

use connections::Fresh;

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
            .ok_or_else(|| format!("missing argument {i}; see benches/e2e/main.rs").into())
    };
    match arg(0)? {
        "pki" => upstream::pki(Path::new(arg(1)?)),
        "stats" => stats(&args[1..]),
        "upstream" => {
            let bytes = match args.get(4) {
                Some(n) => n
                    .parse()
                    .map_err(|e| format!("BYTES {n:?} is not a byte count: {e}"))?,
                None => 1000,
            };
            runtime()?.block_on(upstream::upstream(
                arg(1)?,
                arg(2)?,
                arg(3)?.parse()?,
                bytes,
            ))
        }
        "watchers" => runtime()?.block_on(watchers::watchers(
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
        "connections" => runtime()?.block_on(connections::connections(Fresh {
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
