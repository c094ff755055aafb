//! Lowering: building the running form ([`Op`]s) of an instruction list,
//! with the choice tables a byte indexes and the chains of steps that
//! run as one `Op::Seq`.

use std::sync::Arc;

use super::analysis::{Guard, Guards, first_bytes};
use super::bytes::{ANY_BUT_NEWLINE, ByteSet, Table, commonness};
use super::compiler::Inst;
use super::literal::Literal;
use super::ops::{BOTH, FAIL, FIRST_GOES_ON, Op, SECOND_GOES_ON, Seconds, Step};
use super::span::{Fields, Span};
use super::{NEXT_UID, Program};
use std::sync::atomic::Ordering;

/// Longest chain of steps fused into one `Op::Seq` (chains follow jumps
/// and branches, so a shared tail is copied into each chain that reaches
/// it).
const MAX_SEQ_STEPS: usize = 64;

/// Steps a program's sequences may hold in all, per instruction (plus a
/// base): once spent, chains stop at branches instead of following them,
/// which bounds the copies.
const SEQ_STEPS_PER_INST: usize = 4;
const SEQ_STEPS_BASE: usize = 256;

/// Appends `step` to a sequence, fusing each `span, sep, span, ..., span`
/// (one single-range span, one single-byte literal) into a [`Fields`]
/// step. The sequence matches the same: it is the same steps, run one
/// after the other. (The literal before a span is final: [`push_step`]
/// merges only into the last step but saves.) Returns how many steps
/// fewer the sequence has for it.
pub(super) fn push_fused(steps: &mut Vec<Step>, step: Step) -> usize {
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
pub(super) fn push_step(steps: &mut Vec<Step>, step: Step) {
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

/// Builds the running form of an instruction list.
#[derive(Default)]
pub(super) struct Lowering {
    tables: Vec<Table>,
    /// The set of each table, to find a table again without building it.
    table_sets: Vec<ByteSet>,
    choices: Vec<[u16; 256]>,
}

/// The byte ranges, in order and covering every byte, that none of `sets`
/// splits: each set holds either all of a range or none of it.
pub(super) fn byte_ranges<'a>(sets: impl Iterator<Item = &'a ByteSet>) -> Vec<(u8, u8)> {
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

    pub(super) fn lower(mut self, insts: &[Inst], slots: usize, scratch: &mut Guards) -> Program {
        let guards: Vec<Option<(Guard, Guard)>> = insts
            .iter()
            .map(|inst| match inst {
                Inst::Split(a, b) => Some((scratch.of(insts, *a), scratch.of(insts, *b))),
                _ => None,
            })
            .collect();
        let ranges = byte_ranges(guards.iter().flatten().flat_map(|(a, b)| [&a.set, &b.set]));
        let mut seconds: Vec<Seconds> = Vec::new();
        // The branch guards each table was built from, to find it again.
        let mut seconds_keys: Vec<[Guard; 2]> = Vec::new();
        let mut seconds_of = |a: usize, b: usize, choice: &[u16; 256], at_end: u16| -> usize {
            // Only a choice that can keep both branches looks further.
            let (ga, gb) = if choice.contains(&BOTH) || at_end == BOTH {
                (scratch.second(insts, a), scratch.second(insts, b))
            } else {
                (Guard::ANY, Guard::ANY)
            };
            let key = [ga, gb];
            if let Some(i) = seconds_keys.iter().position(|k| *k == key) {
                return i;
            }
            seconds_keys.push(key);
            let goes_on = |a: bool, b: bool| (u8::from(a) * FIRST_GOES_ON) | (u8::from(b) * SECOND_GOES_ON);
            let mut table: Seconds = std::array::from_fn(|b| {
                let b = b as u8;
                goes_on(ga.set.contains(b), gb.set.contains(b))
            });
            table[256] = goes_on(ga.at_end, gb.at_end);
            seconds.push(table);
            seconds.len() - 1
        };
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
                    let seconds = seconds_of(*a, *b, &self.choices[choice], at_end);
                    Op::Split { first: *a, second: *b, choice, at_end, seconds }
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
                Op::Split { first, second, choice, at_end, .. } => {
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
        let shared_seconds: Vec<Arc<Seconds>> = seconds.iter().map(|t| Arc::new(*t)).collect();
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
                        Op::Split { first, second, choice, at_end, seconds }
                            if steps.len() + fused < allowance =>
                        {
                            let Some(next) = likely[pc] else { break };
                            steps.push(Step::Branch {
                                choice: Arc::clone(&shared[*choice]),
                                at_end: *at_end,
                                seconds: Arc::clone(&shared_seconds[*seconds]),
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
            seconds,
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
