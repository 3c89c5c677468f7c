//! Which channels structured pruning must remove together.
//!
//! Every channel of every value in the graph is a *slot*. Operations that carry a channel
//! through unchanged tie their input slot to their output slot: batch norm, activations,
//! pooling, padding, dropout, depthwise convolution, flatten (channel `c` of `[C, S]` becomes
//! features `c·S .. (c+1)·S`), element-wise sums (all inputs and the output share a channel)
//! and concatenation (input `k`'s channel `c` is the output's channel `offset_k + c`). Tied
//! slots form one [`Unit`]: removing it removes a row of every convolution or linear layer that
//! produces it, the per-channel parameters of every batch norm and depthwise convolution on its
//! way, and a column of every layer that reads it. Units that reach a graph input or output, a
//! reshape, a softmax or a grouped (not depthwise) convolution are left alone.

use std::collections::BTreeMap;

use tinyfit_graph::{Analysis, Graph, Op, ValueRef};

/// One channel that pruning removes as a whole, as (node index, channel index) pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unit {
    /// Output channels of convolutions and linear layers: a weight row and a bias entry.
    pub rows: Vec<(usize, usize)>,
    /// Channels of batch norms and depthwise convolutions: their per-channel parameters.
    pub per_channel: Vec<(usize, usize)>,
    /// Input channels (features) of convolutions and linear layers: a weight column.
    pub columns: Vec<(usize, usize)>,
}

/// The graph's prunable units.
#[derive(Debug, Clone)]
pub struct Units {
    /// Every unit that no graph input, output or shape-bound operation pins.
    pub units: Vec<Unit>,
}

/// What a slot means to one node.
#[derive(Debug, Clone, Copy)]
enum Role {
    Row,
    PerChannel,
    Column,
}

/// Disjoint sets over slots. By hand: a dozen lines, and no crate offers just this.
struct Sets {
    parent: Vec<usize>,
}

impl Sets {
    fn new(n: usize) -> Self {
        Sets {
            parent: (0..n).collect(),
        }
    }

    fn root(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    fn join(&mut self, a: usize, b: usize) {
        let (a, b) = (self.root(a), self.root(b));
        self.parent[a] = b;
    }
}

/// The slots of every value: graph inputs first, then node outputs; a value's slots are its
/// channels (axis 0, channels first; the features of a 1-D value).
struct Slots {
    first: Vec<usize>,
    inputs: usize,
}

impl Slots {
    fn new(graph: &Graph, analysis: &Analysis) -> (Self, usize) {
        let mut first = Vec::new();
        let mut next = 0;
        let channels = graph
            .inputs
            .iter()
            .map(|i| i.shape.first().copied().unwrap_or(1))
            .chain(
                analysis
                    .nodes
                    .iter()
                    .map(|n| n.shape.output.first().copied().unwrap_or(1)),
            );
        for c in channels {
            first.push(next);
            next += c;
        }
        (
            Slots {
                first,
                inputs: graph.inputs.len(),
            },
            next,
        )
    }

