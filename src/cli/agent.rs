//! `sluice agent add | list | remove`: edit the credentials file a config names. A running
//! sluice reloads that file when it changes, so agents come and go without a restart.
//!
//! The file is rewritten whole (temporary file, fsync, rename): entries are kept, comments
//! are not. Only the SHA-256 of a token is stored; the token itself exists once, in the
//! kubeconfig printed for the agent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::TryRngCore;

use super::init::{self, Ca, SECRET_MODE};
use crate::authn::{AgentSpec, Credentials, CredentialsFile, token_sha256};
use crate::config::Config;

/// What `agent add` was asked to do (its command-line arguments).
#[derive(Debug, clap::Args)]
pub struct AddOptions {
    pub name: String,
    #[arg(long, short)]
    pub config: PathBuf,
    /// The URL agents reach sluice at, e.g. https://sluice.sluice.svc
    #[arg(long)]
    pub server: String,
    /// Write the kubeconfig here (mode 0600) instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// key=value (repeatable).
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Issue a client certificate (SPIFFE id spiffe://sluice.local/agent/NAME), not a token.
    #[arg(long)]
    pub cert: bool,
    /// The CA that signed tls.cert [default: ca.crt beside tls.cert].
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// The CA's key, for --cert [default: ca.key beside the CA].
    #[arg(long)]
    pub ca_key: Option<PathBuf>,
}

/// How the agent will prove who it is.
enum Secret {
    Token(String),
    Certificate { cert_pem: String, key_pem: String },
}

/// Runs `agent add`; returns the exit code.
pub fn add(options: &AddOptions) -> i32 {
    report(add_agent(options))
}

/// Runs `agent list`; returns the exit code.
pub fn list(config: &Path) -> i32 {
    report(list_agents(config))
}

/// Runs `agent remove`; returns the exit code.
pub fn remove(name: &str, config: &Path) -> i32 {
    report(remove_agent(name, config))
}

fn report(outcome: Result<(), String>) -> i32 {
    match outcome {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("sluice: {message}");
            1
        }
    }
}

fn add_agent(o: &AddOptions) -> Result<(), String> {
    if !o.server.starts_with("https://") {
        return Err(format!(
            "--server: {:?} is not an https:// URL (agents reach sluice over TLS)",
            o.server
        ));
    }
    let labels = parse_labels(&o.labels)?;
    let config = Config::load(&o.config).map_err(|e| e.to_string())?;
    let _lock = lock_dir_of(&config.credentials)?;
    let mut file = read_credentials(&config.credentials)?;
    if file.agents.iter().any(|a| a.name == o.name) {
        return Err(format!(
            "{}: agent {:?} already exists (`sluice agent remove {}` first to replace it)",
            config.credentials.display(),
            o.name,
            o.name
        ));
    }
    let (ca_path, ca_pem) = kubeconfig_ca(o, &config)?;
    let (secret, spec) = new_agent(o, labels)?;
    file.agents.push(spec);
    // Validate with the same code sluice serve uses, before anything is written.
    let text = render_credentials(&file, &config.credentials)?;
    let secret = match secret {
        Some(secret) => secret,
        None => issue_certificate(&o.name, &ca_path, &ca_pem, o.ca_key.as_deref())?,
    };
    let kubeconfig = render_kubeconfig(&o.name, &o.server, &ca_pem, &secret)?;
    if let Some(out) = &o.out {
        init::write_file(out, kubeconfig.as_bytes(), SECRET_MODE, false)?;
    }
    if let Err(e) = init::write_atomic(&config.credentials, text.as_bytes(), SECRET_MODE) {
        if let Some(out) = &o.out {
            let _ = std::fs::remove_file(out);
        }
        return Err(e);
    }
    report_added(o, &config, &ca_path, &kubeconfig);
    Ok(())
}

/// Says what was written where, and what the operator may still have to do.
fn report_added(o: &AddOptions, config: &Config, ca_path: &Path, kubeconfig: &str) {
    match &o.out {
        Some(out) => eprintln!(
            "sluice: added agent {:?} to {}; its kubeconfig is {} (mode 0600)",
            o.name,
            config.credentials.display(),
            out.display()
        ),
        None => {
            print!("{kubeconfig}");
            eprintln!(
                "sluice: added agent {:?} to {}",
                o.name,
                config.credentials.display()
            );
        }
    }
    if o.cert && config.tls.client_ca.is_none() {
        eprintln!(
            "sluice: note: {} has no tls.client_ca, so sluice does not ask for client certificates; set `client_ca: {}` under tls and restart sluice",
            o.config.display(),
            ca_path.display()
        );
    }
    eprintln!(
        "sluice: a running sluice picks this up without a restart; comments in the credentials file are not kept"
    );
}

