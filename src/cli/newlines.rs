//! The positions of every `'\n'` in a buffer of many lines, found 64 bytes
//! at a time.
//!
//! `test-filter` cuts a 256 KiB buffer into lines. `memchr_iter` starts a
//! fresh vector search for each line, which cost ~90 instructions per
//! syslog line (~110 bytes) on the benchmark log; here one pass of four
//! 16-byte compares marks every newline of a 64-byte block in a bit mask,
//! and each line end is then one bit taken off it.

/// An iterator over the indices of `'\n'` in a byte slice, in order.
pub struct Newlines<'a> {
    hay: &'a [u8],
    /// Where the block `mask` describes starts.
    block: usize,
    /// Bit `i` set: `hay[block + i]` is a newline not yet handed out.
    mask: u64,
}

impl<'a> Newlines<'a> {
    pub fn new(hay: &'a [u8]) -> Self {
        Newlines { hay, block: 0, mask: block_mask(hay, 0) }
    }
}

impl Iterator for Newlines<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        while self.mask == 0 {
            self.block += BLOCK;
            if self.block >= self.hay.len() {
                return None;
            }
            self.mask = block_mask(self.hay, self.block);
        }
        let bit = self.mask.trailing_zeros() as usize;
        self.mask &= self.mask - 1;
        Some(self.block + bit)
    }
}

const BLOCK: usize = 64;

/// The newlines of `hay[at..at + 64]` (fewer bytes at the end) as bits.
#[inline]
fn block_mask(hay: &[u8], at: usize) -> u64 {
    match hay.get(at..at + BLOCK).and_then(|b| <&[u8; BLOCK]>::try_from(b).ok()) {
        Some(block) => full_block_mask(block),
        None => byte_mask(hay.get(at..).unwrap_or_default()),
    }
}

/// The newlines of up to 64 `bytes` as bits, a byte at a time: the short
/// last block, and whole blocks where there is no SSE2.
fn byte_mask(bytes: &[u8]) -> u64 {
    bytes.iter().enumerate().fold(0, |mask, (i, &b)| mask | (u64::from(b == b'\n') << i))
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn full_block_mask(block: &[u8; BLOCK]) -> u64 {
    use std::arch::x86_64::{__m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8};
    // SAFETY: SSE2 is part of the x86_64 baseline, so these instructions
    // exist wherever this code runs; each unaligned load reads the 16 bytes
    // at `16 * i` of the 64 `block` holds.
    unsafe {
        let newline = _mm_set1_epi8(b'\n' as i8);
        let quarter = |i: usize| {
            let bytes = _mm_loadu_si128(block.as_ptr().add(16 * i).cast::<__m128i>());
            // movemask fills the low 16 bits only: the cast keeps them.
            u64::from(_mm_movemask_epi8(_mm_cmpeq_epi8(bytes, newline)) as u16)
        };
        quarter(0) | quarter(1) << 16 | quarter(2) << 32 | quarter(3) << 48
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn full_block_mask(block: &[u8; BLOCK]) -> u64 {
    byte_mask(block)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every length from 0 to 200 with newlines at varied places, including
    /// at block edges, agrees with a plain search.
    #[test]
    fn finds_what_a_plain_search_finds() {
        for len in 0..200usize {
            for step in [1usize, 2, 7, 31, 63, 64, 65] {
                let hay: Vec<u8> = (0..len)
                    .map(|i| if i % step == step - 1 || i == 63 { b'\n' } else { b'a' + (i % 26) as u8 })
                    .collect();
                let want: Vec<usize> =
                    hay.iter().enumerate().filter(|&(_, &b)| b == b'\n').map(|(i, _)| i).collect();
                assert_eq!(Newlines::new(&hay).collect::<Vec<_>>(), want, "len {len} step {step}");
            }
        }
    }

    #[test]
    fn bytes_that_differ_from_a_newline_by_one_bit_are_not_newlines() {
        let hay = [0x0b_u8, 0x08, 0x8a, 0x1a, 0x0a, 0x4a, 0x2a, 0x0e, 0x02, 0x0a];
        assert_eq!(Newlines::new(&hay).collect::<Vec<_>>(), vec![4, 9]);
        assert_eq!(Newlines::new(&[0x8a; 64]).count(), 0);
    }
}
