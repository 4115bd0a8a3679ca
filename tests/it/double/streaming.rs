//! exec, attach and port-forward against the double, over WebSocket and SPDY/3.1.

use std::time::Duration;

use http::{Method, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{ok, setup, wait_until};
use crate::support::{ApiServer, Kubectl, RecordedRequest, kubectl};

#[tokio::test]
async fn exec_echo_over_websocket() {
    let (server, _dir, kubeconfig) = setup().await;
    let stdout = ok(&kubectl(
        &kubeconfig,
        &["exec", "web-0", "--", "echo", "hello", "world"],
    )
    .await);
    assert_eq!(stdout, "hello world\n");
    let exec = upgrade_request(&server, "/exec");
    assert_eq!(exec.method, Method::GET);
    assert_eq!(exec.header("upgrade"), Some("websocket"));
    assert!(
        exec.header("sec-websocket-protocol")
            .unwrap()
            .contains("v5.channel.k8s.io")
    );
}

#[tokio::test]
async fn exec_echo_over_spdy() {
    let (server, _dir, kubeconfig) = setup().await;
    let out = Kubectl::new(&kubeconfig)
        .args(&["exec", "web-0", "--", "echo", "hello"])
        .env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")
        .run()
        .await;
    assert_eq!(ok(&out), "hello\n");
    let exec = upgrade_request(&server, "/exec");
    assert_eq!(exec.method, Method::POST);
    assert_eq!(exec.header("upgrade"), Some("SPDY/3.1"));
    assert_eq!(exec.version, Version::HTTP_11);
}

#[tokio::test]
async fn exec_cat_echoes_stdin_over_websocket_and_spdy() {
    let (_server, _dir, kubeconfig) = setup().await;
    for websockets in ["true", "false"] {
        let out = Kubectl::new(&kubeconfig)
            .args(&["exec", "-i", "web-0", "--", "cat"])
            .env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", websockets)
            .stdin(b"line one\nline two\n")
            .run()
            .await;
        assert_eq!(ok(&out), "line one\nline two\n", "websockets={websockets}");
    }
}

#[tokio::test]
async fn exec_reports_the_exit_code() {
    let (_server, _dir, kubeconfig) = setup().await;
    let out = kubectl(&kubeconfig, &["exec", "web-0", "--", "sh", "-c", "exit 3"]).await;
    assert_eq!(out.status.code(), Some(3), "{out:?}");
}

#[tokio::test]
async fn port_forward_echoes_over_spdy() {
    let (server, _dir, kubeconfig) = setup().await;
    port_forward_echoes(&kubeconfig, "false").await;
    let forward = upgrade_request(&server, "/portforward");
    assert_eq!(
        (&forward.method, forward.header("upgrade")),
        (&Method::POST, Some("SPDY/3.1"))
    );
}

#[tokio::test]
async fn port_forward_echoes_over_websocket_tunnel() {
    let (server, _dir, kubeconfig) = setup().await;
    port_forward_echoes(&kubeconfig, "true").await;
    let forward = upgrade_request(&server, "/portforward");
    assert_eq!(
        (&forward.method, forward.header("upgrade")),
        (&Method::GET, Some("websocket"))
    );
    assert!(
        forward
            .header("sec-websocket-protocol")
            .unwrap()
            .contains("SPDY/3.1+portforward.k8s.io")
    );
}

#[tokio::test]
async fn sessions_are_counted_until_they_end() {
    let (server, _dir, kubeconfig) = setup().await;
    ok(&kubectl(&kubeconfig, &["exec", "web-0", "--", "true"]).await);
    wait_until(|| server.open_sessions() == 0).await;
}

async fn port_forward_echoes(kubeconfig: &std::path::Path, websockets: &str) {
    let mut forward = Kubectl::new(kubeconfig)
        .args(&["port-forward", "pod/web-0", ":8080"])
        .env("KUBECTL_PORT_FORWARD_WEBSOCKETS", websockets)
        .spawn();
    let line = forward.line_containing("Forwarding from 127.0.0.1:").await;
    let port: u16 = line
        .split(['-', ':'])
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    for message in [&b"ping\n"[..], b"second connection\n"] {
        let mut conn = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        conn.write_all(message).await.unwrap();
        let mut echoed = vec![0; message.len()];
        tokio::time::timeout(Duration::from_secs(5), conn.read_exact(&mut echoed))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(echoed, message);
    }
    forward.kill().await;
}

fn upgrade_request(server: &ApiServer, suffix: &str) -> RecordedRequest {
    let requests = server.requests();
    requests
        .iter()
        .rev()
        .find(|r| {
            r.path_and_query
                .split('?')
                .next()
                .unwrap()
                .ends_with(suffix)
        })
        .unwrap_or_else(|| panic!("no {suffix} request among {requests:#?}"))
        .clone()
}
