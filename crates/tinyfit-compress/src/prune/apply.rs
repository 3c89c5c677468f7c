//! Removing units: a physically smaller graph and its weights.

use std::collections::BTreeSet;

use tinyfit_graph::{Analysis, Graph, Op, Tensor, Weights};

use super::PruneError;
use super::channels::Unit;

/// What to drop from one node.
#[derive(Default)]
struct Drops {
    rows: BTreeSet<usize>,
    per_channel: BTreeSet<usize>,
    columns: BTreeSet<usize>,
}

/// `graph` without `removed` (indices into `units`): convolutions and linear layers lose the
/// units' rows and columns, batch norms and depthwise convolutions their channels. The result
/// is checked: it must analyse and its weights must fit it.
pub fn remove(
    graph: &Graph,
    analysis: &Analysis,
    weights: &Weights,
    units: &[Unit],
    removed: &[usize],
) -> Result<(Graph, Weights), PruneError> {
    let mut drops: Vec<Drops> = (0..graph.nodes.len()).map(|_| Drops::default()).collect();
    for &u in removed {
        let unit = units.get(u).ok_or(PruneError::NoSuchUnit(u))?;
        for &(node, i) in &unit.rows {
            drops[node].rows.insert(i);
        }
        for &(node, i) in &unit.per_channel {
            drops[node].per_channel.insert(i);
        }
        for &(node, i) in &unit.columns {
            drops[node].columns.insert(i);
        }
    }
    let mut pruned = graph.clone();
    let mut out = weights.clone();
    for (j, (node, info)) in pruned.nodes.iter_mut().zip(&analysis.nodes).enumerate() {
        let d = &drops[j];
        if d.rows.is_empty() && d.per_channel.is_empty() && d.columns.is_empty() {
            continue;
        }
        let channels = info.shape.output.first().copied().unwrap_or(1);
        let kept = channels - d.rows.len() - d.per_channel.len();
        if kept == 0 {
            return Err(PruneError::EmptyLayer(node.name.clone()));
        }
        // Channel drops along axis 0 of every tensor; column drops along axis 1 of the weight.
        let along_channels = d.rows.union(&d.per_channel).copied().collect();
        match &mut node.op {
            Op::Conv1d(conv) | Op::Conv2d(conv) => {
                if conv.groups > 1 {
                    conv.groups = kept;
                }
                conv.out_channels = kept;
            }
            Op::Linear(linear) => linear.out_features = kept,
            _ => {}
        }
        for p in &info.shape.tensors {
            let name = format!("{}.{}", node.name, p.name);
            let t = out
                .tensors
                .get_mut(&name)
                .ok_or_else(|| PruneError::MissingTensor(name.clone()))?;
            *t = drop_along(t, 0, &along_channels);
            if p.name == "weight" && !d.columns.is_empty() {
                *t = drop_along(t, 1, &d.columns);
            }
        }
    }
    let analysis = pruned.analyze()?;
    out.check(&pruned, &analysis, std::path::Path::new("<pruned weights>"))?;
    Ok((pruned, out))
}

/// `t` without the indices `drop` along `axis`.
fn drop_along(t: &Tensor, axis: usize, drop: &BTreeSet<usize>) -> Tensor {
    if drop.is_empty() || axis >= t.shape.len() {
        return t.clone();
    }
    let outer: usize = t.shape[..axis].iter().product();
    let n = t.shape[axis];
    let inner: usize = t.shape[axis + 1..].iter().product();
    let mut data = Vec::with_capacity(t.data.len() / n * (n - drop.len()));
    for o in 0..outer {
        for i in (0..n).filter(|i| !drop.contains(i)) {
            let start = (o * n + i) * inner;
            data.extend_from_slice(&t.data[start..start + inner]);
        }
    }
    let mut shape = t.shape.clone();
    shape[axis] = n - drop.len();
    Tensor { shape, data }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_along_an_axis_keeps_the_rest_in_order() {
        let t = Tensor {
            shape: vec![2, 3, 2],
            data: (0..12).map(|v| v as f32).collect(),
        };
        let one: BTreeSet<usize> = [1].into();
        let middle = drop_along(&t, 1, &one);
        assert_eq!(middle.shape, vec![2, 2, 2]);
        assert_eq!(middle.data, vec![0.0, 1.0, 4.0, 5.0, 6.0, 7.0, 10.0, 11.0]);
        let first = drop_along(&t, 0, &[0].into());
        assert_eq!(first.shape, vec![1, 3, 2]);
        assert_eq!(first.data, (6..12).map(|v| v as f32).collect::<Vec<_>>());
    }
}
