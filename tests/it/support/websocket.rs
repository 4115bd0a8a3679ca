//! WebSocket plumbing: the server handshake (101 with the chosen subprotocol),
//! and the port-forward tunnel, where SPDY/3.1 frames ride inside binary
//! WebSocket messages (subprotocol `SPDY/3.1+portforward.k8s.io`).

use futures_util::{SinkExt, StreamExt};
use http::{Response, StatusCode, header};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

use super::apiserver::Req;
use super::body::{Body, empty};

pub type Ws = WebSocketStream<TokioIo<Upgraded>>;

/// The first of `supported` (in our order of preference) the client offered.
pub fn choose_protocol(req: &Req, supported: &[&str]) -> Option<String> {
    let offered = req.header_values("sec-websocket-protocol");
    supported
        .iter()
        .find(|p| offered.iter().any(|o| o == *p))
        .map(|p| p.to_string())
}

/// The 101 answer to a WebSocket upgrade request.
pub fn switching_protocols(req: &Req, protocol: &str) -> Response<Body> {
    let key = req.header("sec-websocket-key");
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header(
            header::SEC_WEBSOCKET_ACCEPT,
            derive_accept_key(key.as_bytes()),
        )
        .header(header::SEC_WEBSOCKET_PROTOCOL, protocol)
        .body(empty())
        .unwrap()
}

/// The WebSocket, once hyper has handed over the connection.
pub async fn upgraded(on_upgrade: OnUpgrade) -> Option<Ws> {
    let upgraded = on_upgrade.await.ok()?;
    Some(WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await)
}

/// A Close with status 1000, which client-go reads as a clean end of stream
/// (a Close without a status, 1005, is an error to it).
pub fn normal_close() -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
}

/// A byte stream over `ws`: what is written goes out as binary messages, and
/// binary messages received are read back in order.
pub fn tunnel(ws: Ws) -> DuplexStream {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let (mut from_spdy, mut to_spdy) = tokio::io::split(theirs);
    let (mut sink, mut stream) = ws.split();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match from_spdy.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sink.send(Message::binary(buf[..n].to_vec())).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = sink.send(normal_close()).await;
        let _ = sink.close().await;
    });
    tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            match message {
                Message::Binary(data) if to_spdy.write_all(&data).await.is_err() => break,
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = to_spdy.shutdown().await;
    });
    ours
}
