//! Routed programs: the int8 scores of output 0 choose one of the other outputs, and only the
//! operations that output needs run (DiTMoS: a selector routes each input to one of m
//! classifiers, which also read the selector's feature maps).
//!
//! A program is routed when its outputs are `[scores (m values), branch 0, ..., branch m-1]`
//! and its operations fall, in order, into a common part (everything the scores need, and
//! whatever several branches share) followed by one contiguous run of operations per branch.
//! Its memory plan follows the paths ([`crate::plan`]): each branch's tensors may take the
//! bytes of every other branch's, and the common part's outputs that a branch reads are alive
//! until that branch's last read of them.
//!
//! [`Program::sliced`] trades that for recomputation: each branch recomputes the common
//! tensors it reads (at its start or just before the read, whichever plans smaller), so the
//! common part's feature maps die with the scores. Peak SRAM falls by the feature
//! maps no longer kept across the branch; latency rises by the recomputed operations; flash is
//! unchanged (recomputed operations share their constants).

use std::collections::HashMap;
use std::ops::Range;

use crate::host::Engine;
use crate::plan::plan;
use crate::program::Program;

/// Which operations run for which route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    /// Operations `0..common` run for every input; the scores are known after them.
    pub common: usize,
    /// Branch `k`'s operations (they produce output `k + 1`, or output `k` where the caller
    /// chooses), in program order.
    pub branches: Vec<Range<usize>>,
    /// Who picks the branch.
    pub chooser: Chooser,
}

/// Who picks a routed program's branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chooser {
    /// The program: output 0 holds int8 scores, the first of the largest picks the branch
    /// (DiTMoS's selector).
    Scores,
    /// The caller, before running it ([`Program::run_route`]; `tinyfit_set_route` in C): the
    /// routes of a [`Program::switchable`] program. There is no scores output; output `k` is
    /// branch `k`'s.
    Caller,
}

/// Why a program cannot be routed.
#[derive(Debug, thiserror::Error)]
#[error("not a routed program: {0}")]
pub struct RoutingError(String);

/// Where each operation belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Common,
    Branch(usize),
}

impl Routing {
    /// The routing of `program`, from which outputs each operation contributes to.
    pub fn of(program: &Program) -> Result<Routing, RoutingError> {
        let fail = |why: String| Err(RoutingError(why));
        let outputs = &program.outputs;
        let m = outputs.len().saturating_sub(1);
        if m == 0 {
            return fail("it needs the routing scores and at least one branch output".into());
        }
        let scores = &program.tensors[outputs[0] as usize];
        if scores.shape.len() != m {
            return fail(format!(
                "output 0 (the routing scores) holds {} values for {m} branches",
                scores.shape.len()
            ));
        }
        let first = program.tensors[outputs[1] as usize].shape;
        if let Some(k) = outputs[1..]
            .iter()
            .position(|&t| program.tensors[t as usize].shape != first)
        {
            return fail(format!(
                "branch outputs differ in shape: branch 0 {:?}, branch {k} {:?}",
                first,
                program.tensors[outputs[1 + k] as usize].shape
            ));
        }
        let parts = parts(program);
        let mut common = 0;
        while common < parts.len() && parts[common] == Part::Common {
            common += 1;
        }
        let mut branches = Vec::with_capacity(m);
        let mut at = common;
        for k in 0..m {
            let start = at;
            while at < parts.len() && parts[at] == Part::Branch(k) {
                at += 1;
            }
            if start == at {
                return fail(format!(
                    "branch {k} has no operations of its own at step {at}"
                ));
            }
            branches.push(start..at);
        }
        if at != parts.len() {
            return fail(format!(
                "operation {at} ({}) is {:?} but comes after the branches; the common \
                 operations must come first and each branch's operations together",
                program.report[at].node, parts[at]
            ));
        }
        Ok(Routing {
            common,
            branches,
            chooser: Chooser::Scores,
        })
    }

    /// Number of branches.
    pub fn branches(&self) -> usize {
        self.branches.len()
    }
}

/// Each operation's part: the branch whose output alone it feeds, else common.
fn parts(program: &Program) -> Vec<Part> {
    let reach = reached_outputs(program);
    reach
        .iter()
        .map(|r| {
            let mut reached = r.iter().enumerate().filter(|&(_, &on)| on).map(|(o, _)| o);
            match (reached.next(), reached.next()) {
                (Some(o), None) if o > 0 => Part::Branch(o - 1),
                _ => Part::Common,
            }
        })
        .collect()
}

