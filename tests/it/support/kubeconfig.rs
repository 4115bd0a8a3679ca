//! Writes kubeconfig files, for kubectl pointed at the test apiserver or at sluice.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// How the kubeconfig's user authenticates.
pub enum Credential<'a> {
    Token(&'a str),
    ClientCert { cert_pem: &'a str, key_pem: &'a str },
}

/// Writes `dir/kubeconfig` for `server` (an https URL) trusting `ca_pem`, with
/// namespace `default`, and returns its path.
pub fn write(dir: &Path, server: &str, ca_pem: &str, credential: Credential<'_>) -> PathBuf {
    let user = match credential {
        Credential::Token(token) => format!("    token: {token}\n"),
        Credential::ClientCert { cert_pem, key_pem } => format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            STANDARD.encode(cert_pem),
            STANDARD.encode(key_pem)
        ),
    };
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: test
  user:
{user}contexts:
- name: test
  context:
    cluster: test
    user: test
    namespace: default
current-context: test
",
        ca = STANDARD.encode(ca_pem)
    );
    let path = dir.join("kubeconfig");
    std::fs::write(&path, text).unwrap();
    path
}
