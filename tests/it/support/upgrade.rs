//! Streaming subresources of pods (exec, attach, portforward): picks the
//! protocol the client asked for, answers 101, and hands the upgraded connection
//! to the session. kubectl 1.32 tries WebSocket first (GET) and falls back to a
//! SPDY/3.1 upgrade (POST) when that is refused.

use http::{Response, StatusCode, header};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::apiserver::{Open, Req, Shared};
use super::body::{Body, empty, not_found, status_response};
use super::remotecommand::{self, Wanted};
use super::{portforward, websocket};

/// WebSocket subprotocols for exec/attach, most preferred first.
const CHANNEL_PROTOCOLS: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io"];
const SPDY_CHANNEL_PROTOCOLS: &[&str] = &["v4.channel.k8s.io"];
const PORT_FORWARD_TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";
const PORT_FORWARD: &str = "portforward.k8s.io";

/// What the session runs once the connection is upgraded, and the count it holds open.
struct Session {
    command: Vec<String>,
    wanted: Wanted,
    open: Open,
}

/// Answers an upgrade request for exec/attach/portforward; `None` for anything else.
pub fn handle(shared: &Shared, req: &mut Req) -> Option<Response<Body>> {
    let rest = req.path.strip_prefix("/api/v1/namespaces/")?;
    let [namespace, "pods", pod, action] = rest.split('/').collect::<Vec<_>>()[..] else {
        return None;
    };
    if !matches!(action, "exec" | "attach" | "portforward") {
        return None;
    }
    let upgrade = req.header("upgrade").to_ascii_lowercase();
    let on_upgrade = req.on_upgrade.take().filter(|_| !upgrade.is_empty())?;
    let key = ("pods".to_owned(), namespace.to_owned(), pod.to_owned());
    if shared.store.lock().unwrap().get(&key).is_none() {
        return Some(not_found("pods", pod));
    }
    let command = match action {
        "exec" => req.query_all("command"),
        _ => vec!["cat".to_owned()],
    };
    let wanted = Wanted {
        stdin: req.query_flag("stdin"),
        stdout: req.query_flag("stdout"),
        stderr: req.query_flag("stderr"),
        tty: req.query_flag("tty"),
    };
    let session = Session {
        command,
        wanted,
        open: Open::count(&shared.open_sessions),
    };
    let port_forward = action == "portforward";
    if upgrade == "websocket" {
        return Some(upgrade_to_websocket(req, port_forward, on_upgrade, session));
    }
    if !upgrade.starts_with("spdy/3.1") {
        return Some(unsupported("upgrade"));
    }
    Some(upgrade_to_spdy(req, port_forward, on_upgrade, session))
}

/// 400: the client asked for something this double does not speak.
fn unsupported(what: &str) -> Response<Body> {
    status_response(400, "BadRequest", &format!("unsupported {what}"), None)
}

/// Picks the WebSocket subprotocol, answers 101 and serves the session over WebSocket.
fn upgrade_to_websocket(
    req: &Req,
    port_forward: bool,
    on_upgrade: OnUpgrade,
    session: Session,
) -> Response<Body> {
    if port_forward {
        let Some(protocol) = websocket::choose_protocol(req, &[PORT_FORWARD_TUNNEL]) else {
            return unsupported("port-forward WebSocket subprotocol");
        };
        tokio::spawn(async move {
            let _open = session.open;
            if let Some(ws) = websocket::upgraded(on_upgrade).await {
                portforward::serve(websocket::tunnel(ws)).await;
            }
        });
        return websocket::switching_protocols(req, &protocol);
    }
    let Some(protocol) = websocket::choose_protocol(req, CHANNEL_PROTOCOLS) else {
        return unsupported("remote command WebSocket subprotocol");
    };
    tokio::spawn(async move {
        let _open = session.open;
        if let Some(ws) = websocket::upgraded(on_upgrade).await {
            remotecommand::over_websocket(ws, session.command, session.wanted).await;
        }
    });
    websocket::switching_protocols(req, &protocol)
}

/// Picks the SPDY stream protocol version, answers 101 and serves the session over SPDY/3.1.
fn upgrade_to_spdy(
    req: &Req,
    port_forward: bool,
    on_upgrade: OnUpgrade,
    session: Session,
) -> Response<Body> {
    let offered = req.header_values("x-stream-protocol-version");
    let supported: &[&str] = if port_forward {
        &[PORT_FORWARD]
    } else {
        SPDY_CHANNEL_PROTOCOLS
    };
    let Some(protocol) = supported.iter().find(|p| offered.iter().any(|o| o == *p)) else {
        return unsupported("stream protocol version");
    };
    tokio::spawn(async move {
        let _open = session.open;
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let io = TokioIo::new(upgraded);
        if port_forward {
            portforward::serve(io).await;
        } else {
            remotecommand::over_spdy(io, session.command, session.wanted).await;
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "SPDY/3.1")
        .header("X-Stream-Protocol-Version", *protocol)
        .body(empty())
        .unwrap()
}
