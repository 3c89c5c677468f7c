//! The arena plan of a program: tensor lifetimes from the operation order, buffers shared by
//! aliased tensors (reshapes, in-place sums), offsets from the greedy planner tried in a few
//! orders.

use tinyfit_micro::planner::{self, Buffer};

use crate::lower::ARENA_ALIGNMENT;
use crate::program::{MemoryPlan, Program};

/// Lifetimes → buffers (aliased tensors share one) → offsets; sets every tensor's offset, each
/// operation's live bytes and the program's [`MemoryPlan`].
///
/// A routed program is planned along its paths: the common operations, then each branch's
/// counted from where the common ones end, so that the branches' tensors share bytes and the
/// common tensors a branch reads live until that branch's last read of them.
pub(crate) fn plan(p: &mut Program) {
    let (step, path) = steps(p);
    let end = step.iter().max().map_or(0, |s| s + 1);
    let mut first = vec![usize::MAX; p.tensors.len()];
    let mut last = vec![0usize; p.tensors.len()];
    let mut tensor_path = vec![0usize; p.tensors.len()];
    for &t in &p.inputs {
        first[t as usize] = 0;
    }
    for (k, op) in p.operations.iter().enumerate() {
        let (s, o) = (step[k], op.output as usize);
        first[o] = first[o].min(s);
        last[o] = last[o].max(s);
        tensor_path[o] = path[k];
        for &t in op.inputs.of(&p.operands).unwrap_or(&[]) {
            last[t as usize] = last[t as usize].max(s);
        }
    }
    for &t in &p.outputs {
        last[t as usize] = end;
    }
    // A reshape or sum whose input dies there reuses its input's bytes.
    let mut owner: Vec<usize> = (0..p.tensors.len()).collect();
    for &(from, to) in &p.aliases {
        let (from, to) = (from as usize, to as usize);
        let at = first[to];
        let is_io = p.inputs.contains(&(from as u32)) || p.outputs.contains(&(from as u32));
        // Its only output tensor, and the input's bytes are free after this step.
        let shared = (0..owner.len()).any(|t| t != from && owner[t] == owner[from] && last[t] > at);
        if owner[to] == to && last[from] == at && !is_io && !shared {
            owner[to] = owner[from];
        }
    }
    let mut buffers: Vec<Buffer> = Vec::new();
    let mut buffer_of = vec![usize::MAX; p.tensors.len()];
    for t in 0..p.tensors.len() {
        // A tensor nothing writes (one a sliced program no longer computes) takes no bytes.
        let unused = first[t] == usize::MAX;
        if unused {
            first[t] = 0;
        }
        let o = owner[t];
        if o != t {
            let b = buffer_of[o];
            buffers[b].last = buffers[b].last.max(last[t]);
            buffer_of[t] = b;
        } else {
            buffers.push(Buffer {
                size: if unused { 0 } else { p.tensors[t].shape.len() },
                first: first[t],
                last: last[t].max(first[t]),
                path: tensor_path[t],
            });
            buffer_of[t] = buffers.len() - 1;
        }
    }
    let (arena, offsets) = best_plan(&buffers);
    for (t, info) in p.tensors.iter_mut().enumerate() {
        info.offset = offsets[buffer_of[t]];
    }
    for (k, r) in p.report.iter_mut().enumerate() {
        r.live_bytes = planner::live_bytes(&buffers, step[k], path[k]);
    }
    p.memory = MemoryPlan {
        arena_bytes: arena,
        lower_bound: planner::lower_bound(&buffers),
    };
}

/// Each operation's step along its path and its path (0: common, k + 1: branch k): program
/// order for a program that is not routed.
fn steps(p: &Program) -> (Vec<usize>, Vec<usize>) {
    let n = p.operations.len();
    let Some(routing) = &p.routing else {
        return ((0..n).collect(), vec![0; n]);
    };
    let mut step: Vec<usize> = (0..n).collect();
    let mut path = vec![0; n];
    for (k, range) in routing.branches.iter().enumerate() {
        for (j, i) in range.clone().enumerate() {
            step[i] = routing.common + j;
            path[i] = k + 1;
        }
    }
    (step, path)
}

/// Sort key of a placement order: smaller keys are placed first.
type PlacementKey = fn(&Buffer) -> (usize, usize);

/// Greedy placement in a few orders (largest, longest-lived, largest size × lifetime, earliest);
/// the smallest arena wins. Greedy by size alone leaves gaps on networks such as MobileNet whose
/// early activations are large and short-lived.
fn best_plan(buffers: &[Buffer]) -> (usize, Vec<usize>) {
    let n = buffers.len();
    let keys: [PlacementKey; 4] = [
        |b| (usize::MAX - b.size, b.first),
        |b| (usize::MAX - lifetime(b), usize::MAX - b.size),
        |b| (usize::MAX - b.size * lifetime(b), b.first),
        |b| (b.first, usize::MAX - b.size),
    ];
    let mut best: Option<(usize, Vec<usize>)> = None;
    for key in keys {
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| (key(&buffers[i]), i));
        let mut offsets = vec![0usize; n];
        let arena = planner::plan_in_order(buffers, ARENA_ALIGNMENT, &mut offsets, &order)
            .expect("lifetimes are ordered and the order is a permutation");
        if best.as_ref().is_none_or(|(a, _)| arena < *a) {
            best = Some((arena, offsets));
        }
    }
    best.unwrap_or((0, Vec::new()))
}

/// Steps a buffer stays alive.
fn lifetime(b: &Buffer) -> usize {
    b.last - b.first + 1
}
