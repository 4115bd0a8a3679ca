//! `verify`: walk a log (or a rotated series, oldest first) line by line and check the
//! chain: each line's own hash, seq +1 a line, prev_hash = the previous line's hash, across
//! file boundaries too. Streams each file in large blocks; never re-serialises anything.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::check::{LineProblem, check_line};
use super::line::{ChainHead, HexHash, ZERO_HASH};

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

/// What an intact series contains.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub files: usize,
    pub events: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub first_timestamp: Option<String>,
    pub last_timestamp: Option<String>,
    /// The hash of the last line: keep it elsewhere to detect a tail cut off later.
    pub head_hash: Option<String>,
}

/// Why verification failed: a file could not be read (exit 2) or the chain is broken (1).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{}: cannot read: {source}", file.display())]
    Unreadable {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Tampered(Finding),
}

/// The first bad line of a series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub file: PathBuf,
    /// 1-based line number within `file`.
    pub line: u64,
    /// The seq the line states, when it could be read.
    pub seq: Option<u64>,
    pub problem: Problem,
}

/// What is wrong with a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Malformed(&'static str),
    HashMismatch { stated: String, computed: String },
    PrevHashMismatch { expected: String, found: String },
    SeqGap { expected: u64, found: u64 },
    SeqRepeat { expected: u64, found: u64 },
    TornLastLine { bytes: u64 },
}

impl Problem {
    /// A short, stable name for scripts (`--json`'s `problem`).
    pub fn kind(&self) -> &'static str {
        match self {
            Problem::Malformed(_) => "malformed_json",
            Problem::HashMismatch { .. } => "hash_mismatch",
            Problem::PrevHashMismatch { .. } => "prev_hash_mismatch",
            Problem::SeqGap { .. } => "seq_gap",
            Problem::SeqRepeat { .. } => "seq_repeat",
            Problem::TornLastLine { .. } => "torn_last_line",
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Malformed(what) => write!(f, "malformed JSON: {what}"),
            Problem::HashMismatch { stated, computed } => write!(
                f,
                "hash mismatch: the line says {stated} but its bytes hash to {computed}"
            ),
            Problem::PrevHashMismatch { expected, found } => write!(
                f,
                "prev_hash does not link: expected {expected} (the previous line's hash), found {found}"
            ),
            Problem::SeqGap { expected, found } => {
                write!(f, "seq gap: expected {expected}, found {found}")
            }
            Problem::SeqRepeat { expected, found } => {
                write!(
                    f,
                    "seq repeat or out of order: expected {expected}, found {found}"
                )
            }
            Problem::TornLastLine { bytes } => {
                write!(
                    f,
                    "torn last line: {bytes} bytes without a trailing newline"
                )
            }
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: line {}", self.file.display(), self.line)?;
        if let Some(seq) = self.seq {
            write!(f, " (seq {seq})")?;
        }
        write!(f, ": {}", self.problem)
    }
}

/// Verifies `files` as one chain, oldest first.
pub fn verify_files(files: &[PathBuf]) -> Result<Summary, VerifyError> {
    let mut chain = Chain::default();
    for file in files {
        verify_file(file, &mut chain)?;
    }
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
    let mut last_ts: Option<(usize, [u8; 40])> = None;
    loop {
        let n = read_full(&mut file, &mut buf[filled..]).map_err(unreadable)?;
        filled += n;
        let eof = n == 0 || filled < buf.len();
        let mut start = 0;
        while let Some(nl) = memchr::memchr(b'\n', &buf[start..filled]) {
            line_no += 1;
            let line = &buf[start..start + nl];
            let stamp = chain
                .accept(line)
                .map_err(|(seq, problem)| tampered(path, line_no, seq, problem))?;
            if chain.summary.first_timestamp.is_none() {
                chain.summary.first_timestamp = Some(lossy(stamp));
            }
            let mut ts = [0u8; 40];
            let len = stamp.len().min(40);
            ts[..len].copy_from_slice(&stamp[..len]);
            last_ts = Some((len, ts));
            start += nl + 1;
        }
        buf.copy_within(start..filled, 0);
        filled -= start;
        if eof {
            break;
        }
        if filled == buf.len() {
            buf.resize(buf.len() * 2, 0); // one line longer than a block: grow
        }
    }
    chain.summary.files += 1;
    if let Some((len, ts)) = last_ts {
        chain.summary.last_timestamp = Some(lossy(&ts[..len]));
    }
    if filled > 0 {
        let problem = Problem::TornLastLine {
            bytes: filled as u64,
        };
        return Err(tampered(path, line_no + 1, None, problem));
    }
    Ok(())
}

impl Chain {
    /// Checks one line against itself and the chain so far; returns its timestamp bytes.
    fn accept<'a>(&mut self, line: &'a [u8]) -> Result<&'a [u8], (Option<u64>, Problem)> {
        let facts = check_line(line).map_err(|p| match p {
            LineProblem::Malformed(what) => (None, Problem::Malformed(what)),
            LineProblem::HashMismatch(m) => (
                Some(m.seq),
                Problem::HashMismatch {
                    stated: hex(&m.stated),
                    computed: hex(&m.computed),
                },
            ),
        })?;
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
        s.events += 1;
        s.first_seq.get_or_insert(facts.seq);
        s.last_seq = Some(facts.seq);
        s.head_hash = Some(hex(&facts.hash));
        Ok(facts.timestamp)
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
