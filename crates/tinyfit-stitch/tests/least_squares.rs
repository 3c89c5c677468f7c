//! The least-squares stitching layer recovers an affine map exactly, takes the minimum-norm
//! solution when activations are rank-deficient (the pseudoinverse), and reads channels-first
//! feature maps position by position (synthetic activations: tests of the algebra).

use ndarray::{Array1, Array2, array};
use tinyfit_stitch::least_squares::{Affine, average, fit, rows};

/// A deterministic pseudo-random matrix.
fn matrix(rows: usize, cols: usize, seed: u64) -> Array2<f64> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    Array2::from_shape_fn((rows, cols), |_| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as f64 / (1u64 << 31) as f64) - 0.5
    })
}

fn max_abs_diff(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    (a - b).iter().fold(0.0, |m, v| m.max(v.abs()))
}

#[test]
fn an_exact_affine_map_is_recovered() {
    let x = matrix(200, 5, 1);
    let w = matrix(3, 5, 2);
    let b = array![0.5, -1.0, 2.0];
    let y = x.dot(&w.t()) + &b;
    let fitted = fit(&x, &y).unwrap();
    assert!(max_abs_diff(&fitted.weight, &w) < 1e-9);
    assert!((&fitted.bias - &b).iter().all(|v| v.abs() < 1e-9));
}

#[test]
fn rank_deficient_activations_give_the_minimum_norm_map() {
    // The second channel repeats the first: any split of the weight between them fits; the
    // pseudoinverse gives the even split.
    let base = matrix(100, 1, 3);
    let mut x = Array2::<f64>::zeros((100, 2));
    x.column_mut(0).assign(&base.column(0));
    x.column_mut(1).assign(&base.column(0));
    let y = base.mapv(|v| 4.0 * v + 1.0);
    let fitted = fit(&x, &y).unwrap();
    assert!((fitted.weight[[0, 0]] - 2.0).abs() < 1e-9);
    assert!((fitted.weight[[0, 1]] - 2.0).abs() < 1e-9);
    assert!((fitted.bias[0] - 1.0).abs() < 1e-9);
}

#[test]
fn mismatched_rows_are_refused() {
    let err = fit(&matrix(10, 2, 4), &matrix(9, 2, 5)).unwrap_err();
    assert!(
        err.to_string()
            .contains("10 front activation rows against 9")
    );
}

#[test]
fn feature_maps_become_one_row_per_position() {
    // [N = 2, C = 3, L = 2], channels first.
    let values: Vec<f32> = (0..12).map(|v| v as f32).collect();
    let r = rows(&values, &[2, 3, 2]);
    assert_eq!(r.dim(), (4, 3));
    assert_eq!(r.row(0).to_vec(), vec![0.0, 2.0, 4.0]);
    assert_eq!(r.row(1).to_vec(), vec![1.0, 3.0, 5.0]);
    assert_eq!(r.row(2).to_vec(), vec![6.0, 8.0, 10.0]);
}

#[test]
fn shared_layers_average_their_fits() {
    let a = Affine {
        weight: array![[1.0, 2.0]],
        bias: Array1::from(vec![0.0]),
    };
    let b = Affine {
        weight: array![[3.0, 0.0]],
        bias: Array1::from(vec![2.0]),
    };
    let mean = average(&[a, b]).unwrap();
    assert_eq!(mean.weight, array![[2.0, 1.0]]);
    assert_eq!(mean.bias, Array1::from(vec![1.0]));
    assert!(average(&[]).is_none());
}
