//! [`ShortText`]: an owned string that keeps up to 30 bytes inline.
//!
//! Captured user names and failure ids travel with matched lines: from the
//! line into its connection's multi-line state, and out in each
//! [`Hit`](super::Hit). They are nearly always short, so keeping them inline
//! makes handing one on a copy of 32 bytes: no allocation, and no reference
//! count to update (an atomic operation per line with `Arc<str>`).

use std::fmt;
use std::ops::Deref;

/// Longest text kept inline.
const INLINE: usize = 30;

/// An owned string, inline up to 30 bytes, boxed beyond. Dereferences to
/// `str`.
#[derive(Clone)]
pub struct ShortText(Repr);

#[derive(Clone)]
enum Repr {
    /// `bytes[..len]` is the text (whole UTF-8, copied from a `&str`).
    Inline {
        len: u8,
        bytes: [u8; INLINE],
    },
    Boxed(Box<str>),
}

impl ShortText {
    pub fn new(text: &str) -> ShortText {
        let b = text.as_bytes();
        match (u8::try_from(b.len()), b.len() <= INLINE) {
            (Ok(len), true) => ShortText(Repr::Inline { len, bytes: padded(b) }),
            _ => ShortText(Repr::Boxed(text.into())),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Boxed(b) => b.as_bytes(),
        }
    }

    pub fn as_str(&self) -> &str {
        // Inline bytes are a whole `&str` copied, so always valid UTF-8:
        // the fallback is never taken.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

/// `src` (at most `N` bytes) at the start of `N` zero bytes, copied in
/// fixed-size pieces (a copy of unknown length is a `memcpy` call, which
/// costs more than these few bytes).
pub(crate) fn padded<const N: usize>(src: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let n = src.len().min(N);
    let mut piece = |size: usize, from: usize| {
        if let (Some(to), Some(bytes)) = (out.get_mut(from..from + size), src.get(from..from + size)) {
            to.copy_from_slice(bytes);
        }
    };
    // Whole words, then one last (overlapping) word or smaller piece that
    // ends at `n`: bytes written twice are written alike.
    if n >= 8 {
        let mut at = 0;
        while at + 8 <= n {
            piece(8, at);
            at += 8;
        }
        piece(8, n - 8);
    } else if n >= 4 {
        piece(4, 0);
        piece(4, n - 4);
    } else if n >= 2 {
        piece(2, 0);
        piece(2, n - 2);
    } else if n == 1 {
        piece(1, 0);
    }
    out
}

/// The eight bytes of `s` from `at` as a little-endian word; `None` when
/// fewer than eight remain. (Short texts and literals are compared and
/// hashed a word at a time rather than through `memcmp`.)
#[inline(always)]
pub(crate) fn le_word(s: &[u8], at: usize) -> Option<u64> {
    s.get(at..).and_then(<[u8]>::first_chunk::<8>).map(|w| u64::from_le_bytes(*w))
}

/// `src` (at most `8 * W` bytes) as little-endian words, zero-padded,
/// read in whole words: a key built this way and then hashed or compared
/// word by word is read back as it was written (a wider read of data just
/// written in narrower pieces stalls the processor).
pub(crate) fn words<const W: usize>(src: &[u8]) -> [u64; W] {
    let mut out = [0u64; W];
    let n = src.len().min(8 * W);
    let word = |at: usize| le_word(src, at).unwrap_or(0);
    for (i, w) in out.iter_mut().enumerate().take(n / 8) {
        *w = word(8 * i);
    }
    let rem = n % 8;
    if let Some(last) = out.get_mut(n / 8)
        && rem > 0
    {
        *last = if n >= 8 { word(n - 8) >> (8 * (8 - rem)) } else { small_word(&src[..n]) };
    }
    out
}

/// Up to 7 bytes as a little-endian word, from two overlapping reads.
fn small_word(b: &[u8]) -> u64 {
    let n = b.len();
    // The last read ends at `n`; shifted past the first, the bytes they
    // share are or-ed with themselves.
    if let (Some(first), Some(last)) = (b.first_chunk::<4>(), b.last_chunk::<4>()) {
        u64::from(u32::from_le_bytes(*first)) | (u64::from(u32::from_le_bytes(*last)) << (8 * (n - 4)))
    } else if let (Some(first), Some(last)) = (b.first_chunk::<2>(), b.last_chunk::<2>()) {
        u64::from(u16::from_le_bytes(*first)) | (u64::from(u16::from_le_bytes(*last)) << (8 * (n - 2)))
    } else {
        b.first().map_or(0, |&x| u64::from(x))
    }
}

/// Whether two short byte strings are equal, compared word by word (no
/// `memcmp` call for a few bytes).
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return small_word(a) == small_word(b);
    }
    // Most texts compared (connection ids, addresses, users) fit in two
    // words: the first and the last, which may overlap.
    if n <= 16 {
        return le_word(a, 0) == le_word(b, 0) && le_word(a, n - 8) == le_word(b, n - 8);
    }
    let mut at = 0;
    while at + 8 < n {
        if le_word(a, at) != le_word(b, at) {
            return false;
        }
        at += 8;
    }
    le_word(a, n - 8) == le_word(b, n - 8)
}

