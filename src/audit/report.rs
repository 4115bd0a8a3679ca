//! What `verify` reports: the summary of an intact series, or the first bad line and
//! what is wrong with it. `Display` gives the human line; `Problem::kind` the script name.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

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
