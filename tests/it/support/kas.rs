//! A private etcd and a real kube-apiserver (v1.36, `../shared/kas/`) for the test run.
//!
//! Started once per test binary, on first use, and shared by every test that asks for it
//! (each test works in its own namespace). Both processes are children of one keeper thread
//! that lives as long as the test binary, and they are started with the parent-death signal
//! set to SIGKILL: however the binary ends (all tests done, a panic, kill -9), the kernel
//! stops them, so no etcd or apiserver outlives the suite.
//!
//! The apiserver binary is found through `SLUICE_TEST_KUBE_APISERVER` (`.ci/run` unpacks it
//! and sets it) and etcd on `PATH`. Without the variable, [`kas`] prints one line saying the
//! test did not run and why, and returns `None`; with it, anything missing is a failure.

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::kubeconfig::{self, Credential};
use super::kubectl::Kubectl;
use super::pki::{self, TestCa};

/// The variable that names the kube-apiserver binary.
pub const ENV: &str = "SLUICE_TEST_KUBE_APISERVER";

/// The static token of `admin` (group `system:masters`): the tests' own view of the cluster.
pub const ADMIN_TOKEN: &str = "kas-admin-token";

/// The static token of the user `sluice`, the identity sluice forwards under. It is bound to
/// the ClusterRoles shipped in `deploy/` (the ceiling, and impersonation of the test agent),
/// plus writing Secrets, which the shipped ceiling leaves out on purpose but tests need.
pub const SLUICE_TOKEN: &str = "kas-sluice-token";

const READY_WITHIN: Duration = Duration::from_secs(90);

/// The running apiserver.
pub struct Kas {
    dir: PathBuf,
    url: String,
    ca_pem: String,
    admin_kubeconfig: PathBuf,
}

static KAS: OnceLock<Result<Kas, String>> = OnceLock::new();

/// The shared apiserver, started on first use; `None` (after one line on stderr) when this
/// machine has none configured. `test` names the caller in that line.
pub fn kas(test: &str) -> Option<&'static Kas> {
    let Some(binary) = std::env::var_os(ENV) else {
        // Straight to stderr: the test harness captures only print!/eprint!.
        let _ = writeln!(
            std::io::stderr(),
            "{test}: did not run: {ENV} is not set (bash .ci/run unpacks ../shared/kas and sets it)"
        );
        return None;
    };
    let started = KAS.get_or_init(|| start(PathBuf::from(binary)));
    match started {
        Ok(kas) => Some(kas),
        Err(why) => panic!("the real kube-apiserver did not start: {why}"),
    }
}

impl Kas {
    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The CA that signed the apiserver's serving certificate.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// The token sluice forwards with.
    pub fn token(&self) -> String {
        SLUICE_TOKEN.into()
    }

    /// A kubeconfig straight to the apiserver as `admin`.
    pub fn admin_kubeconfig(&self) -> &Path {
        &self.admin_kubeconfig
    }

    /// `kubectl ARGS...` as admin, straight to the apiserver; panics unless it succeeds.
    pub async fn admin(&self, args: &[&str]) -> String {
        self.admin_stdin(args, "").await
    }