/// For each operation, which outputs depend on it.
fn reached_outputs(program: &Program) -> Vec<Vec<bool>> {
    let n_out = program.outputs.len();
    let mut reach_tensor = vec![vec![false; n_out]; program.tensors.len()];
    for (o, &t) in program.outputs.iter().enumerate() {
        reach_tensor[t as usize][o] = true;
    }
    let mut reach = vec![vec![false; n_out]; program.operations.len()];
    for (i, op) in program.operations.iter().enumerate().rev() {
        let r = reach_tensor[op.output as usize].clone();
        for &t in op.inputs.of(&program.operands).unwrap_or(&[]) {
            for (a, b) in reach_tensor[t as usize].iter_mut().zip(&r) {
                *a |= *b;
            }
        }
        reach[i] = r;
    }
    reach
}

/// The route int8 `scores` choose: the first of the largest.
pub fn route_of(scores: &[i8]) -> usize {
    let mut best = 0;
    for (k, &s) in scores.iter().enumerate() {
        if s > scores[best] {
            best = k;
        }
    }
    best
}

impl Program {
    /// This program with its branches routed ([`Routing::of`]) and re-planned along its
    /// paths: running it runs the common operations, then only the branch its scores choose
    /// (the plan no longer holds for running every operation in a row).
    pub fn routed(mut self) -> Result<Program, RoutingError> {
        self.routing = Some(Routing::of(&self)?);
        plan(&mut self);
        Ok(self)
    }

    /// The routing, for a routed program.
    pub fn routing(&self) -> Option<&Routing> {
        self.routing.as_ref()
    }

    /// A routed program whose branches recompute the common tensors they read instead of
    /// keeping them (see the module documentation), re-planned. Common operations that only
    /// branches need are dropped from the common part.
    ///
    /// Where a recomputation goes decides the peak: just before the first read keeps the map
    /// alive least, at the start of the branch avoids recomputing it beside the branch's own
    /// early maps. Each branch reads its common tensors in the same order, so every choice of
    /// which of the first [`MAX_EAGER_CHOICES`] go first is tried, and the smallest arena kept.
    pub fn sliced(&self) -> Result<Program, RoutingError> {
        let routing = self
            .routing
            .as_ref()
            .filter(|r| r.chooser == Chooser::Scores)
            .ok_or_else(|| RoutingError("slicing needs a program routed by its scores".into()))?;
        let mut producer: Vec<Option<usize>> = vec![None; self.tensors.len()];
        for (i, op) in self.operations.iter().enumerate() {
            producer[op.output as usize] = Some(i);
        }
        // The common operations the scores need: the sliced program's common part.
        let scoring: Vec<usize> = reached_outputs(self)
            .iter()
            .enumerate()
            .take(routing.common)
            .filter(|(_, reached)| reached[0])
            .map(|(i, _)| i)
            .collect();
        let read = routing
            .branches
            .iter()
            .map(|range| common_reads(self, range.clone(), &producer, routing.common).len())
            .max()
            .unwrap_or(0);
        let choices = 1usize << read.min(MAX_EAGER_CHOICES);
        let best = (0..choices)
            .map(|eager| self.sliced_with(routing, &producer, &scoring, eager))
            .min_by_key(|p| p.memory.arena_bytes)
            .expect("at least one choice");
        Ok(best)
    }

