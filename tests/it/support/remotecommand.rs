//! exec and attach sessions (the "remotecommand" protocols), over WebSocket
//! (`v5.channel.k8s.io`/`v4.channel.k8s.io`: each binary message starts with its
//! channel, 0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize; v5's 255 closes a
//! channel) or over SPDY/3.1 (`v4.channel.k8s.io`: one stream per channel, named
//! by its `streamtype` header). The status goes out last, then the session closes.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::exec::{self, Stdio};
use super::spdy;
use super::websocket::{self, Ws};

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;
const CLOSE: u8 = 255;

/// Which standard streams the client asked for (query `stdin`, `stdout`, `stderr`, `tty`).
#[derive(Clone, Copy, Debug)]
pub struct Wanted {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

pub async fn over_websocket(ws: Ws, command: Vec<String>, wanted: Wanted) {
    let (mut sink, mut stream) = ws.split();
    let (stdin_tx, stdin_rx) = mpsc::unbounded_channel();
    let (stdout_tx, mut stdout_rx) = mpsc::unbounded_channel::<Bytes>();
    let (stderr_tx, mut stderr_rx) = mpsc::unbounded_channel::<Bytes>();
    let stdio = Stdio {
        stdin: wanted.stdin.then_some(stdin_rx),
        stdout: stdout_tx,
        stderr: stderr_tx,
    };
    let run = tokio::spawn(async move { exec::run(&command, stdio).await });
    tokio::spawn(async move {
        let mut stdin = Some(stdin_tx);
        while let Some(Ok(message)) = stream.next().await {
            let Message::Binary(data) = message else {
                continue;
            };
            match (data.first(), data.get(1)) {
                (Some(&STDIN), _) => {
                    if let Some(tx) = &stdin {
                        let _ = tx.send(data.slice(1..));
                    }
                }
                (Some(&CLOSE), Some(&STDIN)) => stdin = None,
                _ => {}
            }
        }
    });
    let framed = |channel: u8, data: &[u8]| Message::binary([&[channel], data].concat());
    loop {
        let message = tokio::select! {
            Some(data) = stdout_rx.recv() => framed(STDOUT, &data),
            Some(data) = stderr_rx.recv() => framed(STDERR, &data),
            else => break,
        };
        if sink.send(message).await.is_err() {
            return;
        }
    }
    let status = run.await.unwrap();
    let _ = sink
        .send(framed(STATUS, &serde_json::to_vec(&status).unwrap()))
        .await;
    let _ = sink.send(websocket::normal_close()).await;
    let _ = sink.close().await;
}

pub async fn over_spdy<IO>(io: IO, command: Vec<String>, wanted: Wanted)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let mut streams = spdy::serve(io);
    let expected = 1 + [wanted.stdin, wanted.stdout, wanted.stderr, wanted.tty]
        .iter()
        .filter(|w| **w)
        .count();
    let mut by_type = std::collections::HashMap::new();
    while by_type.len() < expected {
        match tokio::time::timeout(Duration::from_secs(10), streams.recv()).await {
            Ok(Some(stream)) => {
                let kind = stream.header("streamtype").unwrap_or("").to_owned();
                by_type.insert(kind, stream);
            }
            _ => return,
        }
    }
    let (Some(error), stdin, stdout, stderr) = (
        by_type.remove("error"),
        by_type.remove("stdin"),
        by_type.remove("stdout"),
        by_type.remove("stderr"),
    ) else {
        return;
    };
    let (stdout_tx, mut stdout_rx) = mpsc::unbounded_channel::<Bytes>();
    let (stderr_tx, mut stderr_rx) = mpsc::unbounded_channel::<Bytes>();
    let stdio = Stdio {
        stdin: stdin.map(|s| s.incoming),
        stdout: stdout_tx,
        stderr: stderr_tx,
    };
    let run = tokio::spawn(async move { exec::run(&command, stdio).await });
    loop {
        tokio::select! {
            Some(data) = stdout_rx.recv() => if let Some(s) = &stdout { s.out.write(&data) },
            Some(data) = stderr_rx.recv() => if let Some(s) = &stderr { s.out.write(&data) },
            else => break,
        }
    }
    let status = run.await.unwrap();
    for stream in [&stdout, &stderr].into_iter().flatten() {
        stream.out.close();
    }
    error.out.write(&serde_json::to_vec(&status).unwrap());
    error.out.close();
}
