//! Least-squares initialisation of a stitching layer (`snnet.md` §A3): the affine map that
//! best carries the front anchor's activations to the ones the end anchor expects,
//! `[Wᵀ; bᵀ] = pinv([X_front, 1]) · X_end`, with rows one sample (or one position of a feature
//! map) each. The pseudoinverse cuts singular values below `rtol · σ_max` as
//! `torch.linalg.pinv` does by default for the reference's f32 features.

use linfa_linalg::svd::SVDInto;
use ndarray::{Array1, Array2, Axis, s};

/// Why a stitching layer cannot be fitted.
#[derive(Debug, thiserror::Error)]
pub enum LeastSquaresError {
    /// The activations do not pair up.
    #[error("{0}")]
    Shape(String),
    /// The decomposition failed (non-finite activations).
    #[error("the SVD of the front activations failed: {0}")]
    Svd(String),
}

/// A stitching layer's weights: `y = W x + b`.
#[derive(Debug, Clone, PartialEq)]
pub struct Affine {
    /// `[out, in]`, PyTorch's linear (or 1×1 convolution) layout.
    pub weight: Array2<f64>,
    /// `[out]`.
    pub bias: Array1<f64>,
}

/// The least-squares affine map from `front` (`[n, in]`) to `end` (`[n, out]`).
pub fn fit(front: &Array2<f64>, end: &Array2<f64>) -> Result<Affine, LeastSquaresError> {
    let (n, d_in) = front.dim();
    if end.nrows() != n || n == 0 {
        return Err(LeastSquaresError::Shape(format!(
            "{n} front activation rows against {} end rows: one row per sample position on both \
             sides, at least one",
            end.nrows()
        )));
    }
    let mut a = Array2::<f64>::ones((n, d_in + 1));
    a.slice_mut(s![.., ..d_in]).assign(front);
    let (u, sigma, vt) = a
        .svd_into(true, true)
        .map_err(|e| LeastSquaresError::Svd(e.to_string()))?;
    let (u, vt) = (u.expect("asked for U"), vt.expect("asked for Vᵀ"));
    // torch.linalg.pinv's default cut-off for f32 inputs: rtol = ε_f32 · max(rows, columns).
    let rtol = f64::from(f32::EPSILON) * n.max(d_in + 1) as f64;
    let largest = sigma.iter().copied().fold(0.0, f64::max);
    let inverse = sigma.mapv(|v| if v > rtol * largest { 1.0 / v } else { 0.0 });
    // θ = V · Σ⁺ · Uᵀ · X_end, `[in + 1, out]`.
    let projected = u.t().dot(end) * &inverse.insert_axis(Axis(1));
    let theta = vt.t().dot(&projected);
    Ok(Affine {
        weight: theta.slice(s![..d_in, ..]).t().to_owned(),
        bias: theta.row(d_in).to_owned(),
    })
}

/// The mean of several fits of one shared stitching layer (the reference solves each stitch
/// of a window separately and averages the weights and biases).
pub fn average(fits: &[Affine]) -> Option<Affine> {
    let first = fits.first()?;
    let mut sum = first.clone();
    for f in &fits[1..] {
        sum.weight += &f.weight;
        sum.bias += &f.bias;
    }
    let k = fits.len() as f64;
    Some(Affine {
        weight: sum.weight / k,
        bias: sum.bias / k,
    })
}

/// Channels-first activations `[N, C, positions...]` (row-major) as rows `[N · positions, C]`:
/// each position of each sample a row, as the reference reshapes NCHW to NHWC.
pub fn rows(values: &[f32], shape: &[usize]) -> Array2<f64> {
    let (n, c) = (shape[0], shape[1]);
    let positions: usize = shape[2..].iter().product();
    Array2::from_shape_fn((n * positions, c), |(r, ch)| {
        let (sample, p) = (r / positions, r % positions);
        f64::from(values[(sample * c + ch) * positions + p])
    })
}
