//! `sluice init --dir DIR`: a working workstation setup in one step: a CA, a serving
//! certificate it signed, `sluice.yaml`, empty credentials and a deny-by-default policy.
//! Also the certificate and file helpers `agent add` shares (one CA, one way to write).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use sha2::Digest as _;

/// Private keys and credentials: readable by the owner only.
pub(super) const SECRET_MODE: u32 = 0o600;
const PUBLIC_MODE: u32 = 0o644;

/// The config `init` writes. Listens on loopback so a workstation setup is not reachable
/// from the network until someone decides it should be.
const SLUICE_YAML: &str = "\
# sluice configuration, written by `sluice init`. Relative paths are relative to this file.
listen: 127.0.0.1:8443            # where agents connect; 0.0.0.0:8443 to serve other machines
tls:
  cert: tls.crt                   # signed by ca.crt (`agent add` puts ca.crt in kubeconfigs)
  key: tls.key
  # Client certificates signed by ca.crt are accepted but never required: token agents send
  # none. Only a certificate whose spiffe_id is listed in credentials.yaml authenticates
  # (`sluice agent add NAME --cert`). Comment this out to turn mTLS off.
  client_ca: ca.crt
# upstream omitted: in-cluster if available, else the current kubeconfig and its context.
# upstream: {kubeconfig: ~/.kube/config, context: my-cluster}
credentials: credentials.yaml     # agents and approvers; reloaded on change
policy: policy.yaml               # reloaded on change
audit: {path: audit.jsonl, sync: fsync}
admin: {listen: 127.0.0.1:9443}   # approvals API, /healthz, /readyz, /metrics
";

const CREDENTIALS_YAML: &str = "\
# Agents and approvers. Only SHA-256 hashes of tokens are stored here.
# Add agents with `sluice agent add NAME --config sluice.yaml --server URL`.
agents: []
approvers: []
";

const POLICY_YAML: &str = "\
# sluice policy, written by `sluice init`: nothing is allowed until a rule says so.
default: deny                     # action for any request no rule covers
mode: enforce                     # observe: decide and record, but let everything through
protected_namespaces: [kube-system]
agents: {}
# agents:
#   claude-code:
#     rules:                      # the first rule whose namespaces match decides
#       - namespaces: [\"dev-*\", \"staging\"]
#         tiers: {0: allow, 1: allow, 2: escalate, 3: escalate, 4: deny}
#       - namespaces: [\"*\"]     # also matches requests without a namespace
#         tiers: {0: allow}
# runbooks:
#   scale-web:
#     agents: [claude-code]
#     operations:
#       - {verbs: [patch, update], resources: [deployments/scale], namespaces: [\"dev-*\"]}
";

/// Runs `sluice init`; returns the exit code.
pub fn run(dir: &Path, hosts: &[String], force: bool) -> i32 {
    match init(dir, hosts, force) {
        Ok(written) => {
            println!("sluice: wrote");
            for path in &written {
                println!("  {}", path.display());
            }
            let config = dir.join("sluice.yaml");
            println!(
                "\nNext steps:\n  1. sluice agent add NAME --config {c} --server https://127.0.0.1:8443 --out NAME.kubeconfig\n  2. allow NAME something in {p}\n  3. sluice serve --config {c}   (forwards to your current kubeconfig's cluster)\n  4. KUBECONFIG=NAME.kubeconfig kubectl get pods",
                c = config.display(),
                p = dir.join("policy.yaml").display(),
            );
            0
        }
        Err(message) => {
            eprintln!("sluice: {message}");
            1
        }
    }
}

/// Writes the setup; returns the files written. Checks every target before writing any, so
/// a refusal leaves nothing half-made.
fn init(dir: &Path, hosts: &[String], force: bool) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: cannot create: {e}", dir.display()))?;
    let hosts: Vec<String> = if hosts.is_empty() {
        vec!["localhost".into(), "127.0.0.1".into()]
    } else {
        hosts.to_vec()
    };
    let names = [
        "ca.crt",
        "ca.key",
        "tls.crt",
        "tls.key",
        "sluice.yaml",
        "credentials.yaml",
        "policy.yaml",
    ];
    if !force {
        for name in names {
            let path = dir.join(name);
            if path.exists() {
                return Err(format!(
                    "{}: already exists; not overwriting it (--force to replace every file)",
                    path.display()
                ));
            }
        }
    }
    let ca = new_ca()?;
    let (tls_cert, tls_key) = issue_server_cert(&ca, &hosts)?;
    let files = [
        ("ca.crt", ca.cert_pem.as_str(), PUBLIC_MODE),
        ("ca.key", ca.key_pem.as_str(), SECRET_MODE),
        ("tls.crt", tls_cert.as_str(), PUBLIC_MODE),
        ("tls.key", tls_key.as_str(), SECRET_MODE),
        ("sluice.yaml", SLUICE_YAML, PUBLIC_MODE),
        ("credentials.yaml", CREDENTIALS_YAML, SECRET_MODE),
        ("policy.yaml", POLICY_YAML, PUBLIC_MODE),
    ];
    let mut written = Vec::new();
    for (name, contents, mode) in files {
        let path = dir.join(name);
        write_file(&path, contents.as_bytes(), mode, force)?;
        written.push(path);
    }
    Ok(written)
}

