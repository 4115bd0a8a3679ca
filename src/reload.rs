//! Hot reload of files that change while sluice runs (policy, credentials, the upstream
//! token). A watcher polls the file's metadata (cheap, and it sees Kubernetes' ConfigMap and
//! projected-token symlink swaps that inotify on the file itself would miss); when the
//! contents' SHA-256 changes it hands the new bytes to the owner, which parses them and
//! swaps its value atomically — or keeps the last good one and says why.
//!
//! A file that reads as empty (or only whitespace) is not handed over: writing a file in
//! place truncates it first, and a watcher that looks in between would otherwise swap an
//! empty policy (deny everything) or an empty credentials file (no agents) in for the real
//! one. It is reported as unreadable; to deny everything, say so (`default: deny`).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

/// How often watched files are checked.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Re-read the contents at least this often even if the metadata looks unchanged (a file
/// rewritten in place within the filesystem's timestamp granularity).
const REHASH_EVERY: u32 = 20;

/// The SHA-256 of `bytes`, lowercase hex (as recorded in the audit log).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What a watcher reports to its owner.
pub enum Change<'a> {
    /// New contents (different from the last seen).
    Contents { bytes: &'a [u8], sha256: String },
    /// The file can no longer be read; the owner keeps its last good value.
    Unreadable(std::io::Error),
}

/// Watches `path`, calling `on_change` for each new version after `initial_sha256`.
pub fn watch<F>(path: PathBuf, initial_sha256: String, mut on_change: F) -> JoinHandle<()>
where
    F: FnMut(Change<'_>) + Send + 'static,
{
    tokio::spawn(async move {
        let mut last_hash = initial_sha256;
        let mut last_meta = metadata_key(&path);
        let mut reported: Option<std::io::ErrorKind> = None;
        let mut ticks = 0u32;
        let mut interval = tokio::time::interval(POLL_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            ticks = ticks.wrapping_add(1);
            let meta = metadata_key(&path);
            // The first tick always reads: the file may have changed between the owner's
            // load and this task's first look at the metadata.
            if ticks > 1 && meta == last_meta && !ticks.is_multiple_of(REHASH_EVERY) {
                continue;
            }
            last_meta = meta;
            let read = match tokio::fs::read(&path).await {
                Ok(bytes) if bytes.trim_ascii().is_empty() => Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "the file is empty (a write in progress?)",
                )),
                read => read,
            };
            match read {
                Ok(bytes) => {
                    reported = None;
                    let sha256 = sha256_hex(&bytes);
                    if sha256 != last_hash {
                        last_hash = sha256.clone();
                        on_change(Change::Contents {
                            bytes: &bytes,
                            sha256,
                        });
                    }
                }
                // Each kind of trouble is reported once while it lasts; a different one (the
                // empty file is then deleted, say) is news.
                Err(err) if reported != Some(err.kind()) => {
                    reported = Some(err.kind());
                    on_change(Change::Unreadable(err));
                }
                Err(_) => {}
            }
        }
    })
}

type MetaKey = Option<(Option<SystemTime>, u64, u64)>;

fn metadata_key(path: &Path) -> MetaKey {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok(), meta.len(), meta.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    /// The next report, or a failure (not a hang) if none comes within a few polls.
    async fn next(rx: &mut mpsc::UnboundedReceiver<String>) -> String {
        tokio::time::timeout(POLL_INTERVAL * 4, rx.recv())
            .await
            .expect("no report within 4 polls")
            .expect("the watcher stopped")
    }

    #[tokio::test(start_paused = true)]
    async fn reports_new_contents_once_and_unreadable_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.yaml");
        std::fs::write(&path, "a").unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let _task = watch(path.clone(), sha256_hex(b"a"), move |change| {
            let _ = tx.send(match change {
                Change::Contents { bytes, .. } => String::from_utf8_lossy(bytes).into_owned(),
                Change::Unreadable(_) => "<unreadable>".into(),
            });
        });
        std::fs::write(&path, "bb").unwrap();
        assert_eq!(next(&mut rx).await, "bb");
        // Truncated, as a write in place does first: not handed over as new contents.
        std::fs::write(&path, " \n").unwrap();
        assert_eq!(next(&mut rx).await, "<unreadable>");
        // Deleted while still empty: a different trouble, reported too.
        std::fs::remove_file(&path).unwrap();
        assert_eq!(next(&mut rx).await, "<unreadable>");
        // The write completes: the same contents as before, so nothing new to report.
        std::fs::write(&path, "bb").unwrap();
        tokio::time::sleep(POLL_INTERVAL * 2).await;
        std::fs::remove_file(&path).unwrap();
        assert_eq!(next(&mut rx).await, "<unreadable>");
        std::fs::write(&path, "ccc").unwrap();
        assert_eq!(next(&mut rx).await, "ccc");
        // Rewriting the same contents reports nothing.
        std::fs::write(&path, "ccc").unwrap();
        tokio::time::sleep(POLL_INTERVAL * (REHASH_EVERY + 2)).await;
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn sees_a_change_made_before_the_first_look() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.yaml");
        std::fs::write(&path, "a").unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let _task = watch(path.clone(), sha256_hex(b"a"), move |change| {
            if let Change::Contents { bytes, .. } = change {
                let _ = tx.send(bytes.to_vec());
            }
        });
        // Changed after the owner loaded it, before the watcher task ever ran.
        std::fs::write(&path, "b").unwrap();
        let seen = tokio::time::timeout(POLL_INTERVAL * 2, rx.recv()).await;
        assert_eq!(seen.unwrap().unwrap(), b"b");
    }
}
