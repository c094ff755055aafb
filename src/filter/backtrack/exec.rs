//! Running a program: the dispatch loop over its [`Op`]s, the steps of a
//! sequence, choices, runs and backtracking, all within the step budget.
//! The state of a run is the caller's [`Scratch`] (slots and the
//! backtracking stack), so a match allocates nothing.

use super::literal::Literal;
use super::ops::{BOTH, FAIL, FIRST_GOES_ON, Op, SECOND_GOES_ON, Seconds, Step};
use super::{Program, STEP_BUDGET_BASE, Scratch};

/// Where an `Op::Seq` ends.
enum SeqEnd {
    /// Its steps failed: backtrack.
    Fail,
    /// Go on at `pc` from `pos` (its end, or a branch that left it).
    At { pos: usize, pc: usize },
}

impl Program {
    // One copy of the loop, compiled on its own: its speed then does not
    // depend on where the compiler decides to inline it.
    #[inline(never)]
    pub(super) fn exec(&self, hay: &[u8], scratch: &mut Scratch) -> Result<bool, OutOfSteps> {
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
                Op::Split { first, second, choice, at_end, seconds } => {
                    match self.choose(
                        &self.choices[*choice],
                        *at_end,
                        &self.seconds[*seconds],
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
        seconds: &Seconds,
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
            BOTH => match seconds[hay.get(pos + 1).map_or(256, |&b| usize::from(b))] {
                FIRST_GOES_ON => Some(first),
                SECOND_GOES_ON => Some(second),
                0 => None,
                _ => {
                    stack.push(Frame::Alt { pc: second, pos });
                    Some(first)
                }
            },
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
                    Step::Branch { choice, at_end, seconds, first, second, next } => {
                        let Some(goes) =
                            self.choose(choice, *at_end, seconds, *first, *second, hay, pos, stack, budget)?
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

pub(super) struct OutOfSteps;

#[derive(Debug, Clone, Copy)]
pub(super) enum Frame {
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
