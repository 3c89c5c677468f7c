//! The arena plan of a program: tensor lifetimes from the operation order, buffers shared by
//! aliased tensors (reshapes, in-place sums), offsets from the greedy planner tried in a few
//! orders.

use tinyfit_micro::planner::{self, Buffer};

use crate::lower::ARENA_ALIGNMENT;
use crate::program::{MemoryPlan, Program};

/// Lifetimes → buffers (aliased tensors share one) → offsets; sets every tensor's offset, each
/// operation's live bytes and the program's [`MemoryPlan`].
pub(crate) fn plan(p: &mut Program) {
    let n_ops = p.operations.len();
    let mut first = vec![usize::MAX; p.tensors.len()];
    let mut last = vec![0usize; p.tensors.len()];
    for &t in &p.inputs {
        first[t as usize] = 0;
    }
    for (k, op) in p.operations.iter().enumerate() {
        first[op.output as usize] = first[op.output as usize].min(k);
        last[op.output as usize] = last[op.output as usize].max(k);
        for &t in op.inputs.of(&p.operands).unwrap_or(&[]) {
            last[t as usize] = last[t as usize].max(k);
        }
    }
    for &t in &p.outputs {
        last[t as usize] = n_ops;
    }
    // A reshape or sum whose input dies there reuses its input's bytes.
    let mut owner: Vec<usize> = (0..p.tensors.len()).collect();
    for &(from, to) in &p.aliases {
        let (from, to) = (from as usize, to as usize);
        let step = first[to];
        let is_io = p.inputs.contains(&(from as u32)) || p.outputs.contains(&(from as u32));
        // Its only output tensor, and the input's bytes are free after this step.
        let shared =
            (0..owner.len()).any(|t| t != from && owner[t] == owner[from] && last[t] > step);
        if owner[to] == to && last[from] == step && !is_io && !shared {
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
            });
            buffer_of[t] = buffers.len() - 1;
        }
    }
    let (arena, offsets) = best_plan(&buffers);
    for (t, info) in p.tensors.iter_mut().enumerate() {
        info.offset = offsets[buffer_of[t]];
    }
    for (k, r) in p.report.iter_mut().enumerate() {
        r.live_bytes = buffers
            .iter()
            .filter(|b| b.first <= k && k <= b.last)
            .map(|b| b.size)
            .sum();
    }
    p.memory = MemoryPlan {
        arena_bytes: arena,
        lower_bound: planner::lower_bound(&buffers),
    };
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
