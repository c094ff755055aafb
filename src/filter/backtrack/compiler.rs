//! The first form of a program: [`Compiler`] turns a parsed pattern into
//! a plain list of [`Inst`]s, the form the analyses work on.

use regex_syntax::hir::{Hir, HirKind, Look};

use super::MAX_INSTS;
use super::bytes::ByteSet;

/// The compile-time instruction list (see the module docs).
#[derive(Debug, Clone)]
pub(super) enum Inst {
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

pub(super) struct Compiler {
    pub(super) insts: Vec<Inst>,
    pub(super) max_slot: usize,
}

impl Compiler {
    pub(super) fn push(&mut self, inst: Inst) -> Option<usize> {
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

    pub(super) fn compile(&mut self, hir: &Hir) -> Option<()> {
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
