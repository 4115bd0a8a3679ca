//! [`InlineStr`]: a string kept inline up to `N` bytes, for the short per-request strings of
//! the hot path (a classification's reason, a request's normalised path), so the common case
//! allocates nothing. Longer strings spill to the heap without losing a byte.

use std::fmt;
use std::ops::Deref;

use arrayvec::ArrayString;

/// A string that lives inline up to `N` bytes. Reads as a `&str` (`Deref`) at no cost:
/// unlike a byte buffer, it is never re-checked for UTF-8.
#[derive(Clone)]
pub struct InlineStr<const N: usize>(Repr<N>);

#[derive(Clone)]
enum Repr<const N: usize> {
    Inline(ArrayString<N>),
    Heap(String),
}

impl<const N: usize> InlineStr<N> {
    pub fn new() -> InlineStr<N> {
        InlineStr(Repr::Inline(ArrayString::new()))
    }

    /// The pieces, concatenated.
    pub fn concat(pieces: &[&str]) -> InlineStr<N> {
        let mut out = InlineStr::new();
        out.push_strs(pieces);
        out
    }

    /// Appends each of `pieces`.
    #[inline]
    pub fn push_strs(&mut self, pieces: &[&str]) {
        for piece in pieces {
            self.push_str(piece);
        }
    }

    /// Inlined: the common case (it fits) is a length check and a copy, which for a
    /// constant piece the compiler turns into a few moves; the rest is out of line.
    #[inline]
    pub fn push_str(&mut self, piece: &str) {
        if let Repr::Inline(inline) = &mut self.0
            && inline.try_push_str(piece).is_ok()
        {
            return;
        }
        self.push_spilled(piece);
    }

    /// `piece` does not fit inline (or the string is already on the heap).
    #[cold]
    fn push_spilled(&mut self, piece: &str) {
        match &mut self.0 {
            Repr::Inline(inline) => {
                let mut heap = String::with_capacity(inline.len() + piece.len() + 32);
                heap.push_str(inline);
                heap.push_str(piece);
                self.0 = Repr::Heap(heap);
            }
            Repr::Heap(heap) => heap.push_str(piece),
        }
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline(inline) => inline,
            Repr::Heap(heap) => heap,
        }
    }
}

impl<const N: usize> Default for InlineStr<N> {
    fn default() -> InlineStr<N> {
        InlineStr::new()
    }
}

impl<const N: usize> Deref for InlineStr<N> {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> From<&str> for InlineStr<N> {
    fn from(text: &str) -> InlineStr<N> {
        InlineStr::concat(&[text])
    }
}

impl<const N: usize> fmt::Display for InlineStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> fmt::Debug for InlineStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> PartialEq for InlineStr<N> {
    fn eq(&self, other: &InlineStr<N>) -> bool {
        self.as_str() == other.as_str()
    }
}

impl<const N: usize> Eq for InlineStr<N> {}

impl<const N: usize> PartialEq<str> for InlineStr<N> {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl<const N: usize> PartialEq<&str> for InlineStr<N> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_inline_then_spills_without_losing_a_byte() {
        const N: usize = 62;
        let mut text = InlineStr::<N>::from("read of ");
        text.push_str("pods");
        assert_eq!(text, "read of pods");
        assert!(matches!(text.0, Repr::Inline(_)));
        let long = "x".repeat(N);
        text.push_str(&long);
        assert!(matches!(text.0, Repr::Heap(_)));
        assert_eq!(text.as_str(), format!("read of pods{long}"));
        text.push_str("é");
        assert!(text.ends_with("xé"));
        let exact = InlineStr::<N>::from("y".repeat(N).as_str());
        assert!(matches!(exact.0, Repr::Inline(_)));
        assert_eq!(exact.len(), N);
        assert_eq!(format!("{:?}", InlineStr::<N>::from("a\"b")), "\"a\\\"b\"");
    }
}
