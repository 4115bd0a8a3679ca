//! [`Reason`]: the short human reason of a [`super::Classification`], kept inline so the
//! common path ("read of pods", "exec into a pod") allocates nothing.

use crate::inline_str::InlineStr;

/// Bytes kept inline; longer reasons (a long CRD or namespace name) spill to the heap.
const INLINE: usize = 62;

/// "read of pods", "exec into a pod": inline up to 62 bytes.
pub type Reason = InlineStr<INLINE>;
