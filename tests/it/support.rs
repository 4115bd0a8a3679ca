//! Test support: a test PKI, a kube-apiserver test double, and a kubectl runner.
//!
//! Not every test module uses every helper.
#![allow(dead_code)]

pub mod apiserver;
mod body;
pub mod certs;
pub mod client;
mod discovery;
mod exec;
mod json_patch;
pub mod kas;
pub mod kubeconfig;
pub mod kubectl;
mod objects;
pub mod pki;
mod portforward;
mod protobuf;
pub mod raw;
mod remotecommand;
pub mod rogue;
pub mod rss;
pub mod sluice;
mod spdy;
mod spdy_dictionary;
mod store;
mod table;
mod upgrade;
mod watch;
mod websocket;

pub use apiserver::{ApiServer, RecordedRequest};
pub use kubectl::{Kubectl, kubectl};
pub use pki::TestCa;

#[test]
fn test_ca_issues_leaf_certificates() {
    let ca = TestCa::new("test CA");
    let (server, _) = ca.issue_server(&["localhost", "127.0.0.1"]);
    let (client, key) = ca.issue_client("agent", Some("spiffe://sluice.local/agent/claude-code"));
    assert!(server.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(client.starts_with("-----BEGIN CERTIFICATE-----") && key.contains("PRIVATE KEY"));
}
