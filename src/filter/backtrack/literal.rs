//! [`Literal`]: a pattern's fixed text, compared a word at a time.

use std::sync::Arc;

use super::bytes::{commonness, word};
use crate::filter::text::le_word;

/// A literal with its first and last eight bytes as words, so comparing
/// it is one or two word compares for the usual short literals.
#[derive(Debug, Clone)]
pub(super) struct Literal {
    /// Shared by the sequences that copy the literal.
    pub(super) bytes: Arc<[u8]>,
    /// The first `min(len, 8)` bytes, little-endian, and the mask of them.
    pub(super) head: u64,
    pub(super) head_mask: u64,
    /// The last eight bytes (when the literal has 9 to 16).
    pub(super) tail: u64,
    /// The literal's least common byte (by [`commonness`]) and its offset:
    /// what a run searches for when it looks for where the literal occurs.
    pub(super) rare: u8,
    pub(super) rare_at: usize,
}

impl Literal {
    pub(super) fn new(bytes: &[u8]) -> Literal {
        let mut head = [0u8; 8];
        let n = bytes.len().min(8);
        head[..n].copy_from_slice(&bytes[..n]);
        let head_mask = if n == 8 { u64::MAX } else { (1u64 << (8 * n)) - 1 };
        let tail = match bytes.len().checked_sub(8).and_then(|from| bytes.get(from..)) {
            Some(last) if bytes.len() > 8 => u64::from_le_bytes(last.try_into().unwrap_or([0; 8])),
            _ => 0,
        };
        let (rare_at, rare) =
            bytes.iter().copied().enumerate().min_by_key(|&(_, b)| commonness(b)).unwrap_or((0, 0));
        Literal { bytes: bytes.into(), head: u64::from_le_bytes(head), head_mask, tail, rare, rare_at }
    }

    pub(super) fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the literal occurs at `pos`.
    #[inline(always)]
    pub(super) fn at(&self, hay: &[u8], pos: usize) -> bool {
        let len = self.bytes.len();
        let Some(word) = word(hay, pos) else {
            // Near the end of the input.
            return hay.get(pos..pos.saturating_add(len)) == Some(&self.bytes[..]);
        };
        if (word ^ self.head) & self.head_mask != 0 {
            return false;
        }
        if len <= 8 {
            return true;
        }
        let Some(text) = hay.get(pos..pos + len) else { return false };
        // Word by word (no `memcmp` call for these short compares): the
        // middle words of a long literal, then the last eight bytes.
        let mut at = 8;
        while at + 8 < len {
            if le_word(text, at) != le_word(&self.bytes, at) {
                return false;
            }
            at += 8;
        }
        le_word(text, len - 8) == Some(self.tail)
    }
}
