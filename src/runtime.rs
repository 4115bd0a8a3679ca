//! The process sluice serves in: one tokio multi-thread runtime, sized by
//! `TOKIO_WORKER_THREADS` or the CPUs sluice may use, and an open-files limit large enough
//! for its connections. Generic: nothing here knows what sluice's stages are.

use std::io;

use tokio::runtime::Runtime;

/// The runtime could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// `TOKIO_WORKER_THREADS` is set to something that is not a thread count.
    #[error("TOKIO_WORKER_THREADS={0:?}: not a number of threads (1 to {MAX_THREADS})")]
    ThreadCount(String),
    #[error("cannot start the runtime: {0}")]
    Build(#[source] io::Error),
}

/// More worker threads than any machine sluice runs on has CPUs: a larger setting is a
/// mistake, refused by name rather than left to tokio (which would panic).
const MAX_THREADS: usize = 1024;

/// A multi-thread runtime with a worker a CPU sluice may use (its cgroup's CPU limit
/// counts: the Deployment's 1-CPU limit gives one), or `TOKIO_WORKER_THREADS` of them.
pub fn build() -> Result<Runtime, RuntimeError> {
    // Read lossily: a value that is not UTF-8 is refused by name, not taken as unset.
    let set = std::env::var_os("TOKIO_WORKER_THREADS").map(|v| v.to_string_lossy().into_owned());
    let cpus = || std::thread::available_parallelism().map_or(1, usize::from);
    let workers = worker_threads(set.as_deref(), cpus)?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .map_err(RuntimeError::Build)
}

fn worker_threads(set: Option<&str>, cpus: impl FnOnce() -> usize) -> Result<usize, RuntimeError> {
    match set {
        None => Ok(cpus().min(MAX_THREADS)),
        Some(value) => match value.trim().parse::<usize>() {
            Ok(n) if (1..=MAX_THREADS).contains(&n) => Ok(n),
            _ => Err(RuntimeError::ThreadCount(value.to_owned())),
        },
    }
}

/// Raises the soft open-files limit as far as the hard limit allows.
///
/// Every agent connection, upstream connection and watch holds a file descriptor, and a
/// workstation's default soft limit (1024 on Linux, 256 on macOS) would stop sluice near
/// that many connections (new ones wait in the backlog while accept fails). The hard limit
/// is what the administrator allows: take all of it, as Go programs such as kube-apiserver
/// do.
pub fn raise_open_files_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let Some(current) = limit.current else {
        return; // unlimited already
    };
    let raised = raise_soft_limit(current, limit.maximum, |soft| {
        let new = Rlimit {
            current: Some(soft),
            maximum: limit.maximum,
        };
        setrlimit(Resource::Nofile, new).map_err(io::Error::from)
    });
    match raised {
        Ok(Some(to)) => tracing::info!(from = current, to, "open files limit raised"),
        Ok(None) => {}
        Err(err) => tracing::warn!(
            limit = current,
            error = %err,
            "cannot raise the open files limit; connections beyond it will wait"
        ),
    }
}

/// Raises a soft limit of `current` as far as `set` allows: to `hard`, or when `hard` is
/// unlimited or `set` refuses it (macOS caps it at `kern.maxfilesperproc`), to the largest
/// power of two from 2^20 down that `set` accepts. `Ok(None)`: nothing to raise.
fn raise_soft_limit(
    current: u64,
    hard: Option<u64>,
    mut set: impl FnMut(u64) -> io::Result<()>,
) -> io::Result<Option<u64>> {
    const CEILING: u64 = 1 << 20;
    let first = hard.unwrap_or(CEILING);
    // The largest power of two below `first`, then each half of it.
    let below = first
        .saturating_sub(1)
        .checked_ilog2()
        .map_or(0, |log| 1 << log);
    let steps = std::iter::successors(Some(below.min(CEILING)), |n| Some(n / 2));
    let mut refused = None;
    for soft in std::iter::once(first)
        .chain(steps)
        .take_while(|&soft| soft > current)
    {
        match set(soft) {
            Ok(()) => return Ok(Some(soft)),
            Err(err) => refused = Some(err),
        }
    }
    refused.map_or(Ok(None), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thread_count_is_the_cpus_unless_set_and_a_bad_setting_is_named() {
        assert_eq!(worker_threads(None, || 3).unwrap(), 3);
        assert_eq!(worker_threads(Some(" 2 "), || 3).unwrap(), 2);
        assert_eq!(worker_threads(Some("1024"), || 3).unwrap(), 1024);
        assert_eq!(worker_threads(None, || 4096).unwrap(), 1024);
        for bad in ["0", "two", "", "-1", "1025", "99999999999999999999999"] {
            let err = worker_threads(Some(bad), || 3).unwrap_err().to_string();
            assert_eq!(
                err,
                format!("TOKIO_WORKER_THREADS={bad:?}: not a number of threads (1 to 1024)")
            );
        }
    }

    /// What was tried, and a setter that accepts only up to `max`.
    fn attempt(current: u64, hard: Option<u64>, max: u64) -> (Option<u64>, Vec<u64>) {
        let mut tried = Vec::new();
        let raised = raise_soft_limit(current, hard, |soft| {
            tried.push(soft);
            if soft <= max {
                Ok(())
            } else {
                Err(io::Error::from_raw_os_error(1))
            }
        });
        (raised.ok().flatten(), tried)
    }

    #[test]
    fn takes_the_hard_limit_when_it_may() {
        assert_eq!(
            attempt(1024, Some(524_288), u64::MAX),
            (Some(524_288), vec![524_288])
        );
    }

    #[test]
    fn steps_down_when_the_system_caps_below_the_hard_limit() {
        // macOS: hard unlimited, soft 256, kern.maxfilesperproc 24,576.
        let (raised, tried) = attempt(256, None, 24_576);
        assert_eq!(raised, Some(16_384));
        assert_eq!(tried.first(), Some(&(1 << 20)));
        // A hard limit the system refuses steps down from below it.
        assert_eq!(attempt(1024, Some(100_000), 10_240).0, Some(8_192));
    }

    #[test]
    fn never_lowers_the_limit_and_says_why_it_could_not_raise_it() {
        assert_eq!(attempt(4096, Some(4096), u64::MAX), (None, vec![]));
        assert_eq!(attempt(65_536, Some(100_000), 1000), (None, vec![100_000]));
        let refused = raise_soft_limit(1024, Some(4096), |_| Err(io::Error::from_raw_os_error(1)));
        assert!(refused.is_err());
    }
}
