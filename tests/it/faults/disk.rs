//! The disk under the audit log fills up while sluice serves: requests are refused with
//! 503 and reach nothing; once space is back they flow again and the log verifies.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::eventually;
use crate::support::ApiServer;
use crate::support::raw::{self, exchange, status};
use crate::support::sluice::{Options, Sluice};

const PODS: &str = "/api/v1/namespaces/default/pods";

/// A small tmpfs, unmounted when dropped. Needs root (CAP_SYS_ADMIN).
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a filler file until the disk is full.
    fn fill(&self) {
        let mut filler = std::fs::File::create(self.path("filler")).unwrap();
        let block = [0u8; 1024];
        while filler.write_all(&block).is_ok() {}
    }

    fn free(&self) {
        std::fs::remove_file(self.path("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn verify(path: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("verify")
        .arg(path)
        .output()
        .unwrap()
}

/// Starts sluice with its audit log moved onto `log` (on the small disk).
async fn start_logging_to(api: &ApiServer, log: &Path) -> Sluice {
    let sluice = Sluice::start_with(
        api,
        Options {
            audit_sync: "fsync",
            ..Options::default()
        },
    )
    .await;
    let config = std::fs::read_to_string(sluice.path("sluice.yaml")).unwrap();
    let moved = config.replace("path: audit.jsonl", &format!("path: \"{}\"", log.display()));
    assert_ne!(config, moved);
    std::fs::write(sluice.path("sluice.yaml"), moved).unwrap();
    sluice.restart().await
}

/// With the disk full, requests are refused with 503 and none of them reaches the upstream.
async fn assert_refused_and_not_forwarded(api: &ApiServer, sluice: &Sluice) {
    // The log's last page may still hold a few lines, and a batch that failed and was cut
    // back leaves its room behind: a request whose decision still fits is durable and is
    // served. Once nothing fits, everything is refused, and no refused request reaches the
    // upstream: wait for 20 refusals in a row.
    let mut refused_in_a_row = 0;
    let mut forwarded = api.requests().len();
    for _ in 0..200 {
        let text = exchange(sluice, &raw::get(PODS)).await;
        match status(&text) {
            503 => {
                assert!(text.contains("audit log"), "{text}");
                assert_eq!(
                    api.requests().len(),
                    forwarded,
                    "forwarded without a durable decision"
                );
                refused_in_a_row += 1;
                if refused_in_a_row == 20 {
                    break;
                }
            }
            200 => {
                refused_in_a_row = 0;
                forwarded = api.requests().len();
            }
            _ => panic!("{text}"),
        }
    }
    assert_eq!(
        refused_in_a_row, 20,
        "a full disk never refused 20 requests in a row"
    );
}

/// The log verifies, and every request the upstream saw has its decision in it.
fn assert_the_log_verifies_and_holds_every_decision(api: &ApiServer, log: &Path) {
    let out = verify(log);
    assert!(
        out.status.success(),
        "verify after ENOSPC: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(log).unwrap();
    for r in api.requests() {
        let id = r.header("x-request-id").unwrap();
        assert!(
            text.contains(&format!("\"request_id\":\"{id}\"")),
            "{id} not in the log"
        );
    }
}

#[tokio::test]
async fn a_full_disk_refuses_everything_and_forwards_nothing_until_space_returns() {
    let Some(disk) = SmallDisk::mount("256k") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let api = ApiServer::start().await;
    let log = disk.path("audit.jsonl");
    let sluice = start_logging_to(&api, &log).await;
    assert_eq!(status(&exchange(&sluice, &raw::get(PODS)).await), 200);

    disk.fill();
    assert_refused_and_not_forwarded(&api, &sluice).await;

    disk.free();
    eventually("requests flow again", &sluice, || async {
        status(&exchange(&sluice, &raw::get(PODS)).await) == 200
    })
    .await;
    assert_the_log_verifies_and_holds_every_decision(&api, &log);
}
