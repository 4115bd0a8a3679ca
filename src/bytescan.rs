//! [`any_byte`]: whether a byte string holds any byte of a kind, at vector speed, for the
//! per-request scans of a path, a query and every string the audit log writes.

/// Whether any byte of `bytes` is one `test` picks: 16 bytes at a time with no branch inside
/// a block, which compiles to vector instructions (a plain `any` or a `bool` fold does not).
/// The tail is the last 16 bytes again, overlapping what was already looked at.
pub fn any_byte(bytes: &[u8], test: impl Fn(u8) -> bool) -> bool {
    let hit = |block: &[u8; 16]| {
        block
            .iter()
            .fold(0u8, |hit, &byte| hit | u8::from(test(byte)))
            != 0
    };
    let (blocks, tail) = bytes.as_chunks::<16>();
    if blocks.iter().any(hit) {
        return true;
    }
    match bytes.last_chunk::<16>() {
        Some(last) if !tail.is_empty() => hit(last),
        Some(_) => false,
        None => bytes.iter().any(|&byte| test(byte)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_byte_looks_at_every_byte_of_every_length() {
        for len in 0..50 {
            let clean = vec![b'a'; len];
            assert!(!any_byte(&clean, |b| b == b'%'), "{len}");
            for at in 0..len {
                let mut dirty = clean.clone();
                dirty[at] = b'%';
                assert!(any_byte(&dirty, |b| b == b'%'), "{len} {at}");
            }
        }
    }
}
