//! What a program's instructions imply, found once at compile time: what
//! a match continuing from an instruction can start with ([`Guard`]), the
//! bytes a match can start with, the sets of its first few bytes, a
//! literal every match must hold, where runs stop, and the literal that
//! follows a run. The lowering and the matcher's pre-checks use them.

use std::ops::ControlFlow;

use regex_syntax::hir::{Hir, HirKind};

use super::bytes::{ANY_BUT_NEWLINE, ByteSet};
use super::compiler::Inst;

/// What a match continuing from an instruction can start with, and whether
/// it can succeed at the end of the input without consuming anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Guard {
    pub(super) set: ByteSet,
    pub(super) at_end: bool,
}

impl Guard {
    pub(super) const ANY: Guard = Guard { set: ByteSet([u64::MAX; 4]), at_end: true };
}

/// Buffers for [`Guards::of`] and [`Guards::second`], reused from call
/// to call.
#[derive(Default)]
pub(super) struct Guards {
    seen: Vec<bool>,
    todo: Vec<usize>,
    /// For [`Guards::second`]'s own walk.
    seen_first: Vec<bool>,
    todo_first: Vec<usize>,
}

impl Guards {
    /// What a match continuing at `pc` can start with ([`guard_with`]).
    pub(super) fn of(&mut self, insts: &[Inst], pc: usize) -> Guard {
        let Guards { seen, todo, .. } = self;
        seen.clear();
        seen.resize(insts.len(), false);
        todo.clear();
        todo.push(pc);
        guard_with(insts, seen, todo)
    }

    /// What the byte after the first can be in a match continuing at `pc`
    /// (a superset), with `at_end` when the input may end there: the
    /// first bytes of what follows one byte on, and the second bytes of
    /// literals and runs that take two.
    pub(super) fn second(&mut self, insts: &[Inst], pc: usize) -> Guard {
        let mut guard = Guard { set: ByteSet([0; 4]), at_end: false };
        let Guards { seen: one_seen, todo: one_on, seen_first: seen, todo_first: todo } = self;
        // Instructions reached after one byte, for `guard_with`.
        one_on.clear();
        seen.clear();
        seen.resize(insts.len(), false);
        todo.clear();
        todo.push(pc);
        let walk = walk_reached(insts, seen, todo, |pc, inst, todo| {
            match inst {
                Inst::Lit(lit) => match lit.len() {
                    0 => todo.push(pc + 1),
                    1 => one_on.push(pc + 1),
                    _ => guard.set.insert(lit[1]),
                },
                Inst::Class(_) => one_on.push(pc + 1),
                Inst::Run { set, min, max, .. } => {
                    if *max >= 2 {
                        guard.set.union(set);
                    }
                    if *min == 0 {
                        todo.push(pc + 1);
                    }
                    if *min <= 1 && *max >= 1 {
                        one_on.push(pc + 1);
                    }
                }
                // The input may end right after the first byte (or the
                // match may end before it: anything can follow).
                Inst::End => guard.at_end = true,
                Inst::Match => return ControlFlow::Break(()),
                Inst::Save(_) | Inst::Start | Inst::Jmp(_) | Inst::Split(..) => {}
            }
            ControlFlow::Continue(())
        });
        if walk.is_break() {
            return Guard::ANY;
        }
        if !one_on.is_empty() {
            one_seen.clear();
            one_seen.resize(insts.len(), false);
            let after = guard_with(insts, one_seen, one_on);
            guard.set.union(&after.set);
            guard.at_end |= after.at_end;
        }
        guard
    }
}

/// What a match continuing from the instructions in `todo` (none of them
/// `seen` yet) can start with (a superset: guards only ever skip branches
/// that would fail).
pub(super) fn guard_with(insts: &[Inst], seen: &mut [bool], todo: &mut Vec<usize>) -> Guard {
    let mut guard = Guard { set: ByteSet([0; 4]), at_end: false };
    let walk = walk_reached(insts, seen, todo, |pc, inst, todo| {
        match inst {
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
            Inst::Match => return ControlFlow::Break(()),
            Inst::Save(_) | Inst::Start | Inst::Jmp(_) | Inst::Split(..) => {}
        }
        ControlFlow::Continue(())
    });
    if walk.is_break() { Guard::ANY } else { guard }
}

/// Walks a program from the instructions in `todo` (marking them `seen`,
/// which holds one flag per instruction) through those that consume
/// nothing and always go on (saves, `^`, jumps, both ways of a split),
/// and calls `visit` once on each other instruction reached, with `todo`
/// to add where that one goes on without consuming. `visit` breaks the
/// walk when it already knows the answer.
fn walk_reached(
    insts: &[Inst],
    seen: &mut [bool],
    todo: &mut Vec<usize>,
    mut visit: impl FnMut(usize, &Inst, &mut Vec<usize>) -> ControlFlow<()>,
) -> ControlFlow<()> {
    while let Some(pc) = todo.pop() {
        if pc >= insts.len() || std::mem::replace(&mut seen[pc], true) {
            continue;
        }
        match &insts[pc] {
            Inst::Save(_) | Inst::Start => todo.push(pc + 1),
            Inst::Jmp(to) => todo.push(*to),
            Inst::Split(a, b) => todo.extend([*a, *b]),
            inst => visit(pc, inst, todo)?,
        }
    }
    ControlFlow::Continue(())
}

/// How many leading bytes [`start_sets`] looks at.
const START_SETS: usize = 4;

/// The bytes each of a match's first bytes can be, as far as every match
/// has them at fixed positions (up to [`START_SETS`]; empty when that
/// says nothing beyond the first byte, which the dispatch already checks).
pub(super) fn start_sets(insts: &[Inst]) -> Vec<ByteSet> {
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
pub(super) fn required_literal(hir: &Hir) -> Option<Vec<u8>> {
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
pub(super) fn first_bytes(insts: &[Inst]) -> Option<ByteSet> {
    // A match that can end (or reach `$`) before its first byte is the
    // empty string's.
    let guard = guard_with(insts, &mut vec![false; insts.len()], &mut vec![0]);
    (!guard.at_end).then_some(guard.set)
}

/// For each run, the slots a save can record where the run stops: saves
/// reached from the run without consuming a byte (through other saves,
/// choices, jumps and runs that may be empty).
pub(super) fn run_stops(insts: &[Inst]) -> Vec<(usize, ByteSet)> {
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
pub(super) fn next_literal(insts: &[Inst], mut pc: usize) -> Box<[u8]> {
    loop {
        match insts.get(pc) {
            Some(Inst::Save(_)) => pc += 1,
            Some(Inst::Lit(lit)) => return lit.clone(),
            _ => return Box::default(),
        }
    }
}