/// The CA agents trust sluice's certificate by (`--ca`, else `ca.crt` beside `tls.cert`),
/// read, with a warning if it did not sign `tls.cert`.
fn kubeconfig_ca(o: &AddOptions, config: &Config) -> Result<(PathBuf, String), String> {
    let ca_path = o.ca.clone().unwrap_or_else(|| {
        config
            .tls
            .cert
            .parent()
            .unwrap_or(Path::new("."))
            .join("ca.crt")
    });
    let ca_pem = std::fs::read_to_string(&ca_path).map_err(|e| {
        format!(
            "{}: cannot read the CA for the kubeconfig ({e}); `sluice init` writes ca.crt beside tls.cert, or pass --ca FILE (the CA that signed tls.cert)",
            ca_path.display()
        )
    })?;
    if let Some(problem) = issuer_mismatch(&ca_pem, &config.tls.cert) {
        eprintln!(
            "sluice: warning: {}: {problem}; agents will not trust sluice with this kubeconfig (--ca FILE names the right CA)",
            ca_path.display()
        );
    }
    Ok((ca_path, ca_pem))
}

/// The new agent's entry, and its token (none yet for a certificate agent: the certificate
/// is issued once the entry is known to be valid).
fn new_agent(
    o: &AddOptions,
    labels: BTreeMap<String, String>,
) -> Result<(Option<Secret>, AgentSpec), String> {
    if o.cert {
        let spec = AgentSpec {
            name: o.name.clone(),
            token_sha256: None,
            spiffe_id: Some(init::spiffe_id(&o.name)),
            labels,
        };
        return Ok((None, spec));
    }
    let token = mint_token()?;
    let spec = AgentSpec {
        name: o.name.clone(),
        token_sha256: Some(token_sha256(&token)),
        spiffe_id: None,
        labels,
    };
    Ok((Some(Secret::Token(token)), spec))
}

fn list_agents(config: &Path) -> Result<(), String> {
    let config = Config::load(config).map_err(|e| e.to_string())?;
    let file = read_credentials(&config.credentials)?;
    println!("{:<24} {:<12} LABELS", "NAME", "AUTH");
    for agent in &file.agents {
        let auth = match (&agent.token_sha256, &agent.spiffe_id) {
            (Some(_), Some(_)) => "token+mtls",
            (Some(_), None) => "token",
            _ => "mtls",
        };
        let labels: Vec<String> = agent
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!("{:<24} {:<12} {}", agent.name, auth, labels.join(","));
    }
    Ok(())
}

fn remove_agent(name: &str, config: &Path) -> Result<(), String> {
    let config = Config::load(config).map_err(|e| e.to_string())?;
    let _lock = lock_dir_of(&config.credentials)?;
    let mut file = read_credentials(&config.credentials)?;
    let before = file.agents.len();
    file.agents.retain(|a| a.name != name);
    if file.agents.len() == before {
        return Err(format!(
            "{}: no agent named {name:?}",
            config.credentials.display()
        ));
    }
    let text = render_credentials(&file, &config.credentials)?;
    init::write_atomic(&config.credentials, text.as_bytes(), SECRET_MODE)?;
    eprintln!(
        "sluice: removed agent {name:?} from {}; a running sluice stops accepting it on reload",
        config.credentials.display()
    );
    Ok(())
}

/// Holds an exclusive lock on the credentials file's directory while it is read, changed
/// and replaced, so two `sluice agent` runs cannot lose each other's change. (The file itself
/// cannot carry the lock: it is replaced by rename.) Released when dropped.
fn lock_dir_of(path: &Path) -> Result<std::fs::File, String> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let fail = |e: std::io::Error| format!("{}: cannot lock: {e}", dir.display());
    let handle = std::fs::File::open(dir).map_err(fail)?;
    handle.lock().map_err(fail)?;
    Ok(handle)
}

/// Reads the credentials file, refusing one that `sluice serve` would refuse.
fn read_credentials(path: &Path) -> Result<CredentialsFile, String> {
    Credentials::load(path).map_err(|e| e.to_string())?;
    crate::yaml::read_file(path).map_err(|e| e.to_string())
}

/// Serialises the file and checks it with `authn`'s own validation (names, hashes, ids).
fn render_credentials(file: &CredentialsFile, path: &Path) -> Result<String, String> {
    let body = serde_saphyr::to_string(file)
        .map_err(|e| format!("{}: cannot serialise: {e}", path.display()))?;
    let text = format!(
        "# Agents and approvers (token SHA-256 hashes only). Rewritten by `sluice agent`.\n{body}"
    );
    Credentials::from_yaml(&text, path).map_err(|e| format!("refusing to write it: {e}"))?;
    Ok(text)
}