    /// [`Program::sliced`] with the common tensors whose bit is set in `eager` (in the order a
    /// branch first reads them) recomputed at the start of each branch, the others just before
    /// their first read.
    fn sliced_with(
        &self,
        routing: &Routing,
        producer: &[Option<usize>],
        scoring: &[usize],
        eager: usize,
    ) -> Program {
        let mut sliced = Slicer {
            source: self,
            producer,
            out: Program {
                operations: Vec::new(),
                operands: Vec::new(),
                report: Vec::new(),
                routing: None,
                host: Engine::default(),
                ..self.clone()
            },
            copies: HashMap::new(),
        };
        for &i in scoring {
            sliced.push(i, None);
        }
        let common = sliced.out.operations.len();
        let mut branches = Vec::with_capacity(routing.branches.len());
        for range in &routing.branches {
            let start = sliced.out.operations.len();
            sliced.copies.clear();
            let reads = common_reads(self, range.clone(), producer, routing.common);
            for (k, &t) in reads.iter().enumerate() {
                if eager & (1 << k) != 0 {
                    sliced.recompute(t);
                }
            }
            for i in range.clone() {
                let inputs = self.operations[i].inputs.of(&self.operands).unwrap_or(&[]);
                for &t in inputs {
                    if made_in_common(producer, t, routing.common) {
                        sliced.recompute(t);
                    }
                }
                sliced.push(i, None);
            }
            branches.push(start..sliced.out.operations.len());
        }
        let mut out = sliced.out;
        out.routing = Some(Routing {
            common,
            branches,
            chooser: Chooser::Scores,
        });
        plan(&mut out);
        out.host = Engine::new(&out.model());
        out
    }
}

/// How many of a branch's common reads [`Program::sliced`] tries placing early, in every
/// combination (2^n plans).
pub const MAX_EAGER_CHOICES: usize = 4;

/// The tensors made by common operations that the operations `range` read, in order of first
/// read.
fn common_reads(
    program: &Program,
    range: Range<usize>,
    producer: &[Option<usize>],
    common: usize,
) -> Vec<u32> {
    let mut reads = Vec::new();
    for i in range {
        for &t in program.operations[i]
            .inputs
            .of(&program.operands)
            .unwrap_or(&[])
        {
            if made_in_common(producer, t, common) && !reads.contains(&t) {
                reads.push(t);
            }
        }
    }
    reads
}

/// Whether tensor `t` is written by one of the first `common` operations.
fn made_in_common(producer: &[Option<usize>], t: u32, common: usize) -> bool {
    producer[t as usize].is_some_and(|p| p < common)
}

/// Builds a sliced program: operations copied from `source`, with tensors recomputed within
/// the current branch renamed through `copies`.
struct Slicer<'a> {
    source: &'a Program,
    producer: &'a [Option<usize>],
    out: Program,
    /// Common tensors recomputed in the current branch: original → copy.
    copies: HashMap<u32, u32>,
}

impl Slicer<'_> {
    /// Recomputes common tensor `t` (and what it needs) in the current branch, once.
    fn recompute(&mut self, t: u32) {
        if self.copies.contains_key(&t) {
            return;
        }
        let Some(p) = self.producer[t as usize] else {
            return; // a program input: read as it is
        };
        let op = self.source.operations[p];
        for &u in op.inputs.of(&self.source.operands).unwrap_or(&[]) {
            self.recompute(u);
        }
        let copy = self.out.tensors.len() as u32;
        self.out.tensors.push(self.source.tensors[t as usize]);
        self.out
            .graph_shapes
            .push(self.source.graph_shapes[t as usize].clone());
        let aliased: Vec<(u32, u32)> = self
            .source
            .aliases
            .iter()
            .filter(|&&(_, to)| to == t)
            .filter_map(|&(from, _)| self.copies.get(&from).map(|&c| (c, copy)))
            .collect();
        self.out.aliases.extend(aliased);
        self.copies.insert(t, copy);
        self.push(p, Some(copy));
    }

    /// Appends a copy of source operation `i` reading the current branch's copies, writing
    /// `output` (a recomputation, which adds no constants) or its own output.
    fn push(&mut self, i: usize, output: Option<u32>) {
        let op = self.source.operations[i];
        let inputs: Vec<u32> = op
            .inputs
            .of(&self.source.operands)
            .unwrap_or(&[])
            .iter()
            .map(|t| self.copies.get(t).copied().unwrap_or(*t))
            .collect();
        let start = self.out.operands.len() as u32;
        self.out.operands.extend(&inputs);
        let mut report = self.source.report[i].clone();
        if output.is_some() {
            report.node.push_str(" (recomputed)");
            report.const_bytes = 0;
        }
        self.out.report.push(report);
        self.out.operations.push(tinyfit_micro::Operation {
            kernel: op.kernel,
            inputs: tinyfit_micro::Span {
                start,
                len: inputs.len() as u32,
            },
            output: output.unwrap_or(op.output),
        });
    }
}