    /// `kubectl ARGS...` as admin, with `stdin` (if not empty) fed to it (`apply -f -`).
    pub async fn admin_stdin(&self, args: &[&str], stdin: &str) -> String {
        let out = with_stdin(Kubectl::new(&self.admin_kubeconfig).args(args), stdin)
            .run()
            .await;
        assert!(
            out.status.success(),
            "admin kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Whether `kind/name` exists in `namespace`, asked of the apiserver directly.
    pub async fn exists(&self, namespace: &str, object: &str) -> bool {
        let out = Kubectl::new(&self.admin_kubeconfig)
            .args(&["-n", namespace, "get", object, "-o", "name"])
            .run()
            .await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            return true;
        }
        assert!(
            stderr.contains("NotFound"),
            "cannot tell whether {namespace}/{object} exists: {stderr}"
        );
        false
    }

    /// An object as JSON, read directly.
    /// `object` may carry more arguments after a space (`deployment/x --show-managed-fields`).
    pub async fn get_json(&self, namespace: &str, object: &str) -> Value {
        let mut args = vec!["-n", namespace, "get", "-o", "json"];
        args.extend(object.split(' '));
        let text = self.admin(&args).await;
        serde_json::from_str(&text).unwrap()
    }

    /// Creates namespace `name` and its `default` ServiceAccount (no controller-manager runs
    /// to make it). Each test uses namespaces of its own.
    pub async fn namespace(&self, name: &str) -> String {
        self.admin(&["create", "namespace", name]).await;
        self.admin(&["-n", name, "create", "serviceaccount", "default"])
            .await;
        name.to_owned()
    }

    /// The apiserver's own audit events (all stages) whose `auditID` is one of `ids`,
    /// waiting up to 10 s until each id has a `ResponseComplete` event (the apiserver writes
    /// it as the response ends, so it may land after the client has read it).
    pub async fn audit_events_for(&self, ids: &[String]) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let events: Vec<Value> = self
                .audit_events()
                .into_iter()
                .filter(|e| ids.iter().any(|id| e["auditID"] == id.as_str()))
                .collect();
            let complete = |id: &String| {
                events
                    .iter()
                    .any(|e| e["auditID"] == id.as_str() && e["stage"] == "ResponseComplete")
            };
            if ids.iter().all(complete) || Instant::now() > deadline {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every event of the apiserver's audit log so far.
    pub fn audit_events(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.dir.join("audit.log")).unwrap_or_default();
        // The last line may be half written.
        text.lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

/// `command` with `stdin` fed to it, unless `stdin` is empty.
pub fn with_stdin(command: Kubectl, stdin: &str) -> Kubectl {
    if stdin.is_empty() {
        command
    } else {
        command.stdin(stdin.as_bytes())
    }
}

/// Starts etcd and the apiserver from a keeper thread that never returns, waits until the
/// apiserver is ready, and applies the RBAC the tests run under.
fn start(binary: PathBuf) -> Result<Kas, String> {
    if !binary.is_file() {
        return Err(format!("{ENV}={} is not a file", binary.display()));
    }
    let dir = work_dir()?;
    let (tx, rx) = mpsc::channel();
    let keeper_dir = dir.clone();
    std::thread::Builder::new()
        .name("kas-keeper".into())
        .spawn(move || {
            let mut children = Vec::new();
            let result = launch(&binary, &keeper_dir, &mut children);
            if result.is_err() {
                for child in &mut children {
                    let _ = child.kill();
                }
            }
            let _ = tx.send(result);
            // The children's parent-death signal is tied to this thread: it must outlive
            // every test, so it parks until the process ends.
            loop {
                std::thread::park();
            }
        })
        .map_err(|e| format!("cannot start the keeper thread: {e}"))?;
    let kas = rx
        .recv()
        .map_err(|_| "the keeper thread died".to_string())??;
    apply_rbac(&kas)?;
    Ok(kas)
}

/// A fresh directory for this binary's cluster, after removing those of test binaries
/// that have ended. On tmpfs when there is one: etcd fsyncs every write.
fn work_dir() -> Result<PathBuf, String> {
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    if let Ok(entries) = std::fs::read_dir(&base) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("sluice-kas-")
                && !Path::new("/proc").join(pid).exists()
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = base.join(format!("sluice-kas-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

fn launch(binary: &Path, dir: &Path, children: &mut Vec<Child>) -> Result<Kas, String> {
    let ca = TestCa::new("kube-apiserver test CA");
    pki::write_pair(
        dir,
        "serving",
        &ca.issue_server(&["localhost", "127.0.0.1"]),
    );
    let sa_key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    pki::write_file(dir, "sa.key", &sa_key.serialize_pem());
    pki::write_file(dir, "sa.pub", &sa_key.public_key_pem());
    pki::write_file(
        dir,
        "tokens.csv",
        &format!(
            "{ADMIN_TOKEN},admin,uid-admin,\"system:masters\"\n{SLUICE_TOKEN},sluice,uid-sluice\n"
        ),
    );
    pki::write_file(
        dir,
        "audit-policy.yaml",
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n",
    );
    let [etcd_port, peer_port, api_port] = free_ports()?;
    children.push(spawn_etcd(dir, etcd_port, peer_port)?);
    children.push(spawn_apiserver(binary, dir, etcd_port, api_port)?);
    let url = format!("https://127.0.0.1:{api_port}");
    let admin_dir = dir.join("admin");
    std::fs::create_dir_all(&admin_dir).map_err(|e| e.to_string())?;
    let admin_kubeconfig = kubeconfig::write(
        &admin_dir,
        &url,
        &ca.cert_pem(),
        Credential::Token(ADMIN_TOKEN),
    );
    wait_ready(&admin_kubeconfig, dir, children)?;
    Ok(Kas {
        dir: dir.to_owned(),
        url,
        ca_pem: ca.cert_pem(),
        admin_kubeconfig,
    })
}

/// Three loopback ports nothing listens on (bound, then released for the servers).
fn free_ports() -> Result<[u16; 3], String> {
    let bind = || TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string());
    let listeners = [bind()?, bind()?, bind()?];
    let port = |l: &TcpListener| l.local_addr().map(|a| a.port()).map_err(|e| e.to_string());
    Ok([
        port(&listeners[0])?,
        port(&listeners[1])?,
        port(&listeners[2])?,
    ])
}

fn spawn_etcd(dir: &Path, port: u16, peer: u16) -> Result<Child, String> {
    let client = format!("http://127.0.0.1:{port}");
    let peer = format!("http://127.0.0.1:{peer}");
    let mut command = Command::new("etcd");
    command
        .args(["--name", "t", "--data-dir"])
        .arg(dir.join("etcd"))
        .args(["--listen-client-urls", &client])
        .args(["--advertise-client-urls", &client])
        .args(["--listen-peer-urls", &peer])
        .args(["--initial-advertise-peer-urls", &peer])
        .args(["--initial-cluster", &format!("t={peer}")]);
    spawn_logged(command, &dir.join("etcd.log"))
        .map_err(|e| format!("cannot run etcd (Debian package etcd-server) from PATH: {e}"))
}

fn spawn_apiserver(binary: &Path, dir: &Path, etcd: u16, port: u16) -> Result<Child, String> {
    let file = |name: &str| dir.join(name).display().to_string();
    let mut command = Command::new(binary);
    command.args([
        format!("--etcd-servers=http://127.0.0.1:{etcd}"),
        "--bind-address=127.0.0.1".into(),
        "--advertise-address=127.0.0.1".into(),
        format!("--secure-port={port}"),
        format!("--tls-cert-file={}", file("serving.crt")),
        format!("--tls-private-key-file={}", file("serving.key")),
        format!("--token-auth-file={}", file("tokens.csv")),
        "--authorization-mode=Node,RBAC".into(),
        "--anonymous-auth=false".into(),
        "--disable-admission-plugins=ServiceAccount".into(),
        "--allow-privileged=true".into(),
        "--endpoint-reconciler-type=none".into(),
        "--service-cluster-ip-range=10.0.0.0/24".into(),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
        format!("--service-account-key-file={}", file("sa.pub")),
        format!("--service-account-signing-key-file={}", file("sa.key")),
        format!("--audit-policy-file={}", file("audit-policy.yaml")),
        format!("--audit-log-path={}", file("audit.log")),
        "--audit-log-format=json".into(),
        "--audit-log-mode=blocking".into(),
        "--profiling=false".into(),
    ]);
    spawn_logged(command, &dir.join("kube-apiserver.log"))
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))
}

/// Spawns with output to `log` and SIGKILL on the death of the spawning thread.
fn spawn_logged(mut command: Command, log: &Path) -> std::io::Result<Child> {
    let out = std::fs::File::create(log)?;
    command
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    // SAFETY: runs in the forked child before exec; prctl(PR_SET_PDEATHSIG) is
    // async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                .map_err(std::io::Error::from)
        });
    }
    command.spawn()
}

