//! Runs tested eight bytes at a time with word arithmetic: [`Span`] for
//! one set made of a few byte ranges (`\S`, `[0-9]`), and [`Fields`] for
//! runs of one span separated by a byte (the dotted quad of an IPv4
//! address).

use super::bytes::{ByteSet, word, word_at};

/// A run that takes its whole extent (`min..=max` bytes), for a set that
/// word arithmetic can test eight bytes at once: its ASCII bytes (or the
/// ASCII bytes not in it) are `N` ranges, and the bytes from 0x80 up are all
/// in it or all out (`\s`, `\S`, `[0-9]`, `[a-z_]`, hex digits). Where a
/// table run costs a lookup, a shift and an or per byte, this costs about
/// five operations per range for all eight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Span<const N: usize> {
    /// Per range `lo..=hi`: `0x80 - lo` and `0x7f - hi` in every byte.
    /// Added to a byte's low seven bits (at most 0x7f, so nothing carries
    /// into the next byte), the first sets bit 7 when the byte is at least
    /// `lo`, the second when it is above `hi`.
    ge: [u64; N],
    gt: [u64; N],
    /// [`HIGH_BITS`] when the ranges are the set's ASCII bytes (an ASCII
    /// byte in none of them stops the run), 0 when they are the ones not
    /// in it.
    flip: u64,
    /// [`HIGH_BITS`] when the bytes from 0x80 up are not in the set.
    high_stops: u64,
    min: usize,
    max: usize,
}

/// Bit 7 of every byte of a word.
pub(super) const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

impl<const N: usize> Span<N> {
    /// The span for `set`, when it has that shape with `N` ranges exactly
    /// (the fewer of the set's ASCII ranges and its complement's).
    pub(super) fn of(set: &ByteSet, min: usize, max: usize) -> Option<Span<N>> {
        let [low, mid, high, top] = set.0;
        let high_in = high == u64::MAX && top == u64::MAX;
        if !high_in && (high | top) != 0 {
            return None;
        }
        // Bit b: ASCII byte b is in the set. Ranges are runs of ones, read
        // off the bits (this runs for every run of every pattern loaded).
        let ascii = u128::from(low) | (u128::from(mid) << 64);
        let ranges_of = |bits: u128| -> Option<[(u8, u8); N]> {
            let mut out = [(0u8, 0u8); N];
            let mut rest = bits;
            for slot in &mut out {
                if rest == 0 {
                    return None;
                }
                let lo = rest.trailing_zeros();
                let len = (rest >> lo).trailing_ones();
                // Both below 128: the bits are ASCII bytes.
                *slot = (lo as u8, (lo + len - 1) as u8);
                // Clears the lowest run of ones.
                rest &= rest.wrapping_add(rest & rest.wrapping_neg());
            }
            (rest == 0).then_some(out)
        };
        let runs = |bits: u128| (bits & !(bits << 1)).count_ones();
        let outside = !ascii & (u128::MAX >> 1);
        let (list, flip) = if runs(ascii) <= runs(outside) {
            (ranges_of(ascii)?, HIGH_BITS)
        } else {
            (ranges_of(outside)?, 0)
        };
        let every = |b: u8| u64::from(b) * 0x0101_0101_0101_0101;
        Some(Span {
            ge: std::array::from_fn(|i| every(0x80 - list[i].0)),
            gt: std::array::from_fn(|i| every(0x7f - list[i].1)),
            flip,
            high_stops: if high_in { 0 } else { HIGH_BITS },
            min,
            // Inputs are slices, so positions are below `isize::MAX`:
            // `pos + max` cannot overflow.
            max: max.min(isize::MAX as usize),
        })
    }

    /// Bit 7 of each byte of `word` that is not in the set.
    #[inline(always)]
    fn stops(&self, word: u64) -> u64 {
        let low = word & !HIGH_BITS;
        let mut listed = 0;
        for i in 0..N {
            listed |= low.wrapping_add(self.ge[i]) & !low.wrapping_add(self.gt[i]);
        }
        ((listed ^ self.flip) & !word | word & self.high_stops) & HIGH_BITS
    }

    /// Where the run from `pos` ends, or `None` when it is shorter than
    /// `min`.
    #[inline(always)]
    pub(super) fn run(&self, hay: &[u8], pos: usize) -> Option<usize> {
        // Most runs end within the first eight bytes: one word, and no
        // loop. (`max` is capped at lowering so the sum cannot overflow.)
        let run = match word(hay, pos) {
            Some(word) => match (self.stops(word).trailing_zeros() / 8) as usize {
                8 => self.run_on(hay, pos) - pos,
                run => run.min(self.max),
            },
            None => self.run_on(hay, pos) - pos,
        };
        (run >= self.min).then_some(pos + run)
    }

    /// [`Span::run`]'s end, word by word (out of line: the loop's
    /// registers would crowd the matcher's).
    #[cold]
    #[inline(never)]
    fn run_on(&self, hay: &[u8], pos: usize) -> usize {
        let limit = hay.len().min(pos + self.max);
        let mut p = pos;
        loop {
            // The first byte not in the set; 8 when all are.
            let run = (self.stops(word_at(hay, p)).trailing_zeros() / 8) as usize;
            if run < 8 || p + 8 >= limit {
                return (p + run).min(limit);
            }
            p += 8;
        }
    }
}

/// `count` runs of one span, each after the first preceded by the byte
/// `sep`: `(?:[0-9]{1,3}\.){3}[0-9]{1,3}` (every `<HOST>` has one) as one
/// step instead of seven, the span's words set up once ([`fuse_fields`]).
#[derive(Debug, Clone)]
pub(super) struct Fields {
    pub(super) span: Span<1>,
    pub(super) sep: u8,
    pub(super) count: usize,
}

impl Fields {
    /// Where the fields from `pos` end, or `None` when they do not match.
    #[inline(always)]
    pub(super) fn run(&self, hay: &[u8], pos: usize) -> Option<usize> {
        let mut end = self.span.run(hay, pos)?;
        for _ in 1..self.count {
            if hay.get(end) != Some(&self.sep) {
                return None;
            }
            end = self.span.run(hay, end + 1)?;
        }
        Some(end)
    }
}
