//! A small backtracking matcher for capture extraction on the hot path.
//!
//! The gate (a DFA, or a first-byte table) already knows which patterns can
//! match a line; what remains is finding the groups. regex-automata's
//! capture engines are general and cost 1-2 µs on a typical 100-byte sshd
//! line; this one runs the same pattern in a few hundred nanoseconds because
//! log patterns are mostly literals and single-byte-class runs (`\S+`, `.*`,
//! `[0-9]{1,3}`):
//! - a literal is word compares;
//! - a class is a 256-entry table; a class run consumes its whole extent at
//!   once (eight bytes looked up at a time, the end found in a mask; for
//!   sets made of a few byte ranges, like `\S` or `[0-9]`, eight bytes
//!   tested at once with word arithmetic) and,
//!   when backtracking, jumps straight to the positions where the following
//!   literal can start (found by its rarest byte);
//! - a choice looks up the next byte in a table saying where to go: to the
//!   one branch that can start with it (through any further choices the
//!   byte decides), or to both, pushing the second to backtrack into;
//! - a chain of steps that cannot backtrack (literals, classes, runs that
//!   must take their whole extent, saves) runs as one instruction, and
//!   goes on through choices the way the bytes of log text most likely
//!   lead, leaving the chain only when a line goes another way;
//! - a prefregex whose content runs to the end of the line reuses its match
//!   for the next line that starts alike ([`Program::cache_header`]).
//!
//! It follows the same leftmost-first (backtracking-priority) semantics as
//! the regex crate, on the same byte-oriented ASCII syntax (see
//! `compile::ascii_syntax`), for patterns anchored with `^`. It supports
//! what that syntax produces except look-arounds other than `^`/`$`; for
//! anything else, or when a line would take more than a step budget
//! (backtracking can be exponential), it returns `None` and the caller uses
//! regex-automata, which is exact and linear. Property tests compare both.
//!
//! A pattern is compiled in two forms: `Inst`, a plain instruction list the
//! analyses (guards, atomic runs, first bytes) work on, then lowered to
//! `Op`, the form that runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use regex_syntax::hir::{Class, Hir, HirKind, Look};

use super::text::le_word;
/// Parses `pattern` in the byte-oriented ASCII syntax the fast matcher runs
/// (the syntax of `compile::ascii_syntax`: Unicode and UTF-8 modes off, the
/// other options at their defaults); `None` when it does not parse (the
/// caller reports regex-automata's message for it).
pub(crate) fn parse_ascii(pattern: &str) -> Option<Hir> {
    regex_syntax::ParserBuilder::new().unicode(false).utf8(false).build().parse(pattern).ok()
}

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

    fn from_class(class: &Class) -> Option<ByteSet> {
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

/// The compile-time instruction list (see the module docs).
#[derive(Debug, Clone)]
enum Inst {
    Lit(Box<[u8]>),
    Class(ByteSet),
    /// A run of `min..=max` bytes of a set, greedy or lazy; `follow` is the
    /// literal the continuation must start with (empty when not fixed), so
    /// backtracking visits only the positions where it occurs.
    Run {
        set: ByteSet,
        min: usize,
        max: usize,
        greedy: bool,
        follow: Box<[u8]>,
        /// The continuation cannot start with a byte of the set (nor match
        /// nothing before a byte of it): only the full extent can be
        /// followed, so there is nothing to backtrack into.
        atomic: bool,
    },
    /// Try `.0` first, then `.1`.
    Split(usize, usize),
    Jmp(usize),
    Save(usize),
    Start,
    End,
    Match,
}

/// Choices and backtracks a line may take (plus 8 per byte) before the
/// matcher gives up.
const STEP_BUDGET_BASE: usize = 4096;

/// Programs longer than this are left to regex-automata.
const MAX_INSTS: usize = 20_000;

/// A compiled program for one pattern.
#[derive(Debug, Clone)]
pub(crate) struct Program {
    ops: Vec<Op>,
    /// Byte-membership tables of the classes, runs and sequences.
    tables: Vec<Table>,
    /// Per choice: for each byte, where execution goes (see `Op::Split`).
    choices: Vec<[u16; 256]>,
    slots: usize,
    /// The literal every match starts with, checked before anything is set up.
    lead: Option<Literal>,
    /// The bytes a match can start with (`None`: any, or empty).
    first: Option<ByteSet>,
    /// Without a leading literal: the bytes each of a match's first few
    /// bytes can be (every match has at least that many).
    starts: Box<[ByteSet]>,
    /// A literal every match has after a `.*`-like run, long enough to be
    /// worth a search before running (a pattern that fails only at its
    /// end, after runs and choices, costs a whole run to find that out).
    required: Option<Box<memchr::memmem::Finder<'static>>>,
    /// Set for a prefregex whose content runs to the end of the line
    /// ([`Program::cache_header`]).
    header: Option<Box<HeaderCache>>,
    /// Per run, the slots it can be saved into right where the run stops
    /// (nothing consumed in between), with the run's set: the byte a run
    /// stops at is looked at by the run.
    run_stops: Box<[(usize, ByteSet)]>,
    /// Identifies the program (clones share it), so a stream's cached
    /// header is only used with the program that made it.
    uid: u64,
}

/// Source of [`Program::uid`].
static NEXT_UID: AtomicU64 = AtomicU64::new(1);

/// How a prefregex's match is reused from line to line (see
/// [`Program::cache_header`]).
#[derive(Debug, Clone)]
struct HeaderCache {
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
struct HeaderMemo {
    uid: u64,
    /// The line's bytes before the content (their classes are the cache's
    /// classes of these bytes: the memo is only read by its program).
    head: Vec<u8>,
    /// The class of the content's first byte.
    class: u8,
    /// The line's length, and the slots as the match left them (a slot
    /// equal to the length is the content's end, the length of the next
    /// line).
    len: usize,
    slots: Vec<usize>,
    /// Lines answered from the memo (for tests).
    #[cfg(test)]
    hits: usize,
}

/// A 256-entry byte-membership table: one lookup per byte.
#[derive(Clone, PartialEq, Eq)]
struct Table([bool; 256]);

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Table({} bytes)", self.0.iter().filter(|&&b| b).count())
    }
}

impl Table {
    fn of(set: &ByteSet) -> Table {
        let mut t = [false; 256];
        for (b, slot) in t.iter_mut().enumerate() {
            *slot = set.contains(b as u8);
        }
        Table(t)
    }
}

/// A choice entry: no branch can start with the byte.
const FAIL: u16 = 0;
/// A choice entry: both branches can; try the first, keep the second.
const BOTH: u16 = u16::MAX;
// Other entries are an instruction index plus one. Programs are capped well
// below that range.
const _: () = assert!(MAX_INSTS + 1 < BOTH as usize);

/// The instructions that run.
#[derive(Debug, Clone)]
enum Op {
    Lit(Literal),
    Class(usize),
    /// A run that may have to give back bytes (see `Inst::Run`).
    Run {
        table: usize,
        min: usize,
        max: usize,
        greedy: bool,
        /// `.` (every byte but `\n`): the extent is the next newline.
        dot: bool,
        follow: Option<Literal>,
    },
    /// Steps that cannot backtrack, in order; then `next`.
    Seq(Box<[Step]>, usize),
    /// `choice` indexes `Program::choices`, a table per next byte: FAIL,
    /// BOTH, or where to continue (one branch, resolved through the choices
    /// after it that the same byte decides); `at_end` is the entry for the
    /// end of the input.
    Split {
        first: usize,
        second: usize,
        choice: usize,
        at_end: u16,
    },
    Jmp(usize),
    Save(usize),
    Start,
    End,
    Match,
}

/// One step of an `Op::Seq`.
#[derive(Debug, Clone)]
enum Step {
    Lit(Literal),
    Class(usize),
    /// A run that takes its whole extent (`min..=max` bytes of the table).
    Run {
        table: usize,
        min: usize,
        max: usize,
    },
    /// The same for a set that [`Span`] tests a word at a time, by the
    /// number of ASCII ranges it takes (a separate variant each, so the
    /// count is not a branch per run).
    /// (Payloads are shared: a chain that reaches shared code copies its
    /// steps, see `Lowering::lower`.)
    Span1(Arc<Span<1>>),
    Span2(Arc<Span<2>>),
    Span3(Arc<Span<3>>),
    /// Runs of one `Span` separated by a byte (see [`Fields`]).
    Fields(Arc<Fields>),
    /// The same for `.`.
    Dot {
        min: usize,
        max: usize,
    },
    /// Records the position `back` bytes before the current one (a save
    /// moved after the literal that follows it, so literals merge).
    Save {
        slot: usize,
        back: usize,
    },
    End,
    /// An `Op::Split` inside a sequence: the sequence goes on when the
    /// choice leads to instruction `next` (for [`BOTH`]: into `first`, with
    /// `second` kept to backtrack into), and is left for wherever else it
    /// leads.
    Branch {
        /// The choice's table: a shared copy of the one in
        /// `Program::choices`, so no index to check on the way.
        choice: Arc<[u16; 256]>,
        at_end: u16,
        first: usize,
        second: usize,
        next: usize,
    },
}

/// Where an `Op::Seq` ends.
enum SeqEnd {
    /// Its steps failed: backtrack.
    Fail,
    /// Go on at `pc` from `pos` (its end, or a branch that left it).
    At { pos: usize, pc: usize },
}

/// Longest chain of steps fused into one `Op::Seq` (chains follow jumps
/// and branches, so a shared tail is copied into each chain that reaches
/// it).
const MAX_SEQ_STEPS: usize = 64;

/// Steps a program's sequences may hold in all, per instruction (plus a
/// base): once spent, chains stop at branches instead of following them,
/// which bounds the copies.
const SEQ_STEPS_PER_INST: usize = 4;
const SEQ_STEPS_BASE: usize = 256;

