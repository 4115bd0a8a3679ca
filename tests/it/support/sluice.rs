//! Runs the real `sluice` binary in front of the test apiserver, with its own CA, a config
//! in a temporary directory, and agents whose tokens the tests know.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::apiserver::ApiServer;
use super::kas::Kas;
use super::kubeconfig::{self, Credential};
use super::pki::{self, TestCa};

/// A policy that lets `claude-code` do anything: for tests of the proxy core.
pub const ALLOW_ALL: &str = "default: deny
agents:
  claude-code:
    rules:
      - namespaces: [\"*\"]
        tiers: {0: allow, 1: allow, 2: allow, 3: allow, 4: allow}
";

/// The token of the default agent `claude-code`.
pub const AGENT_TOKEN: &str = "sluice_test-token-for-claude-code";

/// What sluice forwards to: the test double or the real kube-apiserver.
pub trait Backend {
    /// The server URL, `https://127.0.0.1:PORT`.
    fn url(&self) -> String;
    /// The CA of its serving certificate.
    fn ca_pem(&self) -> String;
    /// The bearer token sluice presents.
    fn token(&self) -> String;
}

impl Backend for ApiServer {
    fn url(&self) -> String {
        ApiServer::url(self)
    }
    fn ca_pem(&self) -> String {
        ApiServer::ca_pem(self)
    }
    fn token(&self) -> String {
        ApiServer::token(self)
    }
}

impl Backend for Kas {
    fn url(&self) -> String {
        Kas::url(self)
    }
    fn ca_pem(&self) -> String {
        Kas::ca_pem(self)
    }
    fn token(&self) -> String {
        Kas::token(self)
    }
}

/// How to start sluice.
pub struct Options {
    pub policy: String,
    /// (name, token) of token agents.
    pub agents: Vec<(String, String)>,
    /// (name, spiffe id) of certificate agents; enables `tls.client_ca`.
    pub cert_agents: Vec<(String, String)>,
    /// (name, token) of approvers.
    pub approvers: Vec<(String, String)>,
    /// Extra top-level YAML appended to sluice.yaml (e.g. `approvals: {timeout: 2s}`).
    pub extra_config: String,
    /// Upstream section override (default: the test apiserver, explicit server/ca/token).
    pub upstream: Option<String>,
    /// PEM of the CA whose client certificates sluice accepts (`tls.client_ca`).
    pub agents_ca: Option<String>,
    pub audit_sync: &'static str,
    /// (soft, hard) open-files limit sluice starts with (through `prlimit`).
    pub open_files: Option<(u64, u64)>,
    /// Environment variables set for sluice, beyond the log filter.
    pub env: Vec<(&'static str, &'static str)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            policy: ALLOW_ALL.into(),
            agents: vec![("claude-code".into(), AGENT_TOKEN.into())],
            cert_agents: Vec::new(),
            approvers: Vec::new(),
            extra_config: String::new(),
            upstream: None,
            agents_ca: None,
            audit_sync: "flush",
            open_files: None,
            env: Vec::new(),
        }
    }
}

impl Options {
    /// The defaults, with `policy` in force.
    pub fn with_policy(policy: &str) -> Options {
        Options {
            policy: policy.into(),
            ..Options::default()
        }
    }

    /// The defaults, forwarding with this `upstream:` section.
    pub fn with_upstream(upstream: String) -> Options {
        Options {
            upstream: Some(upstream),
            ..Options::default()
        }
    }
}

/// A running sluice process; killed when dropped.
pub struct Sluice {
    pub dir: tempfile::TempDir,
    pub addr: SocketAddr,
    /// The admin listener (plain HTTP on loopback).
    pub admin: SocketAddr,
    pub ca: TestCa,
    child: Child,
}

impl Sluice {
    /// sluice in front of `api`, allowing everything for `claude-code`.
    pub async fn start(api: &impl Backend) -> Sluice {
        Sluice::start_with(api, Options::default()).await
    }

    pub async fn start_with(api: &impl Backend, options: Options) -> Sluice {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("sluice test CA");
        write_config(dir.path(), api, &ca, &options);
        let mut command = match options.open_files {
            Some((soft, hard)) => {
                let mut prlimit = Command::new("prlimit");
                prlimit.arg(format!("--nofile={soft}:{hard}")).arg("--");
                prlimit.arg(env!("CARGO_BIN_EXE_sluice"));
                prlimit
            }
            None => Command::new(env!("CARGO_BIN_EXE_sluice")),
        };
        command.envs(options.env.iter().copied());
        let (child, addr, admin) = spawn_command(dir.path(), command).await;
        Sluice {
            dir,
            addr,
            admin,
            ca,
            child,
        }
    }

