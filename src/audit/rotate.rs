//! Rotation: when the file reaches `audit.rotate_bytes` it is renamed to
//! `<stem>-<UTC stamp>.jsonl` and the chain continues (seq, prev_hash) in a fresh file at the
//! configured path. Stamps sort by time, so `sluice verify audit-*.jsonl audit.jsonl` passes
//! a series oldest first.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::file::{LogFile, sync_dir};
use super::line::rfc3339;

/// Renames the full file aside, opens a fresh one at the same path, syncs the directory.
/// Returns the rotated file's new name. On failure the writer keeps its current file.
pub(crate) fn rotate(file: &mut LogFile) -> io::Result<PathBuf> {
    file.sync()?;
    let path = file.path().to_path_buf();
    let rotated = free_name(&path);
    std::fs::rename(&path, &rotated)?;
    match LogFile::open(&path, file.faults().clone()) {
        Ok(fresh) => {
            *file = fresh;
            // The switch has happened; a failed directory sync only weakens crash safety.
            if let Err(error) = sync_dir(&path) {
                tracing::warn!(%error, "audit log: directory sync after rotation failed");
            }
            Ok(rotated)
        }
        Err(e) => {
            // Put the old file back so the writer (still holding it) stays at `path`.
            std::fs::rename(&rotated, &path)?;
            Err(e)
        }
    }
}

/// A rotated name that does not exist yet: unique even for two rotations in one
/// microsecond, and still in time order (the stamp moves forward, never a suffix).
fn free_name(path: &Path) -> PathBuf {
    let now = SystemTime::now();
    let mut micros = 0;
    loop {
        let stamp = file_stamp(now + Duration::from_micros(micros));
        let candidate = rotated_name(path, &stamp);
        if !candidate.exists() {
            return candidate;
        }
        micros += 1;
    }
}

/// `YYYYMMDDTHHMMSS.ffffffZ`, a line's timestamp without `-` and `:`: safe in a file name
/// on every platform, and sorts by time.
fn file_stamp(t: SystemTime) -> String {
    rfc3339(t).to_string().replace(['-', ':'], "")
}

fn rotated_name(path: &Path, stamp: &str) -> PathBuf {
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!("{stem}-{stamp}.jsonl"))
}

/// The newest rotated file of `path`'s series, if any: where the chain continues from when
/// the current file is empty (a restart right after rotation).
pub(crate) fn latest_rotated(path: &Path) -> io::Result<Option<PathBuf>> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let prefix = format!("{stem}-");
    let mut newest: Option<String> = None;
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stamp) = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".jsonl"))
        else {
            continue;
        };
        if is_stamp(stamp) && newest.as_deref().is_none_or(|n| name > n) {
            newest = Some(name.to_string());
        }
    }
    Ok(newest.map(|n| dir.join(n)))
}

/// `YYYYMMDDTHHMMSS.ffffffZ`
fn is_stamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 23
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 => c == b'T',
            15 => c == b'.',
            22 => c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::file::Faults;

    #[test]
    fn file_stamp_sorts_and_has_no_colons() {
        let t = std::time::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let t = t + Duration::from_micros(42);
        assert_eq!(file_stamp(t), "20261118T110640.000042Z");
        assert!(is_stamp(&file_stamp(t)));
    }

    #[test]
    fn rotates_to_unique_sorted_names_and_finds_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut file = LogFile::open(&path, Faults::default()).unwrap();
        let mut names = Vec::new();
        for i in 0..3 {
            file.write_all(format!("{i}\n").as_bytes()).unwrap();
            names.push(rotate(&mut file).unwrap());
        }
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "names sort in rotation order");
        assert_eq!(latest_rotated(&path).unwrap().as_ref(), names.last());
        assert_eq!(std::fs::read_to_string(&names[2]).unwrap(), "2\n");
        assert_eq!(file.len().unwrap(), 0);
        assert!(path.exists());
        std::fs::write(dir.path().join("audit-notastamp.jsonl"), "").unwrap();
        assert_eq!(latest_rotated(&path).unwrap().as_ref(), names.last());
    }
}