/// A literal with its first and last eight bytes as words, so comparing
/// it is one or two word compares for the usual short literals.
#[derive(Debug, Clone)]
struct Literal {
    /// Shared by the sequences that copy the literal.
    bytes: Arc<[u8]>,
    /// The first `min(len, 8)` bytes, little-endian, and the mask of them.
    head: u64,
    head_mask: u64,
    /// The last eight bytes (when the literal has 9 to 16).
    tail: u64,
    /// The literal's least common byte (by [`commonness`]) and its offset:
    /// what a run searches for when it looks for where the literal occurs.
    rare: u8,
    rare_at: usize,
}

impl Literal {
    fn new(bytes: &[u8]) -> Literal {
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

    fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the literal occurs at `pos`.
    #[inline(always)]
    fn at(&self, hay: &[u8], pos: usize) -> bool {
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

/// A run that takes its whole extent (`min..=max` bytes), for a set that
/// word arithmetic can test eight bytes at once: its ASCII bytes (or the
/// ASCII bytes not in it) are `N` ranges, and the bytes from 0x80 up are all
/// in it or all out (`\s`, `\S`, `[0-9]`, `[a-z_]`, hex digits). Where a
/// table run costs a lookup, a shift and an or per byte, this costs about
/// five operations per range for all eight.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Span<const N: usize> {
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
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

impl<const N: usize> Span<N> {
    /// The span for `set`, when it has that shape with `N` ranges exactly
    /// (the fewer of the set's ASCII ranges and its complement's).
    fn of(set: &ByteSet, min: usize, max: usize) -> Option<Span<N>> {
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
    fn run(&self, hay: &[u8], pos: usize) -> Option<usize> {
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

/// The eight bytes of `hay` from `pos` as a little-endian word, `None`
/// when fewer remain. Only for inputs shorter than 4 GiB ([`Program::run`]
/// leaves longer ones to regex-automata): a position then fits in 32 bits,
/// and saying so lets the compiler check the word's bounds in one compare
/// (`pos + 8` cannot overflow).
#[inline(always)]
fn word(hay: &[u8], pos: usize) -> Option<u64> {
    debug_assert!(u32::try_from(pos).is_ok());
    let pos = pos as u32 as usize;
    hay.get(pos..pos + 8).and_then(<[u8]>::first_chunk::<8>).map(|w| u64::from_le_bytes(*w))
}

/// The eight bytes of `hay` from `at`, little-endian, zero-filled past its
/// end (`at` is at most its length). Callers cap what they find at the end.
#[inline(always)]
fn word_at(hay: &[u8], at: usize) -> u64 {
    if let Some(word) = le_word(hay, at) {
        return word;
    }
    match hay.len().checked_sub(8) {
        // The last word, shifted down: `at` is past `hay.len() - 8`.
        Some(last) => le_word(hay, last).unwrap_or(0).checked_shr(8 * (at - last) as u32).unwrap_or(0),
        None => super::text::words::<1>(hay.get(at..).unwrap_or_default())[0],
    }
}

/// `count` runs of one span, each after the first preceded by the byte
/// `sep`: `(?:[0-9]{1,3}\.){3}[0-9]{1,3}` (every `<HOST>` has one) as one
/// step instead of seven, the span's words set up once ([`fuse_fields`]).
#[derive(Debug, Clone)]
struct Fields {
    span: Span<1>,
    sep: u8,
    count: usize,
}

impl Fields {
    /// Where the fields from `pos` end, or `None` when they do not match.
    #[inline(always)]
    fn run(&self, hay: &[u8], pos: usize) -> Option<usize> {
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

/// Appends `step` to a sequence, fusing each `span, sep, span, ..., span`
/// (one single-range span, one single-byte literal) into a [`Fields`]
/// step. The sequence matches the same: it is the same steps, run one
/// after the other. (The literal before a span is final: [`push_step`]
/// merges only into the last step but saves.) Returns how many steps
/// fewer the sequence has for it.
fn push_fused(steps: &mut Vec<Step>, step: Step) -> usize {
    if let Step::Span1(span) = &step {
        match steps.as_mut_slice() {
            [.., Step::Span1(first), Step::Lit(sep)] if span == first && sep.len() == 1 => {
                let fields = Fields { span: Span::clone(span), sep: sep.bytes[0], count: 2 };
                steps.truncate(steps.len() - 2);
                steps.push(Step::Fields(Arc::new(fields)));
                return 2;
            }
            [.., Step::Fields(fields), Step::Lit(sep)]
                if **span == fields.span && sep.bytes[..] == [fields.sep] =>
            {
                Arc::make_mut(fields).count += 1;
                steps.pop();
                return 2;
            }
            _ => {}
        }
    }
    steps.push(step);
    0
}

/// Appends `step` to a sequence, merging a literal into the literal before
/// it; saves between the two move after the merged literal (recording the
/// same position, counted back from its end), so `"]" save ": "` runs as
/// `"]: " save`.
fn push_step(steps: &mut Vec<Step>, step: Step) {
    if let Step::Lit(lit) = &step {
        let before = steps.iter().rposition(|s| !matches!(s, Step::Save { .. }));
        if let Some(k) = before
            && let Some(Step::Lit(prev)) = steps.get(k)
        {
            let merged = Literal::new(&[&prev.bytes[..], &lit.bytes[..]].concat());
            steps[k] = Step::Lit(merged);
            for later in &mut steps[k + 1..] {
                if let Step::Save { back, .. } = later {
                    *back += lit.len();
                }
            }
            return;
        }
    }
    steps.push(step);
}

/// What a match continuing from an instruction can start with, and whether
/// it can succeed at the end of the input without consuming anything.
#[derive(Debug, Clone, Copy)]
struct Guard {
    set: ByteSet,
    at_end: bool,
}

impl Guard {
    const ANY: Guard = Guard { set: ByteSet([u64::MAX; 4]), at_end: true };
}

struct Compiler {
    insts: Vec<Inst>,
    max_slot: usize,
}

impl Compiler {
    fn push(&mut self, inst: Inst) -> Option<usize> {
        if self.insts.len() >= MAX_INSTS {
            return None;
        }
        self.insts.push(inst);
        Some(self.insts.len() - 1)
    }

    fn patch_split_second(&mut self, at: usize, to: usize) {
        if let Inst::Split(_, second) = &mut self.insts[at] {
            *second = to;
        }
    }

    fn patch_jmp(&mut self, at: usize, to: usize) {
        if let Inst::Jmp(target) = &mut self.insts[at] {
            *target = to;
        }
    }

    fn compile(&mut self, hir: &Hir) -> Option<()> {
        match hir.kind() {
            HirKind::Empty => {}
            HirKind::Literal(lit) => {
                self.push(Inst::Lit(lit.0.clone()))?;
            }
            HirKind::Class(class) => {
                self.push(Inst::Class(ByteSet::from_class(class)?))?;
            }
            HirKind::Look(Look::Start) => {
                self.push(Inst::Start)?;
            }
            HirKind::Look(Look::End) => {
                self.push(Inst::End)?;
            }
            HirKind::Look(_) => return None,
            HirKind::Capture(cap) => {
                let slot = cap.index as usize * 2;
                self.max_slot = self.max_slot.max(slot + 2);
                self.push(Inst::Save(slot))?;
                self.compile(&cap.sub)?;
                self.push(Inst::Save(slot + 1))?;
            }
            HirKind::Concat(subs) => {
                for sub in subs {
                    self.compile(sub)?;
                }
            }
            HirKind::Alternation(subs) => {
                let mut jumps = Vec::new();
                let last = subs.len().checked_sub(1)?;
                for (i, sub) in subs.iter().enumerate() {
                    if i < last {
                        let split = self.push(Inst::Split(0, 0))?;
                        let first = self.insts.len();
                        if let Inst::Split(a, _) = &mut self.insts[split] {
                            *a = first;
                        }
                        self.compile(sub)?;
                        jumps.push(self.push(Inst::Jmp(0))?);
                        let next = self.insts.len();
                        self.patch_split_second(split, next);
                    } else {
                        self.compile(sub)?;
                    }
                }
                let end = self.insts.len();
                for j in jumps {
                    self.patch_jmp(j, end);
                }
            }
            HirKind::Repetition(rep) => {
                let min = rep.min as usize;
                let max = rep.max.map(|m| m as usize);
                // A repeated class or single byte is one run.
                let run_set = match rep.sub.kind() {
                    HirKind::Class(class) => Some(ByteSet::from_class(class)?),
                    HirKind::Literal(lit) if lit.0.len() == 1 => {
                        let mut set = ByteSet([0; 4]);
                        set.insert(lit.0[0]);
                        Some(set)
                    }
                    _ => None,
                };
                if let Some(set) = run_set {
                    self.push(Inst::Run {
                        set,
                        min,
                        max: max.unwrap_or(usize::MAX),
                        greedy: rep.greedy,
                        follow: Box::default(),
                        atomic: false,
                    })?;
                    return Some(());
                }
                // A sub-pattern that can match empty inside an unbounded loop
                // would spin; leave such patterns to regex-automata.
                if max.is_none() && rep.sub.properties().minimum_len().is_none_or(|n| n == 0) {
                    return None;
                }
                for _ in 0..min {
                    self.compile(&rep.sub)?;
                }
                match max {
                    None => {
                        let split = self.push(Inst::Split(0, 0))?;
                        let body = self.insts.len();
                        self.compile(&rep.sub)?;
                        self.push(Inst::Jmp(split))?;
                        let out = self.insts.len();
                        self.insts[split] =
                            if rep.greedy { Inst::Split(body, out) } else { Inst::Split(out, body) };
                    }
                    Some(max) => {
                        let mut splits = Vec::new();
                        for _ in min..max {
                            let split = self.push(Inst::Split(0, 0))?;
                            let body = self.insts.len();
                            splits.push((split, body));
                            self.compile(&rep.sub)?;
                        }
                        let out = self.insts.len();
                        for (split, body) in splits {
                            self.insts[split] =
                                if rep.greedy { Inst::Split(body, out) } else { Inst::Split(out, body) };
                        }
                    }
                }
            }
        }
        Some(())
    }
}

impl Program {
    /// Compiles `pattern` (ASCII byte syntax); `None` if it uses something
    /// this matcher leaves to regex-automata.
    pub fn new(pattern: &str) -> Option<Program> {
        Program::from_hir(&parse_ascii(pattern)?)
    }

    /// [`Program::new`] for a pattern already parsed with [`parse_ascii`].
    pub fn from_hir(hir: &Hir) -> Option<Program> {
        // Only patterns anchored at the start: the gate runs them from 0.
        if !hir.properties().look_set_prefix().contains(Look::Start) {
            return None;
        }
        // Group 0 (the whole match) is not needed: no Save for it.
        // Roughly what log patterns take, to spare the first regrowths.
        let mut c = Compiler { insts: Vec::with_capacity(256), max_slot: 2 };
        c.compile(hir)?;
        c.push(Inst::Match)?;
        // Runs always start at 0, where a leading `^` holds: skip it.
        let targets_zero =
            c.insts.iter().any(|i| matches!(i, Inst::Split(0, _) | Inst::Split(_, 0) | Inst::Jmp(0)));
        if matches!(c.insts.first(), Some(Inst::Start)) && !targets_zero {
            c.insts.remove(0);
            for inst in &mut c.insts {
                match inst {
                    Inst::Split(a, b) => {
                        *a -= 1;
                        *b -= 1;
                    }
                    Inst::Jmp(to) => *to -= 1,
                    _ => {}
                }
            }
        }
        let mut insts = c.insts;
        // Resolve each run's continuation once, not per execution.
        let mut guards = Guards::default();
        for pc in 0..insts.len() {
            if !matches!(insts[pc], Inst::Run { .. }) {
                continue;
            }
            let next_lit = next_literal(&insts, pc + 1);
            let cont = guards.of(&insts, pc + 1);
            if let Inst::Run { set, follow, atomic, .. } = &mut insts[pc] {
                *follow = next_lit;
                *atomic = set.0.iter().zip(cont.set.0).all(|(a, b)| a & b == 0);
            }
        }
        let mut program = Lowering::default().lower(&insts, c.max_slot, &mut guards);
        program.run_stops = run_stops(&insts).into_boxed_slice();
        if program.lead.is_none() {
            program.starts = start_sets(&insts).into_boxed_slice();
        }
        program.required =
            required_literal(hir).map(|lit| Box::new(memchr::memmem::Finder::new(&lit).into_owned()));
        Some(program)
    }

    /// Runs the program anchored at 0. On [`Run::Match`], `scratch.slots`
    /// holds start/end pairs per group (`usize::MAX` when a group did not
    /// participate).
    pub fn run(&self, hay: &[u8], scratch: &mut Scratch) -> Run {
        match self.run_or_header(hay, scratch) {
            Answer::Ran(run) => run,
            Answer::Header(_) => {
                let Scratch { slots, header: memo, .. } = scratch;
                slots.clear();
                slots.extend(HeaderMatch::of(memo).slots_on(hay.len()));
                Run::Match
            }
        }
    }

    /// [`Program::run`], except that a line the cached header answers for
    /// (see [`Program::cache_header`]) gets the memo's slots as they are,
    /// uncopied: the line matches, with its groups where [`HeaderMatch`]
    /// says. `scratch.slots` is then left as it was.
    pub fn run_or_header<'s>(&self, hay: &[u8], scratch: &'s mut Scratch) -> Answer<'s> {
        // A cached header answers first: the line then matches, so the
        // checks below (each a necessary condition of a match) would pass.
        let cached = match &self.header {
            Some(cache) if scratch.newline_free => {
                if self.header_hit(cache, hay, scratch) {
                    return Answer::Header(HeaderMatch::of(&scratch.header));
                }
                Some(cache)
            }
            _ => None,
        };
        // Positions fit in 32 bits (see `word`).
        if u32::try_from(hay.len()).is_err() {
            return Answer::Ran(Run::GaveUp);
        }
        if let Some(lead) = &self.lead
            && !lead.at(hay, 0)
        {
            return Answer::Ran(Run::NoMatch);
        }
        if hay.len() < self.starts.len() || self.starts.iter().zip(hay).any(|(set, &b)| !set.contains(b)) {
            return Answer::Ran(Run::NoMatch);
        }
        if let Some(required) = &self.required
            && required.find(hay).is_none()
        {
            return Answer::Ran(Run::NoMatch);
        }
        if let Some(cache) = cached {
            return Answer::Ran(self.run_cached(cache, hay, scratch));
        }
        Answer::Ran(match self.exec(hay, scratch) {
            Ok(true) => Run::Match,
            Ok(false) => Run::NoMatch,
            Err(OutOfSteps) => Run::GaveUp,
        })
    }

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
        let membership = |set: &ByteSet| std::array::from_fn(|b| u16::from(set.contains(b as u8)));
        // Before the content, every table and every literal byte counts.
        let mut literal_bytes = ByteSet([0; 4]);
        let mut add = |lit: &Literal| lit.bytes.iter().for_each(|&b| literal_bytes.insert(b));
        for op in &self.ops {
            match op {
                Op::Lit(lit) => add(lit),
                Op::Seq(steps, _) => steps.iter().for_each(|s| {
                    if let Step::Lit(lit) = s {
                        add(lit)
                    }
                }),
                _ => {}
            }
        }
        if let Some(lead) = &self.lead {
            add(lead);
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
    fn header_hit(&self, cache: &HeaderCache, hay: &[u8], scratch: &mut Scratch) -> bool {
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
    fn run_cached(&self, cache: &HeaderCache, hay: &[u8], scratch: &mut Scratch) -> Run {
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

    /// The bytes a match can start with; `None` when it may start with any
    /// byte or match the empty string.
    pub fn first_bytes(&self) -> Option<ByteSet> {
        self.first
    }

    // One copy of the loop, compiled on its own: its speed then does not
    // depend on where the compiler decides to inline it.
    #[inline(never)]
    fn exec(&self, hay: &[u8], scratch: &mut Scratch) -> Result<bool, OutOfSteps> {
        let Scratch { slots, stack, newline_free, backtracked, .. } = scratch;
        *backtracked = false;
        slots.clear();
        slots.resize(self.slots, usize::MAX);
        stack.clear();
        let mut newline = if *newline_free { Newline::NONE } else { Newline::default() };
        // Typical log lines take a few hundred steps; past this, regex-automata
        // (linear time) answers instead.
        let mut budget = STEP_BUDGET_BASE.saturating_add(hay.len().saturating_mul(8));
        let (mut pc, mut pos) = (0usize, 0usize);
        // The budget is charged at choice points and backtracking: every
        // loop goes through a Split, so forward runs between charges are
        // bounded by the program length.
        loop {
            let ok = match &self.ops[pc] {
                Op::Match => return Ok(true),
                Op::Lit(lit) => {
                    let ok = lit.at(hay, pos);
                    if ok {
                        pos += lit.len();
                        pc += 1;
                    }
                    ok
                }
                Op::Class(table) => match hay.get(pos) {
                    Some(&b) if self.tables[*table].0[usize::from(b)] => {
                        pos += 1;
                        pc += 1;
                        true
                    }
                    _ => false,
                },
                Op::Seq(steps, next) => {
                    match self.seq(steps, *next, hay, pos, &mut newline, slots, stack, &mut budget)? {
                        SeqEnd::At { pos: end, pc: to } => {
                            pos = end;
                            pc = to;
                            true
                        }
                        SeqEnd::Fail => false,
                    }
                }
                Op::Run { table, min, max, greedy, dot, follow } => {
                    let limit = hay.len().min(pos.saturating_add(*max));
                    let end = if *dot {
                        newline.next(hay, pos).min(limit)
                    } else {
                        self.extent(*table, hay, pos, limit)
                    };
                    let lo = pos + min;
                    let start = if *greedy { end } else { lo };
                    match (end >= lo).then(|| seek(hay, follow.as_ref(), start, lo, end, *greedy)).flatten() {
                        None => false,
                        Some(at) => {
                            budget = budget.checked_sub(1).ok_or(OutOfSteps)?;
                            stack.push(Frame::Run { run: pc, lo, hi: end, at });
                            pos = at;
                            pc += 1;
                            true
                        }
                    }
                }
                Op::Split { first, second, choice, at_end } => {
                    match self.choose(
                        &self.choices[*choice],
                        *at_end,
                        *first,
                        *second,
                        hay,
                        pos,
                        stack,
                        &mut budget,
                    )? {
                        Some(to) => {
                            pc = to;
                            true
                        }
                        None => false,
                    }
                }
                Op::Jmp(to) => {
                    pc = *to;
                    true
                }
                Op::Save(slot) => {
                    // With no choice left, a failure ends the run: nothing to restore.
                    let cell = &mut slots[*slot];
                    if !stack.is_empty() {
                        stack.push(Frame::Restore { slot: *slot, old: *cell });
                    }
                    *cell = pos;
                    pc += 1;
                    true
                }
                Op::Start => {
                    pc += 1;
                    pos == 0
                }
                Op::End => {
                    pc += 1;
                    pos == hay.len()
                }
            };
            if ok {
                continue;
            }
            // Backtrack to the most recent choice.
            *backtracked = true;
            loop {
                budget = budget.checked_sub(1).ok_or(OutOfSteps)?;
                let Some(frame) = stack.pop() else { return Ok(false) };
                match frame {
                    Frame::Restore { slot, old } => slots[slot] = old,
                    Frame::Alt { pc: p, pos: q } => {
                        pc = p;
                        pos = q;
                        break;
                    }
                    Frame::Run { run, lo, hi, at } => {
                        let Op::Run { greedy, follow, .. } = &self.ops[run] else { continue };
                        let candidate = if *greedy {
                            at.checked_sub(1).filter(|&c| c >= lo)
                        } else {
                            Some(at + 1).filter(|&c| c <= hi)
                        };
                        let Some(from) = candidate else { continue };
                        let Some(at) = seek(hay, follow.as_ref(), from, lo, hi, *greedy) else { continue };
                        stack.push(Frame::Run { run, lo, hi, at });
                        pc = run + 1;
                        pos = at;
                        break;
                    }
                }
            }
        }
    }

    /// Makes the choice of an `Op::Split` (or a `Step::Branch`) at `pos`,
    /// charging one step: where execution goes (`first` when both branches
    /// can start here, with `second` pushed to backtrack into), or `None`
    /// when neither can.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn choose(
        &self,
        choice: &[u16; 256],
        at_end: u16,
        first: usize,
        second: usize,
        hay: &[u8],
        pos: usize,
        stack: &mut Vec<Frame>,
        budget: &mut usize,
    ) -> Result<Option<usize>, OutOfSteps> {
        *budget = budget.checked_sub(1).ok_or(OutOfSteps)?;
        let to = match hay.get(pos) {
            Some(&b) => choice[usize::from(b)],
            None => at_end,
        };
        Ok(match to {
            FAIL => None,
            BOTH => {
                stack.push(Frame::Alt { pc: second, pos });
                Some(first)
            }
            _ => Some(usize::from(to) - 1),
        })
    }

    /// Where a run of table bytes from `pos` ends (at most at `limit`).
    ///
    /// Eight bytes at a time: the membership of each is looked up, then the
    /// first byte outside the set found in the mask, so a short run (most
    /// are) costs no branch per byte and no mispredicted loop exit.
    #[inline(always)]
    fn extent(&self, table: usize, hay: &[u8], pos: usize, limit: usize) -> usize {
        let table = &self.tables[table].0;
        // A run of at most four bytes (`[0-9]{1,3}` in an address) needs no
        // more lookups than that: bit `limit - pos` caps the count as bit 8
        // does below.
        if limit.saturating_sub(pos) <= 4
            && let Some(chunk) = hay.get(pos..).and_then(<[u8]>::first_chunk::<4>)
        {
            let mut stop = 1u32 << (limit - pos);
            for (i, &b) in chunk.iter().enumerate() {
                stop |= u32::from(!table[usize::from(b)]) << i;
            }
            return pos + stop.trailing_zeros() as usize;
        }
        let mut p = pos;
        while let Some(chunk) = hay.get(p..).and_then(<[u8]>::first_chunk::<8>) {
            // Bit i: byte i is not in the set; bit 8 caps the count.
            let mut stop = 1u32 << 8;
            for (i, &b) in chunk.iter().enumerate() {
                stop |= u32::from(!table[usize::from(b)]) << i;
            }
            let run = stop.trailing_zeros() as usize;
            if run < 8 || p + 8 >= limit {
                return (p + run).min(limit);
            }
            p += 8;
        }
        hay.get(p..limit)
            .and_then(|h| h.iter().position(|&b| !table[usize::from(b)]))
            .map_or(limit, |i| p + i)
    }

    /// Runs the steps of an `Op::Seq` from `pos`, then continues at `next`
    /// (unless a branch leaves the sequence first).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn seq<'p>(
        &'p self,
        mut steps: &'p [Step],
        mut next: usize,
        hay: &[u8],
        mut pos: usize,
        newline: &mut Newline,
        slots: &mut [usize],
        stack: &mut Vec<Frame>,
        budget: &mut usize,
    ) -> Result<SeqEnd, OutOfSteps> {
        loop {
            let mut to = next;
            for step in steps {
                match step {
                    Step::Lit(lit) => {
                        if !lit.at(hay, pos) {
                            return Ok(SeqEnd::Fail);
                        }
                        pos += lit.len();
                    }
                    Step::Class(table) => {
                        let Some(&b) = hay.get(pos) else { return Ok(SeqEnd::Fail) };
                        if !self.tables[*table].0[usize::from(b)] {
                            return Ok(SeqEnd::Fail);
                        }
                        pos += 1;
                    }
                    Step::Run { table, min, max } => {
                        let limit = hay.len().min(pos.saturating_add(*max));
                        let end = self.extent(*table, hay, pos, limit);
                        if end < pos + min {
                            return Ok(SeqEnd::Fail);
                        }
                        pos = end;
                    }
                    Step::Span1(span) => match span.run(hay, pos) {
                        Some(end) => pos = end,
                        None => return Ok(SeqEnd::Fail),
                    },
                    Step::Span2(span) => match span.run(hay, pos) {
                        Some(end) => pos = end,
                        None => return Ok(SeqEnd::Fail),
                    },
                    Step::Span3(span) => match span.run(hay, pos) {
                        Some(end) => pos = end,
                        None => return Ok(SeqEnd::Fail),
                    },
                    Step::Fields(fields) => match fields.run(hay, pos) {
                        Some(end) => pos = end,
                        None => return Ok(SeqEnd::Fail),
                    },
                    Step::Dot { min, max } => {
                        let limit = hay.len().min(pos.saturating_add(*max));
                        let end = newline.next(hay, pos).min(limit);
                        if end < pos + min {
                            return Ok(SeqEnd::Fail);
                        }
                        pos = end;
                    }
                    Step::Save { slot, back } => {
                        // As `Op::Save`.
                        let cell = &mut slots[*slot];
                        if !stack.is_empty() {
                            stack.push(Frame::Restore { slot: *slot, old: *cell });
                        }
                        *cell = pos - back;
                    }
                    Step::End => {
                        if pos != hay.len() {
                            return Ok(SeqEnd::Fail);
                        }
                    }
                    Step::Branch { choice, at_end, first, second, next } => {
                        let Some(goes) =
                            self.choose(choice, *at_end, *first, *second, hay, pos, stack, budget)?
                        else {
                            return Ok(SeqEnd::Fail);
                        };
                        if goes != *next {
                            to = goes;
                            break;
                        }
                    }
                }
            }
            // Where a sequence leads is often another sequence: it goes on
            // here rather than through the dispatch loop.
            match self.ops.get(to) {
                Some(Op::Seq(more, after)) => (steps, next) = (more, *after),
                _ => return Ok(SeqEnd::At { pos, pc: to }),
            }
        }
    }
}

/// Where the next `\n` is, searched once per run of the program (inputs
/// rarely have one: the first search usually answers for every `.` run).
#[derive(Debug)]
struct Newline {
    /// The first newline at or after `from` is at `at` (the input's length
    /// when there is none).
    from: usize,
    at: usize,
}

impl Default for Newline {
    fn default() -> Self {
        Newline { from: usize::MAX, at: 0 }
    }
}

impl Newline {
    /// For an input known to hold no newline.
    const NONE: Newline = Newline { from: 0, at: usize::MAX };

    #[inline(always)]
    fn next(&mut self, hay: &[u8], pos: usize) -> usize {
        if self.at == usize::MAX {
            return hay.len();
        }
        if pos < self.from || self.at < pos {
            self.from = pos;
            self.at = hay.get(pos..).and_then(|h| memchr::memchr(b'\n', h)).map_or(hay.len(), |i| pos + i);
        }
        self.at
    }
}

/// Builds the running form of an instruction list.
#[derive(Default)]
struct Lowering {
    tables: Vec<Table>,
    /// The set of each table, to find a table again without building it.
    table_sets: Vec<ByteSet>,
    choices: Vec<[u16; 256]>,
}

/// The byte ranges, in order and covering every byte, that none of `sets`
/// splits: each set holds either all of a range or none of it.
fn byte_ranges<'a>(sets: impl Iterator<Item = &'a ByteSet>) -> Vec<(u8, u8)> {
    // Bit b of `cut`: some set holds one of b and b + 1 but not the other.
    let mut cut = [0u64; 4];
    for set in sets {
        for (w, word) in set.0.iter().enumerate() {
            let carry = set.0.get(w + 1).map_or(0, |next| next << 63);
            cut[w] |= word ^ (word >> 1 | carry);
        }
    }
    let mut ranges = Vec::new();
    let mut lo = 0u8;
    for b in 0..=u8::MAX {
        if b == u8::MAX || cut[usize::from(b >> 6)] & (1u64 << (b & 63)) != 0 {
            ranges.push((lo, b));
            lo = b.wrapping_add(1);
        }
    }
    ranges
}

impl Lowering {
    fn table(&mut self, set: &ByteSet) -> usize {
        match self.table_sets.iter().position(|x| x == set) {
            Some(i) => i,
            None => {
                self.table_sets.push(*set);
                self.tables.push(Table::of(set));
                self.tables.len() - 1
            }
        }
    }

    /// The table of the choice at `pc` (see `Op::Split`), and its entry
    /// for the end of the input. `guards` holds each choice's branch guards.
    fn choice(
        &mut self,
        insts: &[Inst],
        guards: &[Option<(Guard, Guard)>],
        ranges: &[(u8, u8)],
        pc: usize,
    ) -> (usize, u16) {
        let entry = |b: Option<u8>| -> u16 {
            let admits = |g: &Guard| match b {
                Some(b) => g.set.contains(b),
                None => g.at_end,
            };
            // Follow the choices (and jumps) the byte decides; nothing is
            // consumed or recorded on the way, so going straight to where
            // they lead is the same.
            let mut at = pc;
            for _ in 0..=insts.len() {
                match (&insts[at], &guards[at]) {
                    (Inst::Split(a, b), Some((ga, gb))) => match (admits(ga), admits(gb)) {
                        (false, false) => return FAIL,
                        (true, false) => at = *a,
                        (false, true) => at = *b,
                        (true, true) if at == pc => return BOTH,
                        (true, true) => break,
                    },
                    (Inst::Jmp(to), _) => at = *to,
                    _ => break,
                }
            }
            // `at` < MAX_INSTS (asserted against BOTH above).
            u16::try_from(at + 1).unwrap_or(BOTH)
        };
        // Bytes no guard tells apart lead to the same place: one walk per
        // range instead of one per byte.
        let mut table = [FAIL; 256];
        for &(lo, hi) in ranges {
            table[usize::from(lo)..=usize::from(hi)].fill(entry(Some(lo)));
        }
        let index = match self.choices.iter().position(|x| *x == table) {
            Some(i) => i,
            None => {
                self.choices.push(table);
                self.choices.len() - 1
            }
        };
        (index, entry(None))
    }

    fn lower(mut self, insts: &[Inst], slots: usize, scratch: &mut Guards) -> Program {
        let guards: Vec<Option<(Guard, Guard)>> = insts
            .iter()
            .map(|inst| match inst {
                Inst::Split(a, b) => Some((scratch.of(insts, *a), scratch.of(insts, *b))),
                _ => None,
            })
            .collect();
        let ranges = byte_ranges(guards.iter().flatten().flat_map(|(a, b)| [&a.set, &b.set]));
        let mut ops: Vec<Op> = insts
            .iter()
            .enumerate()
            .map(|(pc, inst)| match inst {
                Inst::Lit(lit) => Op::Lit(Literal::new(lit)),
                Inst::Class(set) => Op::Class(self.table(set)),
                Inst::Run { set, min, max, greedy, follow, atomic } => {
                    let dot = *set == ANY_BUT_NEWLINE;
                    let table = self.table(set);
                    if *atomic {
                        let (min, max) = (*min, *max);
                        let step = if dot {
                            Step::Dot { min, max }
                        } else if let Some(span) = Span::of(set, min, max) {
                            Step::Span1(Arc::new(span))
                        } else if let Some(span) = Span::of(set, min, max) {
                            Step::Span2(Arc::new(span))
                        } else if let Some(span) = Span::of(set, min, max) {
                            Step::Span3(Arc::new(span))
                        } else {
                            Step::Run { table, min, max }
                        };
                        // A one-step sequence; chains are merged below.
                        Op::Seq(Box::new([step]), usize::MAX)
                    } else {
                        let follow = (!follow.is_empty()).then(|| Literal::new(follow));
                        Op::Run { table, min: *min, max: *max, greedy: *greedy, dot, follow }
                    }
                }
                Inst::Split(a, b) => {
                    let (choice, at_end) = self.choice(insts, &guards, &ranges, pc);
                    Op::Split { first: *a, second: *b, choice, at_end }
                }
                Inst::Jmp(to) => Op::Jmp(*to),
                Inst::Save(slot) => Op::Save(*slot),
                Inst::Start => Op::Start,
                Inst::End => Op::End,
                Inst::Match => Op::Match,
            })
            .collect();
        // Chains of steps that never push a choice (literals, classes, runs
        // that take their whole extent, group saves, `$`, jumps) run as one
        // `Seq`, from every place execution can enter: the start, branch
        // and jump targets, and where backtracking resumes after a run. A
        // chain follows jumps and runs on through other entry points, so
        // shared code is copied into each chain that reaches it; every
        // instruction stays where it is for the other ways in, so no index
        // changes.
        let mut entered = vec![false; ops.len() + 1];
        entered[0] = true;
        // Splits share choice tables: each is scanned once.
        let mut scanned = vec![false; self.choices.len()];
        for (pc, op) in ops.iter().enumerate() {
            match op {
                Op::Split { first, second, choice, at_end } => {
                    entered[*first] = true;
                    entered[*second] = true;
                    // Where a choice leads straight to (through the choices
                    // after it), a branch leaves a sequence to.
                    let table = if std::mem::replace(&mut scanned[*choice], true) {
                        &[][..]
                    } else {
                        &self.choices[*choice][..]
                    };
                    for &to in table.iter().chain([at_end]) {
                        if to != FAIL && to != BOTH {
                            entered[usize::from(to) - 1] = true;
                        }
                    }
                }
                Op::Jmp(to) => entered[*to] = true,
                // Backtracking resumes after a run.
                Op::Run { .. } => entered[pc + 1] = true,
                _ => {}
            }
        }
        // Where a choice most likely leads: the instruction that the bytes
        // leading to it weigh most for, each byte weighing what it does in
        // log text ([`commonness`]), twice for the first branch (the one a
        // pattern's author puts first: an optional part, the usual
        // alternative).
        let choices = &self.choices;
        let mut weights: Vec<(usize, u32)> = Vec::new();
        let mut weigh = |first: usize, choice: usize| -> Option<usize> {
            weights.clear();
            // A run of bytes going to one place is weighed at once.
            let table = &choices[choice];
            let mut b = 0;
            while b < table.len() {
                let to = table[b];
                let end = table[b..].iter().position(|&t| t != to).map_or(table.len(), |n| b + n);
                let goes = match to {
                    FAIL => {
                        b = end;
                        continue;
                    }
                    BOTH => first,
                    _ => usize::from(to) - 1,
                };
                let common: u32 = (b..end).map(|b| u32::from(commonness(b as u8))).sum();
                let weight = common * if goes == first { 2 } else { 1 };
                match weights.iter_mut().find(|(pc, _)| *pc == goes) {
                    Some((_, w)) => *w += weight,
                    None => weights.push((goes, weight)),
                }
                b = end;
            }
            weights.iter().max_by_key(|&&(pc, w)| (w, std::cmp::Reverse(pc))).map(|&(pc, _)| pc)
        };
        // Per split, computed once (chains pass a split many times).
        let likely: Vec<Option<usize>> = ops
            .iter()
            .map(|op| match op {
                Op::Split { first, choice, .. } => weigh(*first, *choice),
                _ => None,
            })
            .collect();
        let shared: Vec<Arc<[u16; 256]>> = self.choices.iter().map(|t| Arc::new(*t)).collect();
        // Chains are built from the start first (every run begins there),
        // then in program order, while the step allowance lasts.
        let mut allowance = SEQ_STEPS_BASE + SEQ_STEPS_PER_INST * ops.len();
        // One buffer for every chain; each keeps an exact-size copy.
        let mut steps: Vec<Step> = Vec::with_capacity(MAX_SEQ_STEPS);
        let chains: Vec<Option<Op>> = (0..ops.len())
            .map(|start| {
                if !entered[start] {
                    return None;
                }
                steps.clear();
                // Steps fused away: limits count the steps unfused.
                let mut fused = 0;
                let (mut pc, mut hops, mut covered) = (start, 0, 0);
                while steps.len() + fused < MAX_SEQ_STEPS {
                    covered += 1;
                    match &ops[pc] {
                        Op::Lit(lit) => push_step(&mut steps, Step::Lit(lit.clone())),
                        Op::Class(t) => steps.push(Step::Class(*t)),
                        // Unmerged: a single atomic run.
                        Op::Seq(one, _) => {
                            for step in one.iter() {
                                fused += push_fused(&mut steps, step.clone());
                            }
                        }
                        Op::Save(slot) => steps.push(Step::Save { slot: *slot, back: 0 }),
                        Op::End => steps.push(Step::End),
                        // Loops go through a choice; the bound only guards
                        // against a cycle of jumps.
                        Op::Jmp(to) if hops < ops.len() => {
                            hops += 1;
                            pc = *to;
                            continue;
                        }
                        // Follow the likely way; any other leaves the
                        // sequence there.
                        Op::Split { first, second, choice, at_end } if steps.len() + fused < allowance => {
                            let Some(next) = likely[pc] else { break };
                            steps.push(Step::Branch {
                                choice: Arc::clone(&shared[*choice]),
                                at_end: *at_end,
                                first: *first,
                                second: *second,
                                next,
                            });
                            pc = next;
                            continue;
                        }
                        _ => break,
                    }
                    pc += 1;
                }
                // A lone save or jump gains nothing as a sequence (merged
                // literals do).
                let worth = steps.len() + fused > 1
                    || matches!(
                        steps.first(),
                        Some(
                            Step::Run { .. }
                                | Step::Span1(_)
                                | Step::Span2(_)
                                | Step::Span3(_)
                                | Step::Dot { .. }
                        )
                    )
                    || matches!(steps.first(), Some(Step::Lit(_))) && covered > 2;
                allowance = allowance.saturating_sub(if worth { steps.len() + fused } else { 0 });
                worth.then(|| Op::Seq(steps.drain(..).collect(), pc))
            })
            .collect();
        for (pc, chain) in chains.into_iter().enumerate() {
            if let Some(seq) = chain {
                ops[pc] = seq;
            }
        }
        let lead = insts.iter().find(|i| !matches!(i, Inst::Save(_))).and_then(|i| match i {
            Inst::Lit(lit) => Some(Literal::new(lit)),
            _ => None,
        });
        Program {
            ops,
            tables: self.tables,
            choices: self.choices,
            slots,
            lead,
            first: first_bytes(insts),
            starts: Box::default(),
            required: None,
            header: None,
            run_stops: Box::default(),
            uid: NEXT_UID.fetch_add(1, Ordering::Relaxed),
        }
    }
}

/// Buffers for [`Guards::of`], reused from call to call.
#[derive(Default)]
struct Guards {
    seen: Vec<bool>,
    todo: Vec<usize>,
}

impl Guards {
    /// What a match continuing at `pc` can start with ([`guard_with`]).
    fn of(&mut self, insts: &[Inst], pc: usize) -> Guard {
        let Guards { seen, todo } = self;
        seen.clear();
        seen.resize(insts.len(), false);
        todo.clear();
        todo.push(pc);
        guard_with(insts, seen, todo)
    }
}

/// What a match continuing from the instructions in `todo` (none of them
/// `seen` yet) can start with (a superset: guards only ever skip branches
/// that would fail).
fn guard_with(insts: &[Inst], seen: &mut [bool], todo: &mut Vec<usize>) -> Guard {
    let mut guard = Guard { set: ByteSet([0; 4]), at_end: false };
    while let Some(pc) = todo.pop() {
        if pc >= insts.len() || std::mem::replace(&mut seen[pc], true) {
            continue;
        }
        match &insts[pc] {
            Inst::Save(_) | Inst::Start => todo.push(pc + 1),
            Inst::Jmp(to) => todo.push(*to),
            Inst::Split(a, b) => todo.extend([*a, *b]),
            Inst::Lit(lit) => match lit.first() {
                Some(&b) => guard.set.insert(b),
                None => todo.push(pc + 1),
            },
            Inst::Class(c) => guard.set.union(c),
            Inst::Run { set, min, .. } => {
                guard.set.union(set);
                if *min == 0 {
                    todo.push(pc + 1);
                }
            }
            Inst::End => guard.at_end = true,
            Inst::Match => return Guard::ANY,
        }
    }
    guard
}

/// How many leading bytes [`start_sets`] looks at.
const START_SETS: usize = 4;

/// The bytes each of a match's first bytes can be, as far as every match
/// has them at fixed positions (up to [`START_SETS`]; empty when that
/// says nothing beyond the first byte, which the dispatch already checks).
fn start_sets(insts: &[Inst]) -> Vec<ByteSet> {
    let mut sets = [ByteSet([0; 4]); START_SETS];
    let mut known = START_SETS;
    let mut seen = std::collections::HashSet::new();
    let mut todo = vec![(0usize, 0usize)];
    while let Some((pc, at)) = todo.pop() {
        if at >= known || pc >= insts.len() || !seen.insert((pc, at)) {
            continue;
        }
        match &insts[pc] {
            Inst::Save(_) | Inst::Start => todo.push((pc + 1, at)),
            Inst::Jmp(to) => todo.push((*to, at)),
            Inst::Split(a, b) => todo.extend([(*a, at), (*b, at)]),
            Inst::Lit(lit) => {
                for (i, &b) in lit.iter().enumerate().take(known.saturating_sub(at)) {
                    sets[at + i].insert(b);
                }
                todo.push((pc + 1, at + lit.len()));
            }
            Inst::Class(set) => {
                sets[at].union(set);
                todo.push((pc + 1, at + 1));
            }
            // Past a run's minimum, positions are no longer fixed.
            Inst::Run { set, min, .. } => {
                for slot in sets.iter_mut().skip(at).take(*min) {
                    slot.union(set);
                }
                known = known.min(at + min);
            }
            // A match may end here.
            Inst::End | Inst::Match => known = known.min(at),
        }
    }
    if known < 2 {
        return Vec::new();
    }
    sets[..known].to_vec()
}

/// A literal every match of `hir` has after a `.*`-like run (at the top
/// level of the pattern, groups opened), of at least 8 bytes: the longest,
/// if any. Searching for it first spares running the part before it on a
/// line that lacks it; after a `.*`, that part is where a pattern spends
/// most (the run takes the rest of the line and gives it back), and such a
/// pattern often shares its start with others.
fn required_literal(hir: &Hir) -> Option<Vec<u8>> {
    // The pattern's parts in order, groups opened (each is required).
    fn flatten<'h>(hir: &'h Hir, out: &mut Vec<&'h Hir>) {
        match hir.kind() {
            HirKind::Concat(items) => items.iter().for_each(|item| flatten(item, out)),
            HirKind::Capture(cap) => flatten(&cap.sub, out),
            _ => out.push(hir),
        }
    }
    let mut parts = Vec::new();
    flatten(hir, &mut parts);
    let mut after_dot = false;
    let mut best: Option<&[u8]> = None;
    for part in parts {
        match part.kind() {
            HirKind::Literal(lit)
                if after_dot && lit.0.len() >= 8 && best.is_none_or(|b| lit.0.len() > b.len()) =>
            {
                best = Some(&lit.0);
            }
            HirKind::Repetition(rep)
                if rep.max.is_none()
                    && matches!(rep.sub.kind(), HirKind::Class(c) if ByteSet::from_class(c) == Some(ANY_BUT_NEWLINE)) =>
            {
                after_dot = true;
            }
            _ => {}
        }
    }
    best.map(<[u8]>::to_vec)
}

/// The bytes a match can start with; `None` when it may start with any byte
/// or match the empty string.
fn first_bytes(insts: &[Inst]) -> Option<ByteSet> {
    let mut set = ByteSet([0; 4]);
    let mut seen = vec![false; insts.len()];
    let mut todo = vec![0usize];
    while let Some(pc) = todo.pop() {
        if std::mem::replace(seen.get_mut(pc)?, true) {
            continue;
        }
        match &insts[pc] {
            Inst::Save(_) | Inst::Start => todo.push(pc + 1),
            Inst::Jmp(to) => todo.push(*to),
            Inst::Split(a, b) => todo.extend([*a, *b]),
            Inst::Lit(lit) => set.insert(*lit.first()?),
            Inst::Class(c) => set.union(c),
            Inst::Run { set: c, min, .. } => {
                set.union(c);
                if *min == 0 {
                    todo.push(pc + 1);
                }
            }
            Inst::End | Inst::Match => return None,
        }
    }
    Some(set)
}

/// Whether `head` is as long as `old` (a remembered head) and, byte by
/// byte, of the same classes. Compared eight bytes at a time: only the
/// bytes that differ (usually a few digits of a pid) are looked up, taken
/// from the two words rather than indexed again.
fn head_alike(classes: &[u8; 256], old: &[u8], head: &[u8]) -> bool {
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
fn refine(tables: impl Iterator<Item = [u16; 256]>) -> [u8; 256] {
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

/// For each run, the slots a save can record where the run stops: saves
/// reached from the run without consuming a byte (through other saves,
/// choices, jumps and runs that may be empty).
fn run_stops(insts: &[Inst]) -> Vec<(usize, ByteSet)> {
    let mut stops = Vec::new();
    for (pc, inst) in insts.iter().enumerate() {
        let Inst::Run { set, .. } = inst else { continue };
        let mut seen = vec![false; insts.len()];
        let mut todo = vec![pc + 1];
        while let Some(at) = todo.pop() {
            if at >= insts.len() || std::mem::replace(&mut seen[at], true) {
                continue;
            }
            match &insts[at] {
                Inst::Save(slot) => {
                    if !stops.contains(&(*slot, *set)) {
                        stops.push((*slot, *set));
                    }
                    todo.push(at + 1);
                }
                Inst::Start => todo.push(at + 1),
                Inst::Run { min: 0, .. } => todo.push(at + 1),
                Inst::Jmp(to) => todo.push(*to),
                Inst::Split(a, b) => todo.extend([*a, *b]),
                _ => {}
            }
        }
    }
    stops
}

/// The literal the instructions from `pc` must match first, if fixed
/// (looking through group saves; empty if none), so a run can skip
/// positions.
fn next_literal(insts: &[Inst], mut pc: usize) -> Box<[u8]> {
    loop {
        match insts.get(pc) {
            Some(Inst::Save(_)) => pc += 1,
            Some(Inst::Lit(lit)) => return lit.clone(),
            _ => return Box::default(),
        }
    }
}

/// `.` in the byte syntax: every byte but `\n`.
const ANY_BUT_NEWLINE: ByteSet = ByteSet([!(1u64 << b'\n'), u64::MAX, u64::MAX, u64::MAX]);

/// How common a byte is in log text, roughly (higher is more common): a
/// run that must be followed by a literal searches for the literal's least
/// common byte, so a search usually stops only where the literal is.
const fn commonness(b: u8) -> u8 {
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

/// The first position from `from` (moving down for greedy runs, up for lazy
/// ones, within `lo..=hi`) where the continuation's leading literal
/// `follow` occurs (any position when there is none).
fn seek(
    hay: &[u8],
    follow: Option<&Literal>,
    from: usize,
    lo: usize,
    hi: usize,
    greedy: bool,
) -> Option<usize> {
    let Some(follow) = follow else { return Some(from) };
    // Candidates p are found by their rare byte at p + k.
    let (byte, k) = (follow.rare, follow.rare_at);
    let mut from = from;
    loop {
        let at = if greedy {
            // positions lo..=from with hay[p + k] == byte
            let end = (from + k + 1).min(hay.len());
            memchr::memrchr(byte, hay.get(lo + k..end)?).map(|i| lo + i)?
        } else {
            let end = (hi + k + 1).min(hay.len());
            memchr::memchr(byte, hay.get(from + k..end)?).map(|i| from + i)?
        };
        if follow.at(hay, at) {
            return Some(at);
        }
        from = if greedy { at.checked_sub(1).filter(|&c| c >= lo)? } else { at + 1 };
    }
}

/// The outcome of [`Program::run`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Run {
    Match,
    NoMatch,
    /// The step budget ran out; the answer must come from regex-automata.
    GaveUp,
}

/// The outcome of [`Program::run_or_header`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer<'s> {
    /// The program ran (`scratch.slots` holds a match's groups).
    Ran(Run),
    /// The cached header answered: a match.
    Header(HeaderMatch<'s>),
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
    fn of(memo: &'s HeaderMemo) -> HeaderMatch<'s> {
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

struct OutOfSteps;

/// Reusable buffers for [`Program::run`], so a match allocates nothing.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scratch {
    pub slots: Vec<usize>,
    stack: Vec<Frame>,
    /// The caller's promise that the inputs it runs programs on hold no
    /// `\n` (so `.` runs to the end without searching). `Filter::process`
    /// (native filters) and the fail2ban engine set it for each line; it is
    /// false by default.
    pub newline_free: bool,
    /// Whether the last [`Program::exec`] backtracked.
    backtracked: bool,
    /// The last match of a program with a [`HeaderCache`].
    header: HeaderMemo,
}

#[derive(Debug, Clone, Copy)]
enum Frame {
    Alt {
        pc: usize,
        pos: usize,
    },
    Restore {
        slot: usize,
        old: usize,
    },
    /// A run at instruction `run` matched `lo..=hi` long and is followed
    /// from `at`.
    Run {
        run: usize,
        lo: usize,
        hi: usize,
        at: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex_automata::meta;
    use regex_automata::util::syntax;

    #[test]
    fn byte_ranges_cover_every_byte_and_no_set_splits_one() {
        // Sets as a pattern's guards have them: classes, single bytes, ranges
        // at word edges (63/64, 127/128, 191/192), everything, nothing.
        let mut sets = Vec::new();
        for (lo, hi) in [(b'0', b'9'), (b'a', b'z'), (63, 64), (127, 128), (191, 192), (0, 255), (255, 255)] {
            let mut set = ByteSet([0; 4]);
            (lo..=hi).for_each(|b| set.insert(b));
            sets.push(set);
        }
        let mut single = ByteSet([0; 4]);
        single.insert(b' ');
        sets.push(single);
        for n in 0..=sets.len() {
            let ranges = byte_ranges(sets[..n].iter());
            assert_eq!(ranges.first().map(|r| r.0), Some(0));
            assert_eq!(ranges.last().map(|r| r.1), Some(255));
            for pair in ranges.windows(2) {
                assert_eq!(usize::from(pair[0].1) + 1, usize::from(pair[1].0), "{ranges:?}");
                // Adjacent ranges are split by some set (else one range would do).
                let (a, b) = (pair[0].1, pair[1].0);
                assert!(sets[..n].iter().any(|s| s.contains(a) != s.contains(b)), "{ranges:?}");
            }
            for &(lo, hi) in &ranges {
                for set in &sets[..n] {
                    assert!((lo..=hi).all(|b| set.contains(b) == set.contains(lo)), "{lo}..={hi} split");
                }
            }
        }
        assert_eq!(byte_ranges(std::iter::empty()), vec![(0, 255)]);
    }

    /// regex-automata on a pattern: the answer the fast matcher must give.
    struct Reference {
        re: meta::Regex,
        caps: regex_automata::util::captures::Captures,
    }

    impl Reference {
        fn new(pattern: &str) -> Reference {
            let re = meta::Regex::builder()
                .syntax(syntax::Config::new().unicode(false).utf8(false))
                .configure(meta::Config::new().utf8_empty(false))
                .build(pattern)
                .unwrap();
            let caps = re.create_captures();
            Reference { re, caps }
        }

        /// Start and end of each group from 1 (`usize::MAX` for a group
        /// that did not participate); `None` when `hay` does not match.
        fn slots(&mut self, hay: &str) -> Option<Vec<usize>> {
            self.re.search_captures(&regex_automata::Input::new(hay.as_bytes()), &mut self.caps);
            if !self.caps.is_match() {
                return None;
            }
            Some(
                (1..self.re.group_info().group_len(regex_automata::PatternID::ZERO))
                    .flat_map(|g| match self.caps.get_group(g) {
                        Some(s) => [s.start, s.end],
                        None => [usize::MAX, usize::MAX],
                    })
                    .collect(),
            )
        }

        /// Asserts that `prog` (run with `scratch`) finds on `hay` what
        /// regex-automata finds.
        fn check(&mut self, prog: &Program, scratch: &mut Scratch, hay: &str, pattern: &str) {
            let want = self.slots(hay);
            let got = (prog.run(hay.as_bytes(), scratch) == Run::Match).then(|| scratch.slots[2..].to_vec());
            let got = got.map(|mut v| {
                v.truncate(want.as_ref().map_or(v.len(), Vec::len));
                v
            });
            assert_eq!(got, want, "{pattern} on {hay:?}");
        }
    }

    /// The fast matcher agrees with regex-automata on every one of `hays`
    /// (one program and one scratch for them all, in order).
    fn same_on(pattern: &str, hays: &[impl AsRef<str>]) {
        let prog = Program::new(pattern).unwrap_or_else(|| panic!("{pattern} not supported"));
        let mut reference = Reference::new(pattern);
        let mut scratch = Scratch::default();
        for hay in hays {
            reference.check(&prog, &mut scratch, hay.as_ref(), pattern);
        }
    }

    fn same(pattern: &str, hay: &str) {
        same_on(pattern, &[hay]);
    }

    #[test]
    fn agrees_with_regex_automata() {
        let cases = [
            (
                r"^Failed (?:password|none) for (?:invalid user )?(?P<u>.*) from (?P<h>[0-9.]+)(?: port [0-9]+)?$",
                "Failed password for invalid user a from b from 192.0.2.1 port 22",
            ),
            (
                r"^Failed (?:password|none) for (?:invalid user )?(?P<u>.*) from (?P<h>[0-9.]+)(?: port [0-9]+)?$",
                "Failed none for root from 192.0.2.1",
            ),
            (r"^(?:(\S+ )?sshd\[([0-9]+)\]: )?(?:error: )?(.+)$", "host sshd[12]: error: x"),
            (r"^(?:(\S+ )?sshd\[([0-9]+)\]: )?(?:error: )?(.+)$", "sshd x"),
            (r"^a(b*?)(b*)c$", "abbbc"),
            (r"^(?:ab|a)(b?)$", "ab"),
            (r"^(x{2,3}?)(x*)$", "xxxxx"),
            (r"^((?:ab){1,2}?)(.*)$", "ababab"),
            (r"^(?i)FAILED (\w+)$", "failed X"),
            (
                r"^(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:[0-9]{1,3}\.){3}[0-9]{1,3}|[0-9A-Fa-f]{1,4})?$",
                "::ffff:192.0.2.1",
            ),
            (r"^(a|ab)(c|bcd)(d*)$", "abcd"),
            (r"^x(?:: .*)?(?: \[preauth\])?$", "x: y [preauth]"),
            (r"^(.*)\n?(x*)$", "ab\nxx"),
            (r"^(.+?)(b.*)$", "aabab"),
            (r"^([0-9]+)\]([a-z]*?):$", "12]ab:"),
            (r"^(\S+) (\S*?) x$", "a b x"),
            (r"^(\S+)( )(\S+)$", "a  b"),
            // guards, continuation-based atomic runs, whole-literal seeks
            (r"^([0-9]+)(?: port ([0-9]+))?(?: ssh2)?$", "12 port 34 ssh2"),
            (r"^([0-9]+?)(?: port)?$", "12 port"),
            (r"^(\S+?) x$", "ab x"),
            (r"^(.*) from (\S+)$", "a fro from b from c"),
            (r"^(.*?) from (\S+)$", "a fro from b from c"),
            (r"^(?:ab|ac|a)(c?)d$", "acd"),
            (r"^([a-z]*)(?:[0-9]|[a-z]x)$", "abx"),
            // group saves undone, or not, when backtracking
            (r"^(?:(x)y|x(z))$", "xz"),
            (r"^(?:(a+)b|(a+)c)(.*)$", "aaac"),
            (r"^(.*)(?:(b)x|b(y))$", "abby"),
            (r"^(?:(\S+) )?(\S+) (x)?(.*)$", "a b c"),
            (r"^(?:(\S+) )?(\S+) (x)?(.*)$", "a b x c"),
            (r"^((?:(a)|b)*)c$", "abac"),
            // choices resolved through the next ones the byte decides
            (r"^(?:a: )?(?:b: )?(?:c: )?(x*)(y?)$", "c: xx"),
            (r"^(?:a: )?(?:b: )?(?:c: )?(x*)(y?)$", "y"),
            (r"^(?:a: )?(?:b: )?(?:c: )?(x*)(y?)$", ""),
            (r"^(?:ab|ac|ad|a)(.*)$", "adz"),
            (r"^(?:ab|ac|ad|a)(.*)$", "aez"),
            (r"^(?:(\S+) )?sshd(?:-x|-y)?\[([0-9]+)\]: (?:e: )?(.+)$", "h sshd[1]: e: m"),
            (r"^(?:(\S+) )?sshd(?:-x|-y)?\[([0-9]+)\]: (?:e: )?(.+)$", "sshd-y[1]: m"),
            // required literals (after a `.*`) and start sets
            (r"^R (.*): Auth fail(?: x)?$", "R a: b: Auth fail x"),
            (r"^R (.*): Auth fail(?: x)?$", "R a: b: Auth fai"),
            (r"^(?:[Aa]uth|User) (x+)$", "auth xx"),
            (r"^(?:[Aa]uth|User) (x+)$", "User x"),
            (r"^(?:[Aa]uth|User) (x+)$", "Acc x"),
            (r"^(?:[Aa]uth|User) (x+)$", "Us"),
        ];
        for (p, h) in cases {
            same(p, h);
        }
    }

    #[test]
    fn cached_headers_give_the_same_matches() {
        // Lines in order, then each twice in a row, through one program
        // with a header cache: every answer must be regex-automata's.
        let pattern = r"^(?:(?P<id>(?:\S+ )?sshd(?:-session)?\[[0-9]+\]): )?(?:\[ID [0-9]+ [a-z]+\.[a-z]+\] )?(?:(?:error|fatal): )?(?:PAM: )?(?P<content>.+)$";
        let lines = [
            "h sshd[1]: Failed password",
            "h sshd[1]: Received disconnect",
            "h sshd[1]: error: maximum",
            "h sshd[1]: PAM: x",
            "h sshd[1]: PAM 2 more",
            "h sshd[1]: fatal: y",
            "h sshd[1]: [ID 5 auth.info] z",
            "h sshd[1]: e",
            "h sshd[1]: ",
            "h sshd[1]: x",
            "h sshd[2]: x",
            "h sshd[22]: x",
            "h sshd[23]: y",
            "g sshd[23]: y",
            "gg sshd[23]: y",
            "hg sshd[23]: y",
            "h sshd-session[1]: x",
            "h CRON[3]: x",
            "h CRON[3]: y",
            "sshd[1]: x",
            "h sshd[1]: x\ny",
            "h sshd[1]: x",
        ];
        let mut prog = Program::new(pattern).unwrap();
        assert!(prog.cache_header(2));
        let mut scratch = Scratch::default();
        let mut reference = Reference::new(pattern);
        for hay in lines.iter().chain(lines.iter().flat_map(|l| [l, l])) {
            scratch.newline_free = !hay.contains('\n');
            reference.check(&prog, &mut scratch, hay, pattern);
        }
        assert!(scratch.header.hits > 10, "the cache answered {} lines", scratch.header.hits);
        // The uncopied answer reads as `run`'s slots: a stream answered by
        // `run_or_header` and one by `run` see the same matches.
        let mut copied = Scratch::default();
        let mut uncopied = Scratch::default();
        let mut answered = 0;
        for hay in lines.iter().chain(lines.iter().flat_map(|l| [l, l])) {
            copied.newline_free = !hay.contains('\n');
            uncopied.newline_free = copied.newline_free;
            let want = prog.run(hay.as_bytes(), &mut copied);
            match prog.run_or_header(hay.as_bytes(), &mut uncopied) {
                Answer::Header(found) => {
                    answered += 1;
                    let got: Vec<usize> = found.slots_on(hay.len()).collect();
                    assert_eq!((Run::Match, &got), (want, &copied.slots), "{hay:?}");
                }
                Answer::Ran(run) => {
                    assert_eq!(run, want, "{hay:?}");
                    if run == Run::Match {
                        assert_eq!(uncopied.slots, copied.slots, "{hay:?}");
                    }
                }
            }
        }
        assert_eq!(answered, copied.header.hits, "the same lines were answered from the memo");
        // A program with a run that searches ahead keeps no cache.
        assert!(!Program::new(r"^(.*) x (?P<c>.+)$").unwrap().cache_header(2));
    }

    #[test]
    fn head_alike_looks_at_every_byte_by_class() {
        // Digits are one class, every other byte a class of its own.
        let classes: [u8; 256] =
            std::array::from_fn(|b| if (b as u8).is_ascii_digit() { b'0' } else { b as u8 });
        let by_byte = |old: &[u8], head: &[u8]| {
            old.len() == head.len()
                && old.iter().zip(head).all(|(&a, &b)| classes[usize::from(a)] == classes[usize::from(b)])
        };
        for n in 0..=25usize {
            let old: Vec<u8> = (0..n).map(|i| if i % 3 == 0 { b'1' } else { b'a' + i as u8 }).collect();
            assert!(head_alike(&classes, &old, &old), "{n}");
            if let Some(shorter) = old.get(..n.wrapping_sub(1)) {
                assert!(!head_alike(&classes, &old, shorter), "{n}");
            }
            for k in 0..n {
                for (one, two) in [(b'7', b'8'), (b'7', b'x'), (b'x', b'7'), (b'x', b'y')] {
                    let mut head = old.clone();
                    head[k] = one;
                    assert_eq!(head_alike(&classes, &old, &head), by_byte(&old, &head), "{n} {k} {one}");
                    // A second change further on, in the same word or the next.
                    for j in [k + 1, k + 5, k + 9] {
                        if let Some(b) = head.get_mut(j) {
                            let kept = *b;
                            *b = two;
                            assert_eq!(
                                head_alike(&classes, &old, &head),
                                by_byte(&old, &head),
                                "{n} {k} {j}"
                            );
                            head[j] = kept;
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn short_bounded_runs_agree_at_every_length_and_line_end() {
        // Runs of at most four bytes take their own path in `extent`.
        let patterns = [
            r"^([0-9]{1,3})(.*)$",
            r"^([0-9]{0,4})([0-9]*)(.*)$",
            r"^a([0-9]{2,4})\.([0-9]{1,3})$",
            r"^([0-9]{1,3}\.){3}([0-9]{1,3})(.*)$",
            r"^(x?)([0-9]{1})(.*)$",
        ];
        let hays = [
            "",
            "1",
            "12",
            "123",
            "1234",
            "12345",
            "12a",
            "1a23",
            "a12.3",
            "a1234.567",
            "a12345.6",
            "1.2.3.4",
            "10.20.30.40x",
            "255.255.255.2555",
            "x9",
            "x99",
        ];
        for p in patterns {
            same_on(p, &hays);
        }
    }

    #[test]
    fn word_at_a_time_spans_agree_at_every_length() {
        // (class, a byte outside it that ends the run, the span's range
        // count or 0 for a table run): each range shape, bytes >= 0x80 in
        // and out, sets listed by their members and by the rest.
        let classes = [
            (r"\S", " ", 2),
            (r"\s", "x", 2),
            (r"[0-9]", "x", 1),
            (r"[a-z_]", "0", 2),
            (r"[0-9A-Fa-f]", "x", 3),
            (r"[^a-z]", "a", 1),
            (r"[^0-9]", "5", 1),
            (r"[a-z\x80-\xff]", "0", 1),
            (r"[\x00-\x7f]", "\u{e9}", 0),
            (r"[a-c\x80-\x9f]", "d", 0),
            (r"[0-9a-fA-F\-_:.]", "x", 0),
        ];
        let fillers = ["a", "7", "_", " ", "\t", "\u{e9}", "Z", "f", "\x7f", "\x01", ":"];
        let tails = ["", "x", " y", "0", "a", "\u{e9}", "5 "];
        let mut hays = vec![String::new()];
        for f in fillers {
            for n in 1..=18 {
                for t in tails {
                    hays.push(format!("{}{t}", f.repeat(n)));
                }
            }
        }
        hays.push("ab 12\t\u{e9}x_:7f".repeat(3));
        for (class, stop, ranges) in classes {
            for quant in ["+", "*", "{2,5}", "{0,9}", "{3}", "{1,17}"] {
                let pattern = format!("^({class}{quant})(?:{stop}(.*))?$");
                let prog = Program::new(&pattern).unwrap();
                let shape = prog.ops.iter().find_map(|op| match op {
                    Op::Seq(steps, _) => steps.iter().find_map(|s| match s {
                        Step::Span1(_) => Some(1),
                        Step::Span2(_) => Some(2),
                        Step::Span3(_) => Some(3),
                        Step::Run { .. } => Some(0),
                        _ => None,
                    }),
                    _ => None,
                });
                assert_eq!(shape, Some(ranges), "{pattern}");
                same_on(&pattern, &hays);
            }
        }
    }

    #[test]
    fn fused_fields_agree() {
        let patterns = [
            r"^((?:[0-9]{1,3}\.){3}[0-9]{1,3})(?: (.*))?$",
            r"^x((?:[0-9]{1,3}\.){3}[0-9]{1,3})$",
            r"^([a-z]+:[a-z]+:[a-z]+)(?:=(.*))?$",
            // the third run differs: only the first two fuse
            r"^([0-9]{1,3}\.[0-9]{1,3}\.)([0-9]+)$",
            r"^([0-9]{1,3}\.[0-9]{1,3})\.([0-9]{0,2})$",
        ];
        let fused = |p: &str| {
            Program::new(p).unwrap().ops.iter().any(
                |op| matches!(op, Op::Seq(steps, _) if steps.iter().any(|s| matches!(s, Step::Fields(_)))),
            )
        };
        assert!(patterns.iter().all(|p| fused(p)));
        let hays = [
            "",
            "1.2.3.4",
            "255.255.255.255",
            "1234.1.1.1",
            "1.2.3",
            "1.2.3.",
            "1..2.3",
            "1.2.3.4567",
            "12.34.56.78 x",
            "12.34.56.78x",
            "x1.2.3.4",
            "x203.0.113.255",
            "x1.2.3.4.",
            "1.22.",
            "1.22.333",
            "1.22.33",
            "ab:cd:ef",
            "ab:cd:ef=1",
            "ab:cd:",
            "ab::ef",
            "abcdefghijk:l:mnopqrstuvwxyz=q",
            "\u{e9}.1.2.3",
            "1.2.3.\u{e9}",
        ];
        for p in patterns {
            same_on(p, &hays);
        }
    }

    #[test]
    fn unsupported_patterns_are_refused() {
        assert!(Program::new(r"unanchored").is_none());
        assert!(Program::new(r"^a\b").is_none());
        assert!(Program::new(r"^(?:a*)*$").is_none());
        assert!(Program::new(r"^(?u:\w)").is_none());
    }

    #[test]
    fn budget_stops_exponential_backtracking() {
        let prog = Program::new(r"^(?:a|aa)*b$").unwrap();
        assert_eq!(prog.run(&[b'a'; 60], &mut Scratch::default()), Run::GaveUp);
        assert_eq!(prog.run(b"c", &mut Scratch::default()), Run::NoMatch);
    }

    #[test]
    fn start_sets_and_required_literals_are_found() {
        let p = Program::new(r"^(?:[Aa]uth|User) (x+)$").unwrap();
        let sets: Vec<Vec<u8>> =
            p.starts.iter().map(|s| (0..=255u8).filter(|&b| s.contains(b)).collect()).collect();
        assert_eq!(sets, [b"AUa".to_vec(), b"su".to_vec(), b"et".to_vec(), b"hr".to_vec()]);
        // A run of variable length ends what is known; a literal start is
        // the lead's business.
        assert!(Program::new(r"^[a-z]+x").unwrap().starts.is_empty());
        assert!(Program::new(r"^abc").unwrap().starts.is_empty());
        let needle = |p: &str| Program::new(p).unwrap().required.map(|f| f.needle().to_vec());
        assert_eq!(needle(r"^R (.*) x (y): Auth fail$"), Some(b": Auth fail".to_vec()));
        assert_eq!(needle(r"^R (.*) from x$"), None, "too short to be worth a search");
        assert_eq!(needle(r"^R : Auth fail (.*)$"), None, "only after a `.*`");
        assert_eq!(needle(r"^R [a-z]+ : Auth fail$"), None, "only after a `.*`");
        assert_eq!(needle(r"^R (.*)(?:: Auth fail)?$"), None, "only required ones");
        assert_eq!(needle(r"^R (x(.*)(: Auth fail))$"), Some(b": Auth fail".to_vec()), "groups opened");
    }

    #[test]
    fn first_bytes_follow_optional_parts() {
        let p = Program::new(r"^(?:error: )?(?:x|y+)z").unwrap();
        let set = p.first_bytes().unwrap();
        assert!(set.contains(b'e') && set.contains(b'x') && set.contains(b'y') && !set.contains(b'z'));
        assert!(Program::new(r"^a*$").unwrap().first_bytes().is_none());
    }
}
