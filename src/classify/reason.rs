//! [`Reason`]: the short human reason of a [`super::Classification`], kept inline so the
//! common path ("read of pods", "exec into a pod") allocates nothing.

use std::fmt;
use std::ops::Deref;

/// Bytes kept inline; longer reasons (a long CRD or namespace name) spill to the heap.
const INLINE: usize = 62;

/// A string that lives inline up to [`INLINE`] bytes. Reads as a `&str` (`Deref`).
#[derive(Clone)]
pub struct Reason(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, buf: [u8; INLINE] },
    Heap(String),
}

impl Reason {
    pub fn new() -> Reason {
        Reason(Repr::Inline {
            len: 0,
            buf: [0; INLINE],
        })
    }

    /// The pieces, concatenated.
    pub fn concat(pieces: &[&str]) -> Reason {
        let mut reason = Reason::new();
        for piece in pieces {
            reason.push_str(piece);
        }
        reason
    }

    pub fn push_str(&mut self, piece: &str) {
        match &mut self.0 {
            Repr::Inline { len, buf } => {
                let at = usize::from(*len);
                match buf.get_mut(at..at + piece.len()) {
                    Some(slot) => {
                        slot.copy_from_slice(piece.as_bytes());
                        // `at + piece.len()` ≤ INLINE < 256.
                        *len = (at + piece.len()) as u8;
                    }
                    None => {
                        let mut heap = String::with_capacity(at + piece.len() + 32);
                        heap.push_str(self.as_str());
                        heap.push_str(piece);
                        self.0 = Repr::Heap(heap);
                    }
                }
            }
            Repr::Heap(heap) => heap.push_str(piece),
        }
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Only whole `&str`s are ever copied in, so the bytes are UTF-8; the fallback
            // cannot be reached.
            Repr::Inline { len, buf } => {
                std::str::from_utf8(&buf[..usize::from(*len)]).unwrap_or_default()
            }
            Repr::Heap(heap) => heap,
        }
    }
}

impl Default for Reason {
    fn default() -> Reason {
        Reason::new()
    }
}

impl Deref for Reason {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Reason {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for Reason {
    fn from(text: &str) -> Reason {
        Reason::concat(&[text])
    }
}

impl From<Reason> for String {
    fn from(reason: Reason) -> String {
        match reason.0 {
            Repr::Heap(heap) => heap,
            Repr::Inline { .. } => reason.as_str().to_owned(),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq for Reason {
    fn eq(&self, other: &Reason) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Reason {}

impl PartialEq<str> for Reason {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Reason {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_inline_then_spills_without_losing_a_byte() {
        let mut reason = Reason::from("read of ");
        reason.push_str("pods");
        assert_eq!(reason, "read of pods");
        assert!(matches!(reason.0, Repr::Inline { .. }));
        let long = "x".repeat(INLINE);
        reason.push_str(&long);
        assert!(matches!(reason.0, Repr::Heap(_)));
        assert_eq!(reason.as_str(), format!("read of pods{long}"));
        reason.push_str("é");
        assert!(reason.ends_with("xé"));
        let exact = Reason::from("y".repeat(INLINE).as_str());
        assert!(matches!(exact.0, Repr::Inline { .. }));
        assert_eq!(String::from(exact).len(), INLINE);
        assert_eq!(format!("{:?}", Reason::from("a\"b")), "\"a\\\"b\"");
    }
}
