//! `verify`: walk a log (or a rotated series, oldest first) line by line and check the
//! chain: each line's own hash, seq +1 a line, prev_hash = the previous line's hash, across
//! file boundaries too. Streams each file in large blocks and checks the bytes on disk;
//! never re-serialises anything.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::check::{LineFacts, LineProblem, check_line};
use super::line::{ChainHead, HexHash, ZERO_HASH};
pub use super::report::{Finding, Problem, Summary, VerifyError};

/// `sluice verify`'s long help: what it proves, and what a hash chain alone cannot.
pub const VERIFY_LONG_ABOUT: &str = "\
Check a sluice audit log, or a rotated series of them given oldest first \
(e.g. `sluice verify audit-*.jsonl audit.jsonl`).

Every line carries the SHA-256 of its own bytes and the hash of the line before it, and seq \
rises by exactly one a line, also across rotated files. verify recomputes every hash and \
follows the chain: an edited field, a deleted, inserted or reordered line, a torn last line \
or a file missing from the middle of a series is reported with the file, line number and \
seq of the first bad line.

What a hash chain alone cannot catch: lines cut off cleanly from the END of the log (the \
shorter chain is still a valid chain), a series missing its oldest or newest files, and a log \
rewritten as a whole, with fresh hashes, by someone who has write access to it. Detecting \
those needs the head hash kept somewhere else (note the head hash this command prints) or \
signed checkpoints.

Exit status: 0 intact, 1 tampered or damaged, 2 a file cannot be read.";

/// Verifies `files` as one chain, oldest first.
pub fn verify_files(files: &[PathBuf]) -> Result<Summary, VerifyError> {
    let mut chain = Chain::default();
    for file in files {
        verify_file(file, &mut chain)?;
    }
    chain.summary.head_hash = chain.head.map(|head| hex(&head.hash));
    Ok(chain.summary)
}

/// How much of a file is read at once.
const BLOCK: usize = 8 << 20;

#[derive(Default)]
struct Chain {
    head: Option<ChainHead>,
    summary: Summary,
}

fn verify_file(path: &Path, chain: &mut Chain) -> Result<(), VerifyError> {
    let unreadable = |source| VerifyError::Unreadable {
        file: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(unreadable)?;
    let mut buf = vec![0u8; BLOCK];
    let mut filled = 0;
    let mut line_no = 0u64;
    loop {
        let n = read_full(&mut file, &mut buf[filled..]).map_err(unreadable)?;
        filled += n;
        let eof = n == 0 || filled < buf.len();
        let end = memchr::memrchr(b'\n', &buf[..filled]).map_or(0, |nl| nl + 1);
        check_lines(&buf[..end], path, &mut line_no, chain)?;
        buf.copy_within(end..filled, 0);
        filled -= end;
        if eof {
            break;
        }
        if filled == buf.len() {
            buf.resize(buf.len() * 2, 0); // one line longer than a block: grow
        }
    }
    chain.summary.files += 1;
    if filled > 0 {
        let problem = Problem::TornLastLine {
            bytes: filled as u64,
        };
        return Err(tampered(path, line_no + 1, None, problem));
    }
    Ok(())
}

/// Checks each line of `block` (whole lines, each ending in a newline) on its own, then
/// links it to the chain; `line_no` counts the lines of the file checked so far.
fn check_lines(
    block: &[u8],
    path: &Path,
    line_no: &mut u64,
    chain: &mut Chain,
) -> Result<(), VerifyError> {
    let mut start = 0;
    let mut last = None;
    for nl in memchr::memchr_iter(b'\n', block) {
        *line_no += 1;
        let facts = check_line(&block[start..nl]).map_err(|bad| {
            let (seq, problem) = line_problem(bad);
            tampered(path, *line_no, seq, problem)
        })?;
        chain
            .link(&facts)
            .map_err(|(seq, problem)| tampered(path, *line_no, seq, problem))?;
        last = Some(facts);
        start = nl + 1;
    }
    if let Some(last) = last {
        let stamp = &last.timestamp[..last.timestamp.len().min(40)];
        chain.summary.last_timestamp = Some(lossy(stamp));
    }
    Ok(())
}

/// What a line's own problem means for the report: the seq it states, when known.
fn line_problem(problem: LineProblem) -> (Option<u64>, Problem) {
    match problem {
        LineProblem::Malformed(what) => (None, Problem::Malformed(what)),
        LineProblem::HashMismatch(m) => (
            Some(m.seq),
            Problem::HashMismatch {
                stated: hex(&m.stated),
                computed: hex(&m.computed),
            },
        ),
    }
}

impl Chain {
    /// Links a line already checked on its own to the chain so far.
    fn link(&mut self, facts: &LineFacts<'_>) -> Result<(), (Option<u64>, Problem)> {
        let seq = Some(facts.seq);
        let expected_prev = match self.head {
            Some(head) => {
                let expected = head.seq + 1;
                if facts.seq > expected {
                    return Err((
                        seq,
                        Problem::SeqGap {
                            expected,
                            found: facts.seq,
                        },
                    ));
                }
                if facts.seq < expected {
                    return Err((
                        seq,
                        Problem::SeqRepeat {
                            expected,
                            found: facts.seq,
                        },
                    ));
                }
                Some(head.hash)
            }
            // The series may begin after older files were deleted; a log's very first line
            // (seq 1) must start from zeros.
            None => (facts.seq == 1).then_some(ZERO_HASH),
        };
        if let Some(expected) = expected_prev
            && facts.prev_hash != expected
        {
            let problem = Problem::PrevHashMismatch {
                expected: hex(&expected),
                found: hex(&facts.prev_hash),
            };
            return Err((seq, problem));
        }
        self.head = Some(ChainHead {
            seq: facts.seq,
            hash: facts.hash,
        });
        let s = &mut self.summary;
        if s.first_timestamp.is_none() {
            s.first_timestamp = Some(lossy(facts.timestamp));
        }
        s.events += 1;
        s.first_seq.get_or_insert(facts.seq);
        s.last_seq = Some(facts.seq);
        Ok(())
    }
}

fn tampered(file: &Path, line: u64, seq: Option<u64>, problem: Problem) -> VerifyError {
    VerifyError::Tampered(Finding {
        file: file.to_path_buf(),
        line,
        seq,
        problem,
    })
}

fn read_full(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut total = 0;
    while total < buf.len() {
        match file.read(&mut buf[total..]) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

fn hex(h: &HexHash) -> String {
    String::from_utf8_lossy(h).into_owned()
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[cfg(test)]
mod tests;