    fn of(&self, value: ValueRef, channel: usize) -> usize {
        let index = match value {
            ValueRef::Input(i) => i,
            ValueRef::Node(j) => self.inputs + j,
        };
        self.first[index] + channel
    }
}

/// Finds the prunable units of `graph`.
pub fn units(graph: &Graph, analysis: &Analysis) -> Units {
    let (slots, count) = Slots::new(graph, analysis);
    let mut sets = Sets::new(count);
    let mut pinned = vec![false; count];
    let mut roles: Vec<(usize, usize, Role, usize)> = Vec::new(); // slot, node, role, index
    let channels = |v: ValueRef| graph.value_shape(analysis, v).first().copied().unwrap_or(1);
    let pin = |pinned: &mut Vec<bool>, v: ValueRef| {
        for c in 0..channels(v) {
            pinned[slots.of(v, c)] = true;
        }
    };
    for i in 0..graph.inputs.len() {
        pin(&mut pinned, ValueRef::Input(i));
    }
    for &v in &analysis.outputs {
        pin(&mut pinned, v);
    }
    for (j, (node, info)) in graph.nodes.iter().zip(&analysis.nodes).enumerate() {
        let y = ValueRef::Node(j);
        let out_c = channels(y);
        let Some(&u) = info.inputs.first() else {
            continue;
        };
        let in_shape = &info.input_shapes[0];
        let in_c = in_shape.first().copied().unwrap_or(1);
        // Ties channel c of u to channel c of y, for every channel.
        let carry = |sets: &mut Sets, u: ValueRef, offset: usize| {
            for c in 0..channels(u) {
                sets.join(slots.of(u, c), slots.of(y, offset + c));
            }
        };
        match &node.op {
            Op::Conv1d(conv) | Op::Conv2d(conv) => {
                if conv.groups == 1 {
                    roles.extend((0..in_c).map(|c| (slots.of(u, c), j, Role::Column, c)));
                    roles.extend((0..out_c).map(|c| (slots.of(y, c), j, Role::Row, c)));
                } else if conv.groups == in_c && out_c == in_c {
                    carry(&mut sets, u, 0);
                    roles.extend((0..out_c).map(|c| (slots.of(y, c), j, Role::PerChannel, c)));
                } else {
                    pin(&mut pinned, u);
                    pin(&mut pinned, y);
                }
            }
            Op::Linear(_) if in_shape.len() == 1 => {
                roles.extend((0..in_c).map(|c| (slots.of(u, c), j, Role::Column, c)));
                roles.extend((0..out_c).map(|c| (slots.of(y, c), j, Role::Row, c)));
            }
            Op::BatchNorm(_) => {
                carry(&mut sets, u, 0);
                roles.extend((0..out_c).map(|c| (slots.of(y, c), j, Role::PerChannel, c)));
            }
            Op::Relu
            | Op::Relu6
            | Op::Identity
            | Op::Dropout(_)
            | Op::MaxPool1d(_)
            | Op::MaxPool2d(_)
            | Op::AvgPool1d(_)
            | Op::AvgPool2d(_)
            | Op::GlobalAvgPool
            | Op::Mean(_)
            | Op::Pad(_) => carry(&mut sets, u, 0),
            Op::Flatten => {
                let per_channel = in_shape.iter().skip(1).product::<usize>().max(1);
                for f in 0..out_c {
                    sets.join(slots.of(u, f / per_channel), slots.of(y, f));
                }
            }
            Op::Add => {
                for &v in &info.inputs {
                    carry(&mut sets, v, 0);
                }
            }
            Op::Concat(concat) => {
                let mut offset = 0;
                for &v in &info.inputs {
                    carry(&mut sets, v, offset);
                    if concat.axis == 0 {
                        offset += channels(v);
                    }
                }
            }
            // A shuffle's permutation depends on the channel count: removing channels would
            // change which channels each later group reads.
            Op::Linear(_) | Op::Softmax | Op::Reshape(_) | Op::ChannelShuffle(_) => {
                for &v in &info.inputs {
                    pin(&mut pinned, v);
                }
                pin(&mut pinned, y);
            }
        }
    }
    // A set is pinned if any of its slots is.
    let mut pinned_root = vec![false; count];
    for (s, &p) in pinned.iter().enumerate() {
        if p {
            let r = sets.root(s);
            pinned_root[r] = true;
        }
    }
    let mut by_root: BTreeMap<usize, Unit> = BTreeMap::new();
    for (slot, node, role, index) in roles {
        let r = sets.root(slot);
        if pinned_root[r] {
            continue;
        }
        let unit = by_root.entry(r).or_default();
        match role {
            Role::Row => unit.rows.push((node, index)),
            Role::PerChannel => unit.per_channel.push((node, index)),
            Role::Column => unit.columns.push((node, index)),
        }
    }
    let units = by_root
        .into_values()
        .filter(|u| !u.rows.is_empty())
        .map(|mut u| {
            u.rows.sort_unstable();
            u.per_channel.sort_unstable();
            u.columns.sort_unstable();
            u
        })
        .collect();
    Units { units }
}
