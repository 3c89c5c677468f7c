//! Linear centred kernel alignment (Kornblith et al., 2019): how alike two models' features
//! are on the same samples, invariant to rotations and to isotropic scaling of either. DiTMoS
//! uses it to show its classifiers are diverse (low CKA between them).

use ndarray::{Array2, Axis};
use tinyfit_data::Dataset;
use tinyfit_graph::ValueRef;
use tinyfit_train::{GraphModel, Value, batch};

use crate::model::Ditmos;

/// `‖Yᵀ X‖²_F / (‖Xᵀ X‖_F · ‖Yᵀ Y‖_F)` on column-centred features `x` `[N, p]` and `y`
/// `[N, q]`; in [0, 1], 0 when either has no variance.
pub fn linear_cka(x: &Array2<f32>, y: &Array2<f32>) -> f64 {
    assert_eq!(
        x.nrows(),
        y.nrows(),
        "CKA compares features of the same samples"
    );
    let centre = |a: &Array2<f32>| -> Array2<f64> {
        let a = a.mapv(f64::from);
        let mean = a.mean_axis(Axis(0)).expect("at least one sample");
        a - &mean
    };
    let (x, y) = (centre(x), centre(y));
    let frobenius2 = |m: Array2<f64>| m.iter().map(|v| v * v).sum::<f64>();
    let cross = frobenius2(y.t().dot(&x));
    let norm = (frobenius2(x.t().dot(&x)) * frobenius2(y.t().dot(&y))).sqrt();
    if norm > 0.0 { cross / norm } else { 0.0 }
}

/// Linear CKA between every pair of `[strong, classifier 0, ..., classifier m-1]` on `data`,
/// each model represented by what its output layer reads (its last hidden features), in
/// inference mode (`strong` and `system` on the plain device).
pub fn similarity_matrix(
    strong: &GraphModel,
    system: &Ditmos,
    data: &Dataset,
    batch_size: usize,
) -> Vec<Vec<f64>> {
    let device = tinyfit_train::cpu();
    let m = system.m();
    let mut rows: Vec<Vec<f32>> = vec![Vec::new(); 1 + m];
    let mut widths = vec![0; 1 + m];
    let all: Vec<usize> = (0..data.len()).collect();
    for indices in all.chunks(batch_size.max(1)) {
        let x = batch::inputs(data, indices, &device);
        let mut take = |k: usize, model: &GraphModel, inputs: Vec<Value>| {
            let (inputs, values) = model.forward_all(inputs);
            let v = match penultimate(model) {
                ValueRef::Input(i) => &inputs[i],
                ValueRef::Node(j) => &values[j],
            };
            widths[k] = v.dims()[1..].iter().product();
            rows[k].extend(v.to_vec());
        };
        take(0, strong, vec![x.clone()]);
        let selection = system.select(x.clone());
        for (i, classifier) in system.classifiers.iter().enumerate() {
            let mut inputs = vec![x.clone()];
            inputs.extend(selection.features.iter().cloned());
            take(1 + i, classifier, inputs);
        }
    }
    let features: Vec<Array2<f32>> = rows
        .into_iter()
        .zip(&widths)
        .map(|(r, &w)| Array2::from_shape_vec((data.len(), w), r).expect("N rows of w values"))
        .collect();
    features
        .iter()
        .map(|a| features.iter().map(|b| linear_cka(a, b)).collect())
        .collect()
}

/// The value a model's (first) output layer reads.
fn penultimate(model: &GraphModel) -> ValueRef {
    let graph = model.graph();
    let analysis = graph.analyze().expect("a model's graph checks");
    match analysis.outputs[0] {
        ValueRef::Node(j) => analysis.nodes[j].inputs[0],
        input => input,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(n: usize, d: usize, seed: u32) -> Array2<f32> {
        let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        Array2::from_shape_fn((n, d), |_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        })
    }

    #[test]
    fn cka_is_one_for_rotated_and_scaled_copies_and_small_for_independent_features() {
        let x = random(200, 4, 1);
        assert!((linear_cka(&x, &x) - 1.0).abs() < 1e-9);
        // A rotation in the first two dimensions, a scale and a shift.
        let (c, s) = (0.6f32, 0.8f32);
        let mut y = x.clone();
        for mut row in y.rows_mut() {
            let (a, b) = (row[0], row[1]);
            row[0] = 3.0 * (c * a - s * b) + 1.0;
            row[1] = 3.0 * (s * a + c * b) - 2.0;
            row[2] *= 3.0;
            row[3] *= 3.0;
        }
        assert!((linear_cka(&x, &y) - 1.0).abs() < 1e-6);
        let z = random(200, 4, 2);
        assert!(linear_cka(&x, &z) < 0.1, "{}", linear_cka(&x, &z));
        assert_eq!(linear_cka(&x, &Array2::zeros((200, 3))), 0.0);
    }
}
