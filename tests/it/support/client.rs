//! A plain HTTPS client for tests that need what kubectl cannot do: pick
//! HTTP/1.1 or HTTP/2, send arbitrary headers (X-Request-ID, Impersonate-*),
//! present a client certificate.

use bytes::Bytes;
use http::{Request, Response, Version};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// An HTTPS client trusting one CA, speaking exactly one HTTP version.
#[derive(Clone)]
pub struct HttpsClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl HttpsClient {
    /// `version` is `Version::HTTP_11` or `Version::HTTP_2` (negotiated by ALPN).
    pub fn new(ca_pem: &str, version: Version) -> HttpsClient {
        HttpsClient::build(ca_pem, version, None)
    }

    /// Like [`HttpsClient::new`], presenting a client certificate.
    pub fn with_client_cert(
        ca_pem: &str,
        version: Version,
        cert_pem: &str,
        key_pem: &str,
    ) -> HttpsClient {
        HttpsClient::build(ca_pem, version, Some((cert_pem, key_pem)))
    }

    fn build(ca_pem: &str, version: Version, identity: Option<(&str, &str)>) -> HttpsClient {
        // hyper-rustls sets ALPN itself from the enabled versions.
        let config = super::pki::client_config(ca_pem, &[], identity);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_only();
        let mut client = Client::builder(TokioExecutor::new());
        let connector = if version == Version::HTTP_2 {
            client.http2_only(true);
            connector.enable_http2().build()
        } else {
            connector.enable_http1().build()
        };
        HttpsClient {
            client: client.build(connector),
        }
    }

    /// Sends `request` and collects the whole response body.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Response<Bytes> {
        let response = self.client.request(request).await.unwrap();
        let (parts, body) = response.into_parts();
        Response::from_parts(parts, body.collect().await.unwrap().to_bytes())
    }

    /// Sends `request` and returns once the response head has arrived, leaving the body
    /// (a watch that never ends, say) unread.
    pub async fn open(&self, request: Request<Full<Bytes>>) -> Response<hyper::body::Incoming> {
        self.client.request(request).await.unwrap()
    }

    /// GET `url` with `headers`.
    pub async fn get(&self, url: &str, headers: &[(&str, &str)]) -> Response<Bytes> {
        let mut request = Request::get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request.body(Full::new(Bytes::new())).unwrap())
            .await
    }
}