/// Up to `N` bytes kept inline: what a memo remembers of the last text it
/// was asked about, to tell whether the next text is the same one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InlineBytes<const N: usize> {
    len: usize,
    bytes: [u8; N],
}

impl<const N: usize> InlineBytes<N> {
    /// `None` when `text` is longer than `N` bytes.
    pub fn new(text: &[u8]) -> Option<Self> {
        (text.len() <= N).then(|| InlineBytes { len: text.len(), bytes: padded(text) })
    }

    /// Whether `text` is the text kept.
    #[inline(always)]
    pub fn is(&self, text: &[u8]) -> bool {
        text.len() == self.len && same_bytes(text, &self.bytes[..self.len])
    }
}

impl From<&str> for ShortText {
    fn from(text: &str) -> Self {
        ShortText::new(text)
    }
}

impl Deref for ShortText {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for ShortText {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for ShortText {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            // Fixed-size compares (bytes past `len` are zero in both).
            (Repr::Inline { len: a, bytes: x }, Repr::Inline { len: b, bytes: y }) => a == b && x == y,
            _ => self.as_bytes() == other.as_bytes(),
        }
    }
}

impl Eq for ShortText {}

impl PartialEq<str> for ShortText {
    fn eq(&self, other: &str) -> bool {
        same_bytes(self.as_bytes(), other.as_bytes())
    }
}

impl std::hash::Hash for ShortText {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for ShortText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for ShortText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_texts_round_trip() {
        for text in ["", "root", "ü-user", &"x".repeat(INLINE), &"y".repeat(INLINE + 1), &"é".repeat(40)] {
            let t = ShortText::new(text);
            assert_eq!((t.as_str(), &*t, t.to_string()), (text, text, text.to_string()));
            assert_eq!(t, ShortText::from(text));
            assert!(t == *text);
        }
        assert_ne!(ShortText::new("root"), ShortText::new("roo"));
        assert_eq!(std::mem::size_of::<Option<ShortText>>(), 32);
        for n in 0..=12 {
            let src: Vec<u8> = (1..=n as u8).collect();
            let got: [u8; 12] = padded(&src);
            assert_eq!(&got[..n], &src[..], "{n}");
            assert!(got[n..].iter().all(|&b| b == 0), "{n}");
        }
        for n in 0..=32 {
            let src: Vec<u8> = (1..=n as u8).collect();
            let mut want = [0u8; 32];
            want[..n].copy_from_slice(&src);
            let want: Vec<u64> = want.chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
            assert_eq!(words::<4>(&src).to_vec(), want, "{n}");
            let mut other = src.clone();
            assert!(same_bytes(&src, &other));
            if let Some(last) = other.last_mut() {
                *last = 0;
                assert!(!same_bytes(&src, &other), "{n}");
            }
        }
    }
}
