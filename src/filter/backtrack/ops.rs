//! The running form of a program: the [`Op`]s [`super::exec`] dispatches
//! on, and the [`Step`]s of a chain fused into one `Op::Seq`.

use std::sync::Arc;

use super::MAX_INSTS;
use super::literal::Literal;
use super::span::{Fields, Span};

/// Per byte after the one a choice is made at (index 256: the end of
/// the input), which of its branches can go on with it: bit
/// [`FIRST_GOES_ON`] for the first, [`SECOND_GOES_ON`] for the second. A
/// choice both branches can start at then takes one branch without
/// keeping the other when the next byte rules the other out (`" user"`
/// and `" port"` both start with a space), so no frame is pushed and no
/// dead branch explored.
pub(super) type Seconds = [u8; 257];
pub(super) const FIRST_GOES_ON: u8 = 1;
pub(super) const SECOND_GOES_ON: u8 = 2;
/// Seconds that rule nothing out.
pub(super) const SECONDS_ANY: Seconds = [FIRST_GOES_ON | SECOND_GOES_ON; 257];

/// A choice entry: no branch can start with the byte.
pub(super) const FAIL: u16 = 0;
/// A choice entry: both branches can; try the first, keep the second.
pub(super) const BOTH: u16 = u16::MAX;
// Other entries are an instruction index plus one. Programs are capped well
// below that range.
const _: () = assert!(MAX_INSTS + 1 < BOTH as usize);

/// The instructions that run.
#[derive(Debug, Clone)]
pub(super) enum Op {
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
    /// end of the input. `seconds` indexes `Program::seconds`: for
    /// [`BOTH`], which branches the byte after this one admits.
    Split {
        first: usize,
        second: usize,
        choice: usize,
        at_end: u16,
        seconds: usize,
    },
    Jmp(usize),
    Save(usize),
    Start,
    End,
    Match,
}

/// One step of an `Op::Seq`.
#[derive(Debug, Clone)]
pub(super) enum Step {
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
        /// The same for the choice's [`Seconds`].
        seconds: Arc<Seconds>,
        first: usize,
        second: usize,
        next: usize,
    },
}
