//! The log file as the writer sees it: append, sync, cut back. Every operation passes
//! through [`Faults`], so tests (ours and the end-to-end fail-closed ones) can make the
//! disk fail on command and watch sluice refuse requests, then recover.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Switches that make the audit file's operations fail, as a full or broken disk would.
/// Production opens with `Faults::default()` and never flips them.
#[derive(Debug, Clone, Default)]
pub struct Faults(Arc<FaultFlags>);

#[derive(Debug, Default)]
struct FaultFlags {
    writes: AtomicBool,
    syncs: AtomicBool,
    truncates: AtomicBool,
    /// The next sync only: fail after this long (events queue up behind it meanwhile).
    next_sync: Mutex<Option<Duration>>,
}

impl Faults {
    /// Writes put half their bytes on disk, then fail with "no space left" (a torn batch).
    pub fn fail_writes(&self, on: bool) {
        self.0.writes.store(on, Ordering::SeqCst);
    }
    /// `fdatasync` fails with an I/O error (the bytes may already be in the file).
    pub fn fail_syncs(&self, on: bool) {
        self.0.syncs.store(on, Ordering::SeqCst);
    }
    /// The next `fdatasync` alone fails, after taking `delay`, as a slow disk giving up.
    pub fn fail_next_sync(&self, delay: Duration) {
        *self.0.next_sync.lock().unwrap_or_else(|p| p.into_inner()) = Some(delay);
    }
    /// Cutting the file back after a failure fails too.
    pub fn fail_truncates(&self, on: bool) {
        self.0.truncates.store(on, Ordering::SeqCst);
    }
}

/// An open audit file in append mode.
#[derive(Debug)]
pub(crate) struct LogFile {
    file: File,
    path: PathBuf,
    faults: Faults,
}

impl LogFile {
    /// Opens `path` for appending, creating it (and syncing its directory) if needed.
    pub fn open(path: &Path, faults: Faults) -> io::Result<LogFile> {
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        if !existed {
            sync_dir(path)?;
        }
        Ok(LogFile {
            file,
            path: path.to_path_buf(),
            faults,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    pub fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.faults.0.writes.load(Ordering::SeqCst) {
            self.file.write_all(&buf[..buf.len() / 2])?;
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "no space left on device (injected)",
            ));
        }
        self.file.write_all(buf)
    }

    /// `fdatasync`: the data and the length, not the timestamps.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.faults.0.syncs.load(Ordering::SeqCst) {
            return Err(other_injected("fdatasync failed (injected)"));
        }
        let next = self
            .faults
            .0
            .next_sync
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(delay) = next {
            std::thread::sleep(delay);
            return Err(other_injected("fdatasync failed (injected)"));
        }
        self.file.sync_data()
    }

    /// Cuts the file back to `len` bytes and syncs the new length.
    pub fn truncate(&mut self, len: u64) -> io::Result<()> {
        if self.faults.0.truncates.load(Ordering::SeqCst) {
            return Err(other_injected("truncate failed (injected)"));
        }
        self.file.set_len(len)?;
        self.file.sync_data()
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }
}

fn other_injected(msg: &'static str) -> io::Error {
    io::Error::other(msg)
}

/// fsyncs the directory holding `path`, so a created or renamed entry survives a crash.
pub(crate) fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}
