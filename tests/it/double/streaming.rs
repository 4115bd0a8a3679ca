//! exec, attach and port-forward against the double, over WebSocket and SPDY/3.1.

use http::{Method, Version};

use super::{ok, setup, wait_until};
use crate::support::kubectl::assert_port_forward_echoes as port_forward_echoes;
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