    /// Starts another sluice process on the same directory (after a stop or crash).
    pub async fn restart(mut self) -> Sluice {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        let (child, addr, admin) = spawn(self.dir.path()).await;
        self.child = child;
        self.addr = addr;
        self.admin = admin;
        self
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A kubeconfig for an agent token, in its own directory.
    pub fn kubeconfig(&self, token: &str) -> PathBuf {
        let dir = self.dir.path().join(format!("kc-{}", short_hash(token)));
        std::fs::create_dir_all(&dir).unwrap();
        kubeconfig::write(
            &dir,
            &self.url(),
            &self.ca.cert_pem(),
            Credential::Token(token),
        )
    }

    /// The default agent's kubeconfig.
    pub fn agent_kubeconfig(&self) -> PathBuf {
        self.kubeconfig(AGENT_TOKEN)
    }

    /// A kubeconfig that presents a client certificate issued by `ca`.
    pub fn cert_kubeconfig(&self, ca: &TestCa, spiffe: &str) -> PathBuf {
        let (cert, key) = ca.issue_client("agent", Some(spiffe));
        let dir = self
            .dir
            .path()
            .join(format!("kc-cert-{}", short_hash(spiffe)));
        std::fs::create_dir_all(&dir).unwrap();
        kubeconfig::write(
            &dir,
            &self.url(),
            &self.ca.cert_pem(),
            Credential::ClientCert {
                cert_pem: &cert,
                key_pem: &key,
            },
        )
    }

    /// Every line of the audit log, parsed.
    pub fn audit_events(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.path("audit.jsonl")).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Waits until the audit log has an event matching `pred` (complete events are written
    /// after the response, so a test may see the response first).
    pub async fn wait_for_event(
        &self,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        for _ in 0..200 {
            if let Some(e) = self.audit_events().into_iter().find(|e| pred(e)) {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "no audit event {what}; audit:\n{}\nlog:\n{}",
            std::fs::read_to_string(self.path("audit.jsonl")).unwrap_or_default(),
            self.log()
        );
    }

    /// sluice's own log (stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("sluice.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    /// SIGTERM, then wait for the exit status.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .await;
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("sluice did not stop within 30s of SIGTERM")
            .unwrap()
    }

    /// kill -9.
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

fn short_hash(text: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(text.as_bytes())[..6])
}

fn write_config(dir: &Path, api: &impl Backend, ca: &TestCa, options: &Options) {
    let server = ca.issue_server(&["localhost", "127.0.0.1"]);
    pki::write_pair(dir, "tls", &server);
    pki::write_file(dir, "upstream-ca.crt", &api.ca_pem());
    pki::write_file(dir, "upstream-token", &api.token());
    let mut creds = String::from("agents:\n");
    for (name, token) in &options.agents {
        creds += &format!(
            "  - {{name: {name}, token_sha256: \"{}\"}}\n",
            sluice::authn::token_sha256(token)
        );
    }
    for (name, spiffe) in &options.cert_agents {
        creds += &format!("  - {{name: {name}, spiffe_id: \"{spiffe}\"}}\n");
    }
    creds += "approvers:\n";
    for (name, token) in &options.approvers {
        creds += &format!(
            "  - {{name: {name}, token_sha256: \"{}\"}}\n",
            sluice::authn::token_sha256(token)
        );
    }
    if options.approvers.is_empty() {
        creds = creds.replace("approvers:\n", "approvers: []\n");
    }
    pki::write_file(dir, "credentials.yaml", &creds);
    pki::write_file(dir, "policy.yaml", &options.policy);
    let client_ca = match &options.agents_ca {
        Some(pem) => {
            pki::write_file(dir, "agents-ca.crt", pem);
            ", client_ca: agents-ca.crt"
        }
        None => "",
    };
    let upstream = options.upstream.clone().unwrap_or_else(|| {
        format!(
            "upstream: {{server: \"{}\", ca: upstream-ca.crt, token_file: upstream-token}}\n",
            api.url()
        )
    });
    let config = format!(
        "listen: 127.0.0.1:0
tls: {{cert: tls.crt, key: tls.key{client_ca}}}
{upstream}credentials: credentials.yaml
policy: policy.yaml
audit: {{path: audit.jsonl, sync: {sync}}}
admin: {{listen: 127.0.0.1:0}}
{extra}
",
        sync = options.audit_sync,
        extra = options.extra_config,
    );
    pki::write_file(dir, "sluice.yaml", &config);
}

/// Starts the binary and waits for the line that says it serves.
pub async fn spawn(dir: &Path) -> (Child, SocketAddr, SocketAddr) {
    spawn_command(dir, Command::new(env!("CARGO_BIN_EXE_sluice"))).await
}

/// [`spawn`], with `command` running the binary (or a wrapper that runs it).
async fn spawn_command(dir: &Path, mut command: Command) -> (Child, SocketAddr, SocketAddr) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("sluice.log"))
        .unwrap();
    let mut child = command
        .args(["serve", "--config"])
        .arg(dir.join("sluice.yaml"))
        .env("SLUICE_LOG", "sluice=debug,info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", command.as_std().get_program()));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(20), async {
        let mut admin = None;
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line.strip_prefix("sluice: admin on http://") {
                admin = Some(url.trim().parse::<SocketAddr>().unwrap());
            }
            if let Some(url) = line.strip_prefix("sluice: serving agents on https://") {
                return Some((url.trim().parse::<SocketAddr>().unwrap(), admin.unwrap()));
            }
        }
        None
    })
    .await;
    let (addr, admin) = match ready {
        Ok(Some(pair)) => pair,
        _ => {
            let _ = child.start_kill();
            panic!(
                "sluice did not start; log:\n{}",
                std::fs::read_to_string(dir.join("sluice.log")).unwrap_or_default()
            );
        }
    };
    // Keep draining stdout so the pipe never fills.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr, admin)
}
