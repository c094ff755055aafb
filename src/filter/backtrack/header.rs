//! Reusing a prefregex's match for the next line that starts alike
//! ([`Program::cache_header`]): the cache's byte classes
//! ([`HeaderCache`]), the stream's last match ([`HeaderMemo`], kept in
//! the caller's `Scratch`), and the match it answers with
//! ([`HeaderMatch`]).

use std::sync::Arc;

use super::bytes::ByteSet;
use super::exec::OutOfSteps;
use super::ops::{Op, SECONDS_ANY, Step};
use super::{Program, Run, Scratch};

/// How a prefregex's match is reused from line to line (see
/// [`Program::cache_header`]).
#[derive(Debug, Clone)]
pub(super) struct HeaderCache {
    /// The slot of the content group's start.
    content_slot: usize,
    /// Byte classes for the bytes before the content: bytes in one class
    /// are treated alike by every step of the program (a byte of a literal
    /// is a class of its own).
    head_classes: [u8; 256],
    /// Byte classes for the content's first byte: alike for every choice,
    /// and for every run that can stop there.
    start_classes: [u8; 256],
}

/// A stream's last prefregex match, for [`HeaderCache`].
#[derive(Debug, Clone, Default)]
pub(super) struct HeaderMemo {
    pub(super) uid: u64,
    /// The line's bytes before the content (their classes are the cache's
    /// classes of these bytes: the memo is only read by its program).
    pub(super) head: Vec<u8>,
    /// The class of the content's first byte.
    pub(super) class: u8,
    /// The line's length, and the slots as the match left them (a slot
    /// equal to the length is the content's end, the length of the next
    /// line).
    pub(super) len: usize,
    pub(super) slots: Vec<usize>,
    /// Lines answered from the memo (for tests).
    #[cfg(test)]
    pub(super) hits: usize,
}

impl Program {
    /// Makes the program, a prefregex whose content group `content_group`
    /// is `.+` or `.*` up to the end, reuse its match from one line to the
    /// next when the two lines start alike: as many bytes before the
    /// content, each of the same class (bytes every step of the program
    /// treats alike: `sshd[1234]` and `sshd[5678]` start alike), and a first
    /// content byte of the same class. `false` (and nothing changes) when
    /// the program has a run that searches ahead.
    ///
    /// Why the match is then the same: a match that did not backtrack
    /// decided every step by the bytes up to the content's start (a step
    /// looks at most at the byte where its run stops or its choice is made,
    /// and positions only grow along a match), so on bytes of the same
    /// classes every step decides the same and the groups are where they
    /// were; past the start it only ran the content to the end, which any
    /// non-empty rest of a line without a newline allows. A run that may
    /// give bytes back searches the rest of the line for what follows it,
    /// so a program with one is left alone.
    pub fn cache_header(&mut self, content_group: usize) -> bool {
        if self.ops.iter().any(|op| matches!(op, Op::Run { .. })) || 2 * content_group >= self.slots {
            return false;
        }
        let content_slot = 2 * content_group;
        // A choice that looks at the byte after its own could look past
        // the content's start, which the classes do not cover: the
        // program's choices look at one byte only.
        self.seconds.iter_mut().for_each(|t| *t = SECONDS_ANY);
        for op in &mut self.ops {
            if let Op::Seq(steps, _) = op {
                for step in steps.iter_mut() {
                    if let Step::Branch { seconds, .. } = step {
                        *seconds = Arc::new(SECONDS_ANY);
                    }
                }
            }
        }
        let membership = |set: &ByteSet| std::array::from_fn(|b| u16::from(set.contains(b as u8)));
        // Before the content, every table and every literal byte counts.
        let mut literal_bytes = ByteSet([0; 4]);
        let mut add = |bytes: &[u8]| bytes.iter().for_each(|&b| literal_bytes.insert(b));
        for op in &self.ops {
            match op {
                Op::Lit(lit) => add(&lit.bytes),
                // A fused dotted quad's separator is a literal byte too (its
                // unfused `Op::Lit` usually remains in the ops, but nothing
                // requires that).
                Op::Seq(steps, _) => steps.iter().for_each(|s| match s {
                    Step::Lit(lit) => add(&lit.bytes),
                    Step::Fields(fields) => add(&[fields.sep]),
                    _ => {}
                }),
                _ => {}
            }
        }
        if let Some(lead) = &self.lead {
            add(&lead.bytes);
        }
        let singles = (0..=255u8).filter(|&b| literal_bytes.contains(b)).map(|one| {
            let mut set = ByteSet([0; 4]);
            set.insert(one);
            membership(&set)
        });
        let tables = self.tables.iter().map(|t| t.0.map(u16::from));
        let head_classes = refine(tables.chain(self.choices.iter().copied()).chain(singles));
        // At the content's start, only a choice made there (any choice
        // table, to be safe) or a run that stops there looks at the byte.
        let stops = self.run_stops.iter().filter(|(slot, _)| *slot == content_slot);
        let start_classes = refine(self.choices.iter().copied().chain(stops.map(|(_, set)| membership(set))));
        self.header = Some(Box::new(HeaderCache { content_slot, head_classes, start_classes }));
        true
    }

