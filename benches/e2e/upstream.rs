//! `pki` and `upstream`: the apiserver stand-in every proxy forwards to.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
};
use tokio::net::TcpListener;

use super::Error;

type BoxBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

pub(crate) fn pki(dir: &Path) -> Result<(), Error> {
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

pub(crate) async fn upstream(
    cert: &str,
    key: &str,
    addr: SocketAddr,
    bytes: usize,
) -> Result<(), Error> {
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
