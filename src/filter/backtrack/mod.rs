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
//!
//! The parts: [`compiler`] turns a parsed pattern into `Inst`s, [`analysis`]
//! finds what the instructions imply (guards, first bytes, start sets,
//! required literals), [`lower`] builds the `Op`s of [`ops`] from them,
//! [`exec`] runs them with the pieces of [`bytes`], [`literal`] and
//! [`span`], and [`header`] reuses a prefregex's match from line to line.

mod analysis;
mod bytes;
mod compiler;
mod exec;
mod header;
mod literal;
mod lower;
mod ops;
mod span;
#[cfg(test)]
mod tests;

use std::sync::atomic::AtomicU64;

use regex_syntax::hir::{Hir, Look};

use analysis::{Guards, next_literal, required_literal, run_stops, start_sets};
pub(crate) use bytes::ByteSet;
use bytes::Table;
use compiler::{Compiler, Inst};
use exec::{Frame, OutOfSteps};
pub(crate) use header::HeaderMatch;
use header::{HeaderCache, HeaderMemo};
use literal::Literal;
use lower::Lowering;
use ops::{Op, Seconds};

/// Parses `pattern` in the byte-oriented ASCII syntax the fast matcher runs
/// (the syntax of `compile::ascii_syntax`: Unicode and UTF-8 modes off, the
/// other options at their defaults); `None` when it does not parse (the
/// caller reports regex-automata's message for it).
pub(crate) fn parse_ascii(pattern: &str) -> Option<Hir> {
    regex_syntax::ParserBuilder::new().unicode(false).utf8(false).build().parse(pattern).ok()
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
    /// Per choice: which branches the byte after it admits (see
    /// `ops::Seconds`).
    seconds: Vec<Seconds>,
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
        if !self.admits_lead(hay) {
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

    /// Whether `hay` starts with the literal every match starts with (or
    /// there is none): a necessary condition of a match, cheap enough for
    /// a caller to check before it sets anything up.
    #[inline(always)]
    pub fn admits_lead(&self, hay: &[u8]) -> bool {
        self.lead.as_ref().is_none_or(|lead| lead.at(hay, 0))
    }

    /// The bytes a match can start with; `None` when it may start with any
    /// byte or match the empty string.
    pub fn first_bytes(&self) -> Option<ByteSet> {
        self.first
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