    /// Whether the stream's last header (a line without a newline) answers
    /// for `hay` (its slots are then `scratch`'s memo's).
    pub(super) fn header_hit(&self, cache: &HeaderCache, hay: &[u8], scratch: &mut Scratch) -> bool {
        let memo = &scratch.header;
        let cut = memo.head.len();
        if memo.uid == self.uid
            && hay.get(cut).is_some_and(|&b| cache.start_classes[usize::from(b)] == memo.class)
            && head_alike(&cache.head_classes, &memo.head, &hay[..cut])
        {
            #[cfg(test)]
            {
                scratch.header.hits += 1;
            }
            return true;
        }
        false
    }

    /// [`Program::run`] for a cached header that did not answer (lines
    /// without a newline): runs, and remembers a match for the next line.
    pub(super) fn run_cached(&self, cache: &HeaderCache, hay: &[u8], scratch: &mut Scratch) -> Run {
        match self.exec(hay, scratch) {
            Ok(true) => {
                if !scratch.backtracked {
                    self.remember_header(cache, hay, scratch);
                }
                Run::Match
            }
            Ok(false) => Run::NoMatch,
            Err(OutOfSteps) => Run::GaveUp,
        }
    }

    /// Keeps a match that did not backtrack for the next line, when its
    /// slots are all up to the content's start or at the line's end.
    fn remember_header(&self, cache: &HeaderCache, hay: &[u8], scratch: &mut Scratch) {
        let Scratch { slots, header: memo, .. } = scratch;
        let Some(&cut) = slots.get(cache.content_slot) else { return };
        let Some(&first) = hay.get(cut) else { return };
        if slots.iter().any(|&v| v != usize::MAX && v > cut && v != hay.len()) {
            return;
        }
        memo.uid = self.uid;
        memo.head.clear();
        memo.head.extend_from_slice(&hay[..cut]);
        memo.class = cache.start_classes[usize::from(first)];
        memo.len = hay.len();
        memo.slots.clear();
        memo.slots.extend_from_slice(slots);
    }
}

/// Whether `head` is as long as `old` (a remembered head) and, byte by
/// byte, of the same classes. Compared eight bytes at a time: only the
/// bytes that differ (usually a few digits of a pid) are looked up, taken
/// from the two words rather than indexed again.
pub(super) fn head_alike(classes: &[u8; 256], old: &[u8], head: &[u8]) -> bool {
    let n = head.len();
    if old.len() != n {
        return false;
    }
    let alike = |a: u8, b: u8| classes[usize::from(a)] == classes[usize::from(b)];
    if n < 8 {
        return head.iter().zip(old).all(|(&a, &b)| a == b || alike(a, b));
    }
    // `fresh` masks the bytes not compared yet.
    let word_alike = |a: &[u8; 8], b: &[u8; 8], fresh: u64| {
        let (a, b) = (u64::from_le_bytes(*a), u64::from_le_bytes(*b));
        let mut diff = (a ^ b) & fresh;
        while diff != 0 {
            let shift = diff.trailing_zeros() & !7;
            if !alike((a >> shift) as u8, (b >> shift) as u8) {
                return false;
            }
            diff &= !(0xFF << shift);
        }
        true
    };
    let (words, old_words) = (head.as_chunks::<8>().0, old.as_chunks::<8>().0);
    if !words.iter().zip(old_words).all(|(a, b)| word_alike(a, b, u64::MAX)) {
        return false;
    }
    // The rest as one word overlapping the one before it, whose bytes
    // were compared already.
    let rest = n % 8;
    rest == 0
        || matches!((head.last_chunk::<8>(), old.last_chunk::<8>()),
            (Some(a), Some(b)) if word_alike(a, b, u64::MAX << (8 * (8 - rest))))
}

/// Byte classes: bytes every one of `tables` gives the same entry are in
/// one class.
pub(super) fn refine(tables: impl Iterator<Item = [u16; 256]>) -> [u8; 256] {
    let mut classes = [0u8; 256];
    for table in tables {
        let mut seen: Vec<(u8, u16)> = Vec::new();
        for (b, class) in classes.iter_mut().enumerate() {
            let key = (*class, table[b]);
            *class = match seen.iter().position(|k| *k == key) {
                Some(i) => i as u8,
                None => {
                    seen.push(key);
                    // At most 256 classes: one per byte.
                    (seen.len() - 1) as u8
                }
            };
        }
    }
    classes
}

/// A match the cached header answered for: the memo's slots, as on the
/// line they were taken from, where a slot equal to that line's length
/// (the content's end) stands for the new line's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeaderMatch<'s> {
    slots: &'s [usize],
    len: usize,
}

impl<'s> HeaderMatch<'s> {
    pub(super) fn of(memo: &'s HeaderMemo) -> HeaderMatch<'s> {
        HeaderMatch { slots: &memo.slots, len: memo.len }
    }

    #[inline(always)]
    fn on(&self, slot: usize, line_len: usize) -> usize {
        if slot == self.len { line_len } else { slot }
    }

    /// The slots on a line of `line_len` bytes.
    pub fn slots_on(self, line_len: usize) -> impl Iterator<Item = usize> + 's {
        self.slots.iter().map(move |&v| self.on(v, line_len))
    }

    /// Start and end of group `group` on a line of `line_len` bytes
    /// (`usize::MAX` for a group that did not participate).
    #[inline(always)]
    pub fn span_on(&self, group: usize, line_len: usize) -> Option<(usize, usize)> {
        match self.slots.get(2 * group..2 * group + 2) {
            Some(&[s, e]) => Some((self.on(s, line_len), self.on(e, line_len))),
            _ => None,
        }
    }
}
