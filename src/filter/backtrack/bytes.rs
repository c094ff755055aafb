//! Byte-level pieces the matcher is built from: byte sets ([`ByteSet`]),
//! their 256-entry lookup tables ([`Table`]), reading the input eight bytes
//! at a time ([`word`], [`word_at`]), and how common a byte is in log text
//! ([`commonness`]), which decides what a search looks for.

use regex_syntax::hir::Class;

use crate::filter::text::le_word;

/// A set of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ByteSet(pub(crate) [u64; 4]);

impl ByteSet {
    pub fn insert(&mut self, b: u8) {
        self.0[usize::from(b >> 6)] |= 1u64 << (b & 63);
    }

    pub fn union(&mut self, other: &ByteSet) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a |= b;
        }
    }

    pub fn contains(&self, b: u8) -> bool {
        self.0[usize::from(b >> 6)] & (1u64 << (b & 63)) != 0
    }

    pub(super) fn from_class(class: &Class) -> Option<ByteSet> {
        let mut set = [0u64; 4];
        let mut add = |lo: u32, hi: u32| {
            for b in lo..=hi {
                set[(b >> 6) as usize] |= 1u64 << (b & 63);
            }
        };
        match class {
            Class::Bytes(c) => c.ranges().iter().for_each(|r| add(u32::from(r.start()), u32::from(r.end()))),
            Class::Unicode(c) => {
                for r in c.ranges() {
                    if u32::from(r.end()) > 0x7f {
                        return None;
                    }
                    add(u32::from(r.start()), u32::from(r.end()));
                }
            }
        }
        Some(ByteSet(set))
    }
}

/// A 256-entry byte-membership table: one lookup per byte.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Table(pub(super) [bool; 256]);

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Table({} bytes)", self.0.iter().filter(|&&b| b).count())
    }
}

impl Table {
    pub(super) fn of(set: &ByteSet) -> Table {
        let mut t = [false; 256];
        for (b, slot) in t.iter_mut().enumerate() {
            *slot = set.contains(b as u8);
        }
        Table(t)
    }
}

/// The eight bytes of `hay` from `pos` as a little-endian word, `None`
/// when fewer remain. Only for inputs shorter than 4 GiB ([`Program::run`]
/// leaves longer ones to regex-automata): a position then fits in 32 bits,
/// and saying so lets the compiler check the word's bounds in one compare
/// (`pos + 8` cannot overflow).
#[inline(always)]
pub(super) fn word(hay: &[u8], pos: usize) -> Option<u64> {
    debug_assert!(u32::try_from(pos).is_ok());
    let pos = pos as u32 as usize;
    hay.get(pos..pos + 8).and_then(<[u8]>::first_chunk::<8>).map(|w| u64::from_le_bytes(*w))
}

/// The eight bytes of `hay` from `at`, little-endian, zero-filled past its
/// end (`at` is at most its length). Callers cap what they find at the end.
#[inline(always)]
pub(super) fn word_at(hay: &[u8], at: usize) -> u64 {
    if let Some(word) = le_word(hay, at) {
        return word;
    }
    match hay.len().checked_sub(8) {
        // The last word, shifted down: `at` is past `hay.len() - 8`.
        Some(last) => le_word(hay, last).unwrap_or(0).checked_shr(8 * (at - last) as u32).unwrap_or(0),
        None => crate::filter::text::words::<1>(hay.get(at..).unwrap_or_default())[0],
    }
}

/// `.` in the byte syntax: every byte but `\n`.
pub(super) const ANY_BUT_NEWLINE: ByteSet = ByteSet([!(1u64 << b'\n'), u64::MAX, u64::MAX, u64::MAX]);

/// How common a byte is in log text, roughly (higher is more common): a
/// run that must be followed by a literal searches for the literal's least
/// common byte, so a search usually stops only where the literal is.
pub(super) const fn commonness(b: u8) -> u8 {
    match b {
        b' ' => 255,
        b'e' | b't' | b'a' | b'o' | b'i' | b'n' | b's' | b'r' => 200,
        b'0'..=b'9' => 180,
        b'h' | b'l' | b'd' | b'c' | b'u' | b'm' => 160,
        b'.' | b':' | b'-' | b'/' | b'=' | b'_' => 140,
        b'a'..=b'z' => 120,
        b'A'..=b'Z' => 80,
        _ => 40,
    }
}