/// `sluice_` + 43 base64url characters: 256 bits from the operating system's RNG.
fn mint_token() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| format!("the OS random number generator failed: {e}"))?;
    Ok(format!("sluice_{}", URL_SAFE_NO_PAD.encode(bytes)))
}

fn issue_certificate(
    name: &str,
    ca_path: &Path,
    ca_pem: &str,
    ca_key: Option<&Path>,
) -> Result<Secret, String> {
    let key_path = ca_key
        .map(Path::to_owned)
        .unwrap_or_else(|| ca_path.with_file_name("ca.key"));
    let key_pem = std::fs::read_to_string(&key_path).map_err(|e| {
        format!(
            "{}: cannot read the CA key to sign a client certificate ({e}); pass --ca-key FILE",
            key_path.display()
        )
    })?;
    let ca = Ca {
        cert_pem: ca_pem.to_owned(),
        key_pem,
    };
    let (cert_pem, key_pem) = init::issue_client_cert(&ca, name)
        .map_err(|e| format!("{} / {}: {e}", ca_path.display(), key_path.display()))?;
    Ok(Secret::Certificate { cert_pem, key_pem })
}

/// Why `ca_pem` did not sign the serving certificate, if it did not. A warning only: a
/// chain with intermediates is legitimate and not followed here.
fn issuer_mismatch(ca_pem: &str, tls_cert: &Path) -> Option<String> {
    let Some(Ok(ca)) = rustls_pemfile::certs(&mut ca_pem.as_bytes()).next() else {
        return Some("not a PEM certificate".into());
    };
    let serving = crate::tls::load_certs(tls_cert).ok()?;
    let (_, ca) = x509_parser::parse_x509_certificate(ca.as_ref()).ok()?;
    let (_, leaf) = x509_parser::parse_x509_certificate(serving.first()?.as_ref()).ok()?;
    // (x509-parser's `verify` feature is on through rcgen's x509-parser feature.)
    leaf.verify_signature(Some(ca.public_key())).err().map(|_| {
        format!(
            "did not sign {} (its issuer is {}, this CA is {})",
            tls_cert.display(),
            leaf.issuer(),
            ca.subject()
        )
    })
}

fn parse_labels(labels: &[String]) -> Result<BTreeMap<String, String>, String> {
    labels
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(format!("--label: {l:?} is not key=value")),
        })
        .collect()
}

/// A kubeconfig with one cluster (sluice, trusted through its CA), one user and one context
/// `sluice-NAME` in namespace `default`.
fn render_kubeconfig(
    name: &str,
    server: &str,
    ca_pem: &str,
    secret: &Secret,
) -> Result<String, String> {
    let context = format!("sluice-{name}");
    let user = match secret {
        Secret::Token(token) => serde_json::json!({ "token": token }),
        Secret::Certificate { cert_pem, key_pem } => serde_json::json!({
            "client-certificate-data": STANDARD.encode(cert_pem),
            "client-key-data": STANDARD.encode(key_pem),
        }),
    };
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "sluice", "cluster": {
            "server": server,
            "certificate-authority-data": STANDARD.encode(ca_pem),
        }}],
        "users": [{"name": context, "user": user}],
        "contexts": [{"name": context, "context": {
            "cluster": "sluice", "user": context, "namespace": "default",
        }}],
        "current-context": context,
    });
    serde_saphyr::to_string(&kubeconfig).map_err(|e| format!("cannot render the kubeconfig: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_the_documented_shape() {
        let a = mint_token().unwrap();
        let b = mint_token().unwrap();
        assert_ne!(a, b);
        let rest = a.strip_prefix("sluice_").unwrap();
        assert_eq!(rest.len(), 43);
        assert!(
            rest.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }

    #[test]
    fn labels_must_be_key_value() {
        let got = parse_labels(&["a=b".into(), "c=".into()]).unwrap();
        assert_eq!(got.get("a").map(String::as_str), Some("b"));
        assert!(parse_labels(&["nokey".into()]).is_err());
        assert!(parse_labels(&["=v".into()]).is_err());
    }

    #[test]
    fn a_bad_name_is_refused_before_writing() {
        let file = CredentialsFile {
            agents: vec![AgentSpec {
                name: "Bad Name".into(),
                token_sha256: Some(token_sha256("x")),
                spiffe_id: None,
                labels: BTreeMap::new(),
            }],
            approvers: Vec::new(),
        };
        let err = render_credentials(&file, Path::new("c.yaml")).unwrap_err();
        assert!(err.contains("agents[0].name"), "{err}");
    }
}
