//! Checking a block of whole log lines on every core: each line's own shape and hash are
//! independent of the other lines, so `verify` has them checked here in parallel and then
//! follows the links between lines (seq, prev_hash) in order itself.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::check::{LineFacts, LineProblem, check_line};

/// About how much of a block one thread checks at a time.
pub(super) const PART: usize = 256 << 10;

/// The lines of one part of a block, each checked on its own: the facts of the good lines
/// up to the first bad one, and what is wrong with that one.
pub(super) struct Checked<'a> {
    pub good: Vec<LineFacts<'a>>,
    pub bad: Option<LineProblem>,
}

/// Checks each line of `block` (whole lines, each ending in a newline) on its own, on as
/// many threads as there are cores. Hashing every line is most of verify's work and each
/// line's hash is independent of the others; only the links between lines (seq and
/// prev_hash) are followed in order, afterwards, by verify's `Chain::link`. The parts come back
/// in order, so the first bad line found is still the first of the file.
///
/// The threads take small parts from a shared counter rather than a fixed half each: on a
/// busy machine a thread that gets no CPU would otherwise hold up the whole block.
pub(super) fn check_block(block: &[u8]) -> Vec<Checked<'_>> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let parts = split_lines(block, block.len() / PART + 1);
    let next = AtomicUsize::new(0);
    let take_parts = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(&part) = parts.get(i) else {
                return done;
            };
            done.push((i, check_part(part)));
        }
    };
    let mut checked = std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..cores.min(parts.len()))
            .filter_map(|_| {
                std::thread::Builder::new()
                    .spawn_scoped(scope, take_parts)
                    .ok()
            })
            .collect();
        let mut checked = take_parts();
        for helper in helpers {
            let theirs = helper
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            checked.extend(theirs);
        }
        checked
    });
    checked.sort_unstable_by_key(|&(i, _)| i);
    checked.into_iter().map(|(_, part)| part).collect()
}

/// Cuts `block` into at most `n` runs of whole lines of about equal size.
fn split_lines(block: &[u8], n: usize) -> Vec<&[u8]> {
    let mut parts = Vec::with_capacity(n);
    let mut start = 0;
    for k in 1..n {
        let target = (block.len() * k / n).max(start);
        if let Some(nl) = memchr::memchr(b'\n', &block[target..]) {
            parts.push(&block[start..target + nl + 1]);
            start = target + nl + 1;
        }
    }
    parts.push(&block[start..]);
    parts
}

fn check_part(part: &[u8]) -> Checked<'_> {
    let mut good = Vec::with_capacity(part.len() / 512);
    let mut start = 0;
    for nl in memchr::memchr_iter(b'\n', part) {
        match check_line(&part[start..nl]) {
            Ok(facts) => good.push(facts),
            Err(problem) => {
                return Checked {
                    good,
                    bad: Some(problem),
                };
            }
        }
        start = nl + 1;
    }
    Checked { good, bad: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_lines_cuts_after_newlines_only() {
        let block = b"aa\nbbbbbb\nc\ndddd\n";
        for n in 1..6 {
            let parts = split_lines(block, n);
            assert!(parts.len() <= n);
            assert_eq!(parts.concat(), block.to_vec());
            assert!(
                parts.iter().all(|p| p.is_empty() || p.ends_with(b"\n")),
                "{n}"
            );
        }
        assert_eq!(split_lines(b"", 2).concat(), b"".to_vec());
    }
}