/// A CA as PEM text.
pub(super) struct Ca {
    pub cert_pem: String,
    pub key_pem: String,
}

fn new_ca() -> Result<Ca, String> {
    let key = KeyPair::generate().map_err(|e| format!("cannot generate the CA key: {e}"))?;
    let mut params = CertificateParams::default();
    // A per-CA suffix, so two setups' CAs can be told apart by name.
    let id = hex::encode(&sha2::Sha256::digest(key.public_key_raw())[..4]);
    params.distinguished_name = name(&format!("sluice CA {id}"));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    set_validity(&mut params, 10);
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("cannot sign the CA certificate: {e}"))?;
    Ok(Ca {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A serving certificate for `hosts` (IP addresses become IP SANs), signed by `ca`.
fn issue_server_cert(ca: &Ca, hosts: &[String]) -> Result<(String, String), String> {
    let mut params = CertificateParams::new(hosts.to_vec())
        .map_err(|e| format!("--host: not a DNS name or IP address: {e}"))?;
    params.distinguished_name = name("sluice");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    set_validity(&mut params, 3);
    sign(ca, params)
}

/// A client certificate for agent `name`: URI SAN `spiffe://sluice.local/agent/NAME`,
/// ExtendedKeyUsage clientAuth, signed by the CA whose PEM cert and key are given.
pub(super) fn issue_client_cert(ca: &Ca, agent: &str) -> Result<(String, String), String> {
    let uri = spiffe_id(agent);
    let mut params = CertificateParams::default();
    params.distinguished_name = name(agent);
    params.subject_alt_names = vec![SanType::URI(
        uri.as_str()
            .try_into()
            .map_err(|e| format!("{uri}: not a URI: {e}"))?,
    )];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    set_validity(&mut params, 1);
    sign(ca, params)
}

/// The SPIFFE id `agent add --cert` gives agent `name`.
pub(super) fn spiffe_id(agent: &str) -> String {
    format!("spiffe://sluice.local/agent/{agent}")
}

fn sign(ca: &Ca, mut params: CertificateParams) -> Result<(String, String), String> {
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(|e| format!("CA key: {e}"))?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key)
        .map_err(|e| format!("CA certificate: {e}"))?;
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().map_err(|e| format!("cannot generate a key: {e}"))?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|e| format!("cannot sign the certificate: {e}"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// From an hour ago (clocks drift) to `years` (of 365 days) from now.
fn set_validity(params: &mut CertificateParams, years: u64) {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let now = rcgen::date_time_ymd(1970, 1, 1) + since_epoch;
    params.not_before = now - Duration::from_secs(3600);
    params.not_after = now + Duration::from_secs(years * 365 * 24 * 3600);
}

/// Writes `contents` to `path` with `mode`; refuses an existing file unless `overwrite`.
pub(super) fn write_file(
    path: &Path,
    contents: &[u8],
    mode: u32,
    overwrite: bool,
) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("{}: cannot write: {e}", path.display());
    let mut options = OpenOptions::new();
    options.write(true).mode(mode);
    if overwrite {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path).map_err(fail)?;
    // `mode` applies only to a new file (and is masked by the umask): set it explicitly.
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(fail)?;
    file.write_all(contents).map_err(fail)?;
    file.sync_all().map_err(fail)
}

/// Replaces `path` atomically: a temporary file in the same directory, fsync, rename, so a
/// reader (a running sluice reloading it) sees the old file or the new one, never half.
pub(super) fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.sluice-tmp-{}", std::process::id()));
    let result = write_file(&tmp, contents, mode, true).and_then(|()| {
        std::fs::rename(&tmp, path).map_err(|e| format!("{}: cannot replace: {e}", path.display()))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return result;
    }
    // Make the rename itself durable.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
