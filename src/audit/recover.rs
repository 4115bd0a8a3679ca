//! Resuming a log on start: find the last complete line, check its own hash, and continue
//! the chain from its seq and hash. A torn tail (a crash mid-write: never acknowledged) is
//! cut off and reported, so the writer can record a `recovery` event before anything else.

use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use super::AuditError;
use super::check::check_line;
use super::file::{Faults, LogFile};
use super::line::ChainHead;
use super::rotate::latest_rotated;

/// Where the chain continues, and what had to be cut to get there.
#[derive(Debug)]
pub(crate) struct Resumed {
    pub file: LogFile,
    pub head: ChainHead,
    /// The file's length once any torn tail is gone.
    pub offset: u64,
    pub cut: Option<Cut>,
}

/// A tail cut off on start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cut {
    pub bytes_dropped: u64,
    pub reason: &'static str,
}

/// Opens `path` and resumes its chain; an empty or new file continues the newest rotated
/// file of the series, or starts a new chain.
pub(crate) fn resume(path: &Path, faults: Faults) -> Result<Resumed, AuditError> {
    let io_err = |source| AuditError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = LogFile::open(path, faults).map_err(io_err)?;
    let len = file.len().map_err(io_err)?;
    let tail = read_tail(file.file(), len).map_err(io_err)?;
    let found =
        find_resume_point(&tail.bytes, tail.base).map_err(|detail| AuditError::Corrupt {
            path: path.to_path_buf(),
            detail,
        })?;
    let cut = (found.keep < len).then(|| Cut {
        bytes_dropped: len - found.keep,
        reason: found.reason,
    });
    if cut.is_some() {
        file.truncate(found.keep).map_err(io_err)?;
    }
    let head = match found.head {
        Some(head) => head,
        None => resume_from_rotated(path)?,
    };
    Ok(Resumed {
        file,
        head,
        offset: found.keep,
        cut,
    })
}

fn resume_from_rotated(path: &Path) -> Result<ChainHead, AuditError> {
    let Some(prev) = latest_rotated(path).map_err(|source| AuditError::Io {
        path: path.to_path_buf(),
        source,
    })?
    else {
        return Ok(ChainHead::GENESIS);
    };
    let corrupt = |detail: String| AuditError::Corrupt {
        path: prev.clone(),
        detail,
    };
    let io_err = |source| AuditError::Io {
        path: prev.clone(),
        source,
    };
    let file = std::fs::File::open(&prev).map_err(io_err)?;
    let len = file.metadata().map_err(io_err)?.len();
    let tail = read_tail(&file, len).map_err(io_err)?;
    let found = find_resume_point(&tail.bytes, tail.base).map_err(corrupt)?;
    match found.head {
        Some(head) if found.keep == len => Ok(head),
        _ => Err(corrupt(
            "the newest rotated file does not end with a complete, intact line".into(),
        )),
    }
}

struct Tail {
    bytes: Vec<u8>,
    /// File offset of `bytes[0]`.
    base: u64,
}

/// Reads enough of the end of the file to hold its last three newlines (or all of it).
fn read_tail(mut file: &std::fs::File, len: u64) -> io::Result<Tail> {
    let mut want: u64 = 64 * 1024;
    loop {
        let base = len.saturating_sub(want);
        let mut bytes = Vec::with_capacity((len - base) as usize);
        file.seek(SeekFrom::Start(base))?;
        file.take(len - base).read_to_end(&mut bytes)?;
        if base == 0 || memchr::memchr_iter(b'\n', &bytes).count() >= 3 {
            return Ok(Tail { bytes, base });
        }
        want *= 4;
    }
}

struct ResumePoint {
    head: Option<ChainHead>,
    /// Bytes of the file to keep.
    keep: u64,
    reason: &'static str,
}

/// Decides from the tail where the intact chain ends. At most one line is cut: a tail
/// without its newline, or else a last line that does not check. If what is left still does
/// not end in an intact line, this is not a crash but damage: refuse to write onto it.
fn find_resume_point(tail: &[u8], base: u64) -> Result<ResumePoint, String> {
    let whole_file = base == 0;
    let mut end = tail.len(); // exclusive end of the region still considered
    let mut reason = "";
    if !tail.is_empty() && !tail.ends_with(b"\n") {
        end = memchr::memrchr(b'\n', tail).map_or(0, |nl| nl + 1);
        reason = "last line has no trailing newline";
    }
    for attempt in 0..2 {
        if end == 0 && whole_file {
            return Ok(ResumePoint {
                head: None,
                keep: 0,
                reason,
            });
        }
        let Some(body_end) = end.checked_sub(1) else {
            return Err("no newline in the part of the file read".into());
        };
        let start = memchr::memrchr(b'\n', &tail[..body_end]).map(|nl| nl + 1);
        let Some(start) = start.or(whole_file.then_some(0)) else {
            return Err("the last line is longer than the part of the file read".into());
        };
        match check_line(&tail[start..body_end]) {
            Ok(facts) => {
                return Ok(ResumePoint {
                    head: Some(ChainHead {
                        seq: facts.seq,
                        hash: facts.hash,
                    }),
                    keep: base + end as u64,
                    reason,
                });
            }
            Err(problem) if attempt == 0 && reason.is_empty() => {
                tracing::warn!(?problem, "audit log: last line does not check; cutting it");
                end = start;
                reason = "last line does not check (torn or damaged)";
            }
            Err(problem) => {
                return Err(format!(
                    "the line ending at byte {} does not check ({problem:?}); run `sluice verify` \
                     and move the file aside",
                    base + body_end as u64
                ));
            }
        }
    }
    Err("no intact line to resume from".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::line::encode;
    use crate::audit::{AuditEvent, Stage};

    fn two_lines() -> (Vec<u8>, ChainHead) {
        let mut out = Vec::new();
        let e = AuditEvent::new(Stage::Decision);
        let head = encode(&e, &ChainHead::GENESIS, &mut out);
        let head = encode(&e, &head, &mut out);
        (out, head)
    }

    #[test]
    fn intact_file_resumes_at_its_last_line() {
        let (log, head) = two_lines();
        let p = find_resume_point(&log, 0).unwrap();
        assert_eq!((p.head, p.keep), (Some(head), log.len() as u64));
    }

    #[test]
    fn a_file_that_is_only_a_torn_line_is_cut_to_nothing() {
        let p = find_resume_point(b"{\"seq\":1,\"tim", 0).unwrap();
        assert_eq!((p.head, p.keep), (None, 0));
        assert!(p.reason.contains("newline"));
        assert_eq!(find_resume_point(b"", 0).unwrap().head, None);
    }

    #[test]
    fn only_one_line_is_ever_cut() {
        let (mut log, _) = two_lines();
        let first_len = log.iter().position(|&b| b == b'\n').unwrap() + 1;
        log.extend_from_slice(b"garbage\n");
        let p = find_resume_point(&log, 0).unwrap();
        assert_eq!(p.keep, (log.len() - 8) as u64);
        // Garbage on the last line AND a torn tail: more than a crash leaves; refuse.
        log.extend_from_slice(b"{\"seq\":3");
        assert!(find_resume_point(&log, 0).is_err());
        // A damaged second-to-last line under a bad last line: refuse too.
        let (mut log, _) = two_lines();
        log[first_len + 10] = b'X';
        log.extend_from_slice(b"garbage\n");
        assert!(find_resume_point(&log, 0).is_err());
    }
}
