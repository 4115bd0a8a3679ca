//! Runs the real kubectl binary, with a timeout, hermetically (its own cache
//! directory and HOME next to the kubeconfig).

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const KUBECTL: &str = "kubectl";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `kubectl --kubeconfig KUBECONFIG ARGS...` to completion (30 s timeout).
pub async fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    Kubectl::new(kubeconfig).args(args).run().await
}

/// A kubectl invocation being built.
pub struct Kubectl {
    kubeconfig: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
}

/// A kubectl left running (`get -w`, `port-forward`); killed on drop.
pub struct Running {
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Kubectl {
    pub fn new(kubeconfig: &Path) -> Kubectl {
        Kubectl {
            kubeconfig: kubeconfig.to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    pub fn args(mut self, args: &[&str]) -> Kubectl {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Kubectl {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Bytes fed to kubectl's stdin, which is then closed.
    pub fn stdin(mut self, bytes: &[u8]) -> Kubectl {
        self.stdin = Some(bytes.to_vec());
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Kubectl {
        self.timeout = timeout;
        self
    }

    /// Runs to completion; panics (after killing kubectl) on timeout.
    pub async fn run(self) -> Output {
        let mut child = self.command().spawn().unwrap();
        if let Some(bytes) = &self.stdin {
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(bytes).await.unwrap();
            drop(stdin);
        }
        match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(output) => output.unwrap(),
            // kill_on_drop(true) has killed it: the future owning the child is gone.
            Err(_) => panic!("kubectl {:?} timed out after {:?}", self.args, self.timeout),
        }
    }

    /// Starts kubectl and leaves it running; read its stdout with [`Running::next_line`].
    pub fn spawn(self) -> Running {
        let mut child = self.command().spawn().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        Running { child, stdout }
    }

    fn command(&self) -> Command {
        let home = self.kubeconfig.parent().unwrap().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let mut command = Command::new(KUBECTL);
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(&self.args)
            .env_remove("KUBECONFIG")
            .env("HOME", &home)
            .env("KUBECACHEDIR", home.join("cache"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }
}

impl Running {
    /// The next line kubectl prints on stdout (10 s timeout); `None` at EOF.
    pub async fn next_line(&mut self) -> Option<String> {
        tokio::time::timeout(Duration::from_secs(10), self.stdout.next_line())
            .await
            .expect("kubectl printed nothing for 10 s")
            .unwrap()
    }

    /// Reads lines until one contains `needle`, and returns it.
    pub async fn line_containing(&mut self, needle: &str) -> String {
        loop {
            match self.next_line().await {
                Some(line) if line.contains(needle) => return line,
                Some(_) => continue,
                None => panic!(
                    "kubectl exited before printing {needle:?}: {}",
                    self.stderr().await
                ),
            }
        }
    }

    /// Kills kubectl and returns whatever it wrote to stderr.
    pub async fn stderr(&mut self) -> String {
        let _ = self.child.start_kill();
        let mut text = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            use tokio::io::AsyncReadExt;
            let _ = stderr.read_to_string(&mut text).await;
        }
        text
    }

    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Runs `kubectl port-forward pod/web-0 :8080` (over the WebSocket tunnel when
/// `websockets` is "true", plain SPDY when "false") and checks that two connections
/// through it each get their bytes echoed.
pub async fn assert_port_forward_echoes(kubeconfig: &Path, websockets: &str) {
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
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
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
