//! The onboarding commands, run as the real binary: `init`, `agent add/list/remove`,
//! `check-config`, and `serve` refusing a bad setting before it starts.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kube::config::Kubeconfig;

fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A fresh `sluice init` in a temporary directory.
fn initialised() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = sluice(&["init", "--dir", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let config = dir.path().join("sluice.yaml").display().to_string();
    (dir, config)
}

fn add(config: &str, name: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "agent",
        "add",
        name,
        "--config",
        config,
        "--server",
        "https://127.0.0.1:8443",
    ];
    args.extend_from_slice(extra);
    sluice(&args)
}

#[test]
fn init_writes_a_setup_with_private_keys_and_next_steps() {
    let dir = tempfile::tempdir().unwrap();
    let out = sluice(&["init", "--dir", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    for secret in ["ca.key", "tls.key", "credentials.yaml"] {
        assert_eq!(mode(&dir.path().join(secret)), 0o600, "{secret}");
    }
    for public in ["ca.crt", "tls.crt", "sluice.yaml", "policy.yaml"] {
        assert!(dir.path().join(public).is_file(), "{public}");
    }
    let policy = std::fs::read_to_string(dir.path().join("policy.yaml")).unwrap();
    assert!(policy.contains("default: deny") && policy.contains("mode: enforce"));
    let config = std::fs::read_to_string(dir.path().join("sluice.yaml")).unwrap();
    assert!(config.contains("listen: 127.0.0.1:8443"));
    let text = stdout(&out);
    assert!(
        text.contains("agent add") && text.contains("sluice serve"),
        "{text}"
    );
}

#[test]
fn init_refuses_to_overwrite_unless_forced() {
    let (dir, _) = initialised();
    let ca = std::fs::read_to_string(dir.path().join("ca.crt")).unwrap();
    let again = sluice(&["init", "--dir", dir.path().to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("ca.crt: already exists"),
        "{}",
        stderr(&again)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("ca.crt")).unwrap(),
        ca
    );

    let forced = sluice(&["init", "--dir", dir.path().to_str().unwrap(), "--force"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert_ne!(
        std::fs::read_to_string(dir.path().join("ca.crt")).unwrap(),
        ca
    );
    assert_eq!(mode(&dir.path().join("ca.key")), 0o600);
}

#[test]
fn agent_add_prints_a_kubeconfig_and_stores_only_the_hash() {
    let (dir, config) = initialised();
    let out = add(&config, "claude-code", &["--label", "workload=tools"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let kc = Kubeconfig::from_yaml(&stdout(&out)).unwrap();
    assert_eq!(kc.current_context.as_deref(), Some("sluice-claude-code"));
    let ctx = kc.contexts[0].context.clone().unwrap();
    assert_eq!(ctx.namespace.as_deref(), Some("default"));
    let cluster = kc.clusters[0].cluster.clone().unwrap();
    assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:8443"));
    let ca = STANDARD
        .decode(cluster.certificate_authority_data.unwrap())
        .unwrap();
    assert_eq!(ca, std::fs::read(dir.path().join("ca.crt")).unwrap());

    // kube hides tokens (SecretString); read this one from the text.
    let raw: serde_json::Value = serde_saphyr::from_str(&stdout(&out)).unwrap();
    let token = raw["users"][0]["user"]["token"].as_str().unwrap();
    let rest = token.strip_prefix("sluice_").expect("sluice_ prefix");
    assert_eq!(rest.len(), 43);
    let creds_path = dir.path().join("credentials.yaml");
    let creds = std::fs::read_to_string(&creds_path).unwrap();
    assert!(
        creds.contains(&sluice::authn::token_sha256(token)),
        "{creds}"
    );
    assert!(!creds.contains(rest), "the token itself must not be stored");
    assert!(creds.contains("workload: tools"), "{creds}");
    assert_eq!(mode(&creds_path), 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("sluice-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let dup = add(&config, "claude-code", &[]);
    assert_eq!(dup.status.code(), Some(1));
    assert!(stderr(&dup).contains("already exists"), "{}", stderr(&dup));
}

#[test]
fn agent_add_out_writes_a_private_file() {
    let (dir, config) = initialised();
    let path = dir.path().join("runner.kubeconfig");
    let out = add(&config, "runner", &["--out", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "the kubeconfig goes to --out only");
    assert_eq!(mode(&path), 0o600);
    Kubeconfig::read_from(&path).unwrap();
}

#[test]
fn agent_add_cert_issues_a_spiffe_client_certificate() {
    let (dir, config) = initialised();
    let out = add(&config, "bot", &["--cert"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let kc = Kubeconfig::from_yaml(&stdout(&out)).unwrap();
    let user = kc.auth_infos[0].auth_info.clone().unwrap();
    assert!(user.token.is_none());
    let pem = STANDARD
        .decode(user.client_certificate_data.unwrap())
        .unwrap();
    let der = rustls_pemfile::certs(&mut pem.as_slice())
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(
        sluice::tls::spiffe_id(&der).as_deref(),
        Some("spiffe://sluice.local/agent/bot")
    );
    let creds = std::fs::read_to_string(dir.path().join("credentials.yaml")).unwrap();
    assert!(
        creds.contains("spiffe_id: spiffe://sluice.local/agent/bot"),
        "{creds}"
    );
}

#[test]
fn agents_are_listed_and_removed() {
    let (_dir, config) = initialised();
    assert!(
        add(&config, "alpha", &["--label", "team=a"])
            .status
            .success()
    );
    assert!(add(&config, "beta", &["--cert"]).status.success());
    let list = stdout(&sluice(&["agent", "list", "--config", &config]));
    let row = |name: &str| {
        list.lines()
            .find(|l| l.starts_with(name))
            .unwrap()
            .to_owned()
    };
    assert!(
        row("alpha").contains("token") && row("alpha").contains("team=a"),
        "{list}"
    );
    assert!(row("beta").contains("mtls"), "{list}");

    let removed = sluice(&["agent", "remove", "alpha", "--config", &config]);
    assert!(removed.status.success(), "{}", stderr(&removed));
    let list = stdout(&sluice(&["agent", "list", "--config", &config]));
    assert!(!list.contains("alpha") && list.contains("beta"), "{list}");
    let unknown = sluice(&["agent", "remove", "alpha", "--config", &config]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stderr(&unknown).contains("no agent named"),
        "{}",
        stderr(&unknown)
    );
}

#[test]
fn agent_add_warns_when_the_ca_did_not_sign_the_serving_cert() {
    let (_dir, config) = initialised();
    let other = tempfile::tempdir().unwrap();
    assert!(
        sluice(&["init", "--dir", other.path().to_str().unwrap()])
            .status
            .success()
    );
    let ca = other.path().join("ca.crt");
    let out = add(&config, "a", &["--ca", ca.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("did not sign"), "{}", stderr(&out));
    let fine = add(&config, "b", &[]);
    assert!(!stderr(&fine).contains("warning"), "{}", stderr(&fine));
}

#[test]
fn a_bad_agent_name_changes_nothing() {
    let (dir, config) = initialised();
    let before = std::fs::read_to_string(dir.path().join("credentials.yaml")).unwrap();
    let out = add(&config, "Not Valid", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a valid name"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());
    let after = std::fs::read_to_string(dir.path().join("credentials.yaml")).unwrap();
    assert_eq!(before, after);
}

#[test]
fn check_config_accepts_what_init_wrote() {
    let (_dir, config) = initialised();
    assert!(add(&config, "claude-code", &[]).status.success());
    let out = sluice(&["check-config", "--config", &config]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("https://127.0.0.1:8443"), "{text}");
    assert!(text.contains("1 agent(s) [claude-code]"), "{text}");
    assert!(text.contains("current kubeconfig"), "{text}");
}

#[test]
fn check_config_reports_every_broken_file_precisely() {
    let (dir, config) = initialised();
    std::fs::write(
        dir.path().join("credentials.yaml"),
        "agents: [{name: a, token_sha256: abc}]\n",
    )
    .unwrap();
    std::fs::remove_file(dir.path().join("tls.key")).unwrap();
    let out = sluice(&["check-config", "--config", &config]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("credentials.yaml: agents[0].token_sha256: must be 64 hex"),
        "{err}"
    );
    assert!(err.contains("tls.key: cannot read"), "{err}");
}

#[test]
fn check_config_names_an_unknown_key() {
    let (dir, config) = initialised();
    let path = dir.path().join("sluice.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("listen: 127.0.0.1:8443", "lisen: 127.0.0.1:8443"),
    )
    .unwrap();
    let out = sluice(&["check-config", "--config", &config]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("sluice.yaml") && err.contains("lisen"),
        "{err}"
    );
}

#[test]
fn check_config_reports_a_broken_policy_as_the_policy_module_does() {
    let (dir, config) = initialised();
    let broken = "default: maybe\nagents: {x: {rules: [{tiers: {9: allow}}]}}\n";
    std::fs::write(dir.path().join("policy.yaml"), broken).unwrap();
    let out = sluice(&["check-config", "--config", &config]);
    // Whatever the policy module rejects, check-config must reject with the same message.
    match sluice::policy::Policy::load(&dir.path().join("policy.yaml")) {
        Ok(_) => assert!(out.status.success(), "{}", stderr(&out)),
        Err(e) => {
            assert_eq!(out.status.code(), Some(1));
            assert!(stderr(&out).contains(&e.to_string()), "{}", stderr(&out));
            assert!(stderr(&out).contains("policy.yaml"));
        }
    }
}

#[test]
fn concurrent_adds_lose_nothing() {
    let (_dir, config) = initialised();
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let config = config.clone();
            std::thread::spawn(move || add(&config, &format!("agent-{i}"), &[]))
        })
        .collect();
    for h in handles {
        let out = h.join().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let list = stdout(&sluice(&["agent", "list", "--config", &config]));
    for i in 0..8 {
        assert!(
            list.contains(&format!("agent-{i} ")),
            "agent-{i} lost:\n{list}"
        );
    }
}

/// A thread count that is not one stops `serve` before it writes or binds anything, with a
/// message that names the setting.
#[test]
fn serve_refuses_a_bad_thread_count_before_starting() {
    let (dir, config) = initialised();
    for bad in ["two", "0", "100000"] {
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["serve", "--config", &config])
            .env("TOKIO_WORKER_THREADS", bad)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!(
                "TOKIO_WORKER_THREADS={bad:?}: not a number of threads (1 to 1024)"
            )),
            "{}",
            stderr(&out)
        );
        assert!(!stdout(&out).contains("serving agents"));
    }
    // Not UTF-8: refused by name too, not taken as unset.
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--config", &config])
        .env(
            "TOKIO_WORKER_THREADS",
            <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"2\xff"),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("TOKIO_WORKER_THREADS=\"2\u{fffd}\": not a number of threads"),
        "{}",
        stderr(&out)
    );
    let audit = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("audit"))
        .count();
    assert_eq!(audit, 0, "no audit log was started");
}