/// Polls `/readyz` as admin until it answers ok, failing early if a process exits.
fn wait_ready(kubeconfig: &Path, dir: &Path, children: &mut [Child]) -> Result<(), String> {
    let deadline = Instant::now() + READY_WITHIN;
    loop {
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["get", "--raw", "/readyz"])
            .env("HOME", dir.join("admin"))
            .output()
            .map_err(|e| format!("cannot run kubectl: {e}"))?;
        if out.status.success() && out.stdout.starts_with(b"ok") {
            return Ok(());
        }
        for (child, log) in children.iter_mut().zip(["etcd.log", "kube-apiserver.log"]) {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "{log}: exited ({status}):\n{}",
                    tail(&dir.join(log))
                ));
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "not ready within {READY_WITHIN:?}:\n{}",
                tail(&dir.join("kube-apiserver.log"))
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// The shipped RBAC (`deploy/rbac.yaml`, `deploy/impersonate/rbac.yaml`), bound to the user
/// `sluice`, plus writing Secrets.
fn apply_rbac(kas: &Kas) -> Result<(), String> {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let test_rbac = pki::write_file(&kas.dir, "test-rbac.yaml", TEST_RBAC);
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kas.admin_kubeconfig)
        .arg("apply")
        .arg("-f")
        .arg(deploy.join("rbac.yaml"))
        .arg("-f")
        .arg(deploy.join("impersonate/rbac.yaml"))
        .arg("-f")
        .arg(test_rbac)
        .env("HOME", kas.dir.join("admin"))
        .output()
        .map_err(|e| format!("cannot run kubectl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "applying RBAC: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

const TEST_RBAC: &str = "apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: test-sluice-ceiling}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: sluice-ceiling}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: sluice}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: test-sluice-impersonate}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: sluice-impersonate}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: sluice}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: test-secret-writer}
rules:
  - {apiGroups: [\"\"], resources: [secrets], verbs: [create, update, patch, delete]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: test-secret-writer}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: test-secret-writer}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: sluice}]
";
