//! Weight quantisation below eight bits, on the host (for post-training quantisation) and as
//! fake quantisation in training (QAT), with one definition of each grid.
//!
//! Every grid is symmetric and per output channel, so it survives folding a batch norm into
//! the layer (a per-channel factor moves the scale, not the codes):
//! - int8 / int4: `s = max|w| / q_max`, codes `round(w / s)` in `[−q_max, q_max]`
//!   (127 and 7);
//! - ternary (Li and Liu's TWN): `Δ = 0.7 · mean|w|`, codes `sign(w)` where `|w| > Δ`, else 0;
//!   `α = mean |w|` over the codes that are not 0;
//! - binary (XNOR-Net): codes `sign(w)` (0 counts as +1), `α = ‖w‖₁ / n`.
//!
//! In training the forward pass uses the quantised weights and the gradient passes straight
//! through to the full-precision ones (the straight-through estimator: `w + (Q(w) − w)` with
//! the difference detached).

use std::collections::BTreeMap;

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// How one layer's weights are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightBits {
    /// Eight bits.
    Int8,
    /// Four bits.
    Int4,
    /// −α, 0, +α (two bits).
    Ternary,
    /// −α, +α (one bit).
    Binary,
}

/// Per layer (graph node name) weight precision; layers not named keep int8.
pub type Precision = BTreeMap<String, WeightBits>;

/// TWN's threshold as a fraction of the mean magnitude.
const TERNARY_THRESHOLD: f32 = 0.7;

impl WeightBits {
    /// Bits a weight takes stored.
    pub fn bits(self) -> u32 {
        match self {
            WeightBits::Int8 => 8,
            WeightBits::Int4 => 4,
            WeightBits::Ternary => 2,
            WeightBits::Binary => 1,
        }
    }

    /// The codes and scale of one output channel's weights: `w ≈ scale · code`.
    pub fn quantize_row(self, w: &[f32]) -> (Vec<i8>, f32) {
        let n = w.len().max(1) as f32;
        let mean_abs = w.iter().map(|v| v.abs()).sum::<f32>() / n;
        let positive = |s: f32| if s > 0.0 { s } else { 1.0 };
        match self {
            WeightBits::Int8 | WeightBits::Int4 => {
                let q_max = if self == WeightBits::Int8 { 127.0 } else { 7.0 };
                let max = w.iter().fold(0f32, |m, v| m.max(v.abs()));
                let s = positive(max / q_max);
                let codes = w
                    .iter()
                    .map(|v| (v / s).round().clamp(-q_max, q_max) as i8)
                    .collect();
                (codes, s)
            }
            WeightBits::Ternary => {
                let delta = TERNARY_THRESHOLD * mean_abs;
                let codes: Vec<i8> = w
                    .iter()
                    .map(|&v| if v.abs() > delta { v.signum() as i8 } else { 0 })
                    .collect();
                let kept: Vec<f32> = w
                    .iter()
                    .filter(|v| v.abs() > delta)
                    .map(|v| v.abs())
                    .collect();
                let alpha = kept.iter().sum::<f32>() / kept.len().max(1) as f32;
                (codes, positive(alpha))
            }
            WeightBits::Binary => {
                let codes = w.iter().map(|&v| if v < 0.0 { -1 } else { 1 }).collect();
                (codes, positive(mean_abs))
            }
        }
    }

    /// The weights `[rows, n]` replaced by their quantised values in the forward pass, the
    /// gradient passed straight through.
    pub fn fake_quantize(self, w: Tensor<2>) -> Tensor<2> {
        let abs = w.clone().abs().detach();
        let q = match self {
            WeightBits::Int8 | WeightBits::Int4 => {
                let q_max = if self == WeightBits::Int8 { 127.0 } else { 7.0 };
                let s = abs
                    .max_dim(1)
                    .div_scalar(q_max)
                    .clamp_min(f32::MIN_POSITIVE);
                // Half away from zero, as `f32::round` on the host (burn rounds half to even).
                let t = w.clone().detach().div(s.clone());
                let rounded = t.clone().sign().mul(t.abs().add_scalar(0.5).floor());
                rounded.clamp(-q_max, q_max).mul(s)
            }
            WeightBits::Ternary => {
                let delta = abs.clone().mean_dim(1).mul_scalar(TERNARY_THRESHOLD);
                let kept = abs.clone().greater(delta).float();
                let count = kept.clone().sum_dim(1).clamp_min(1.0);
                let alpha = abs.mul(kept.clone()).sum_dim(1).div(count);
                w.clone().detach().sign().mul(kept).mul(alpha)
            }
            WeightBits::Binary => {
                let alpha = abs.mean_dim(1);
                let sign = w
                    .clone()
                    .detach()
                    .greater_equal_elem(0.0)
                    .float()
                    .mul_scalar(2.0)
                    .sub_scalar(1.0);
                sign.mul(alpha)
            }
        };
        w.clone() + (q - w).detach()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn rows() -> Vec<Vec<f32>> {
        vec![
            vec![0.5, -0.1, 0.05, -0.7, 0.3, 0.0],
            vec![-2.0, 1.0, 0.25, 0.1, -0.5, 1.5],
        ]
    }

    #[test]
    fn host_grids_follow_their_definitions() {
        let w = &rows()[0];
        let (codes, s) = WeightBits::Int4.quantize_row(w);
        assert!((s - 0.1).abs() < 1e-6);
        assert_eq!(codes, vec![5, -1, 1, -7, 3, 0]);
        // mean |w| = 1.65 / 6 = 0.275, Δ = 0.1925: 0.5, −0.7 and 0.3 survive, α = 0.5.
        let (codes, a) = WeightBits::Ternary.quantize_row(w);
        assert_eq!(codes, vec![1, 0, 0, -1, 1, 0]);
        assert!((a - 0.5).abs() < 1e-6);
        let (codes, a) = WeightBits::Binary.quantize_row(w);
        assert_eq!(codes, vec![1, -1, 1, -1, 1, 1]);
        assert!((a - 0.275).abs() < 1e-6);
    }

    #[test]
    fn fake_quantization_matches_the_host_grids() {
        let device = crate::cpu();
        let data: Vec<f32> = rows().concat();
        let w = Tensor::<2>::from_data(TensorData::new(data, vec![2, 6]), &device);
        for bits in [
            WeightBits::Int8,
            WeightBits::Int4,
            WeightBits::Ternary,
            WeightBits::Binary,
        ] {
            let got = bits.fake_quantize(w.clone()).into_data();
            let got = got.as_slice::<f32>().unwrap();
            for (r, row) in rows().iter().enumerate() {
                let (codes, s) = bits.quantize_row(row);
                for (k, &c) in codes.iter().enumerate() {
                    let want = s * c as f32;
                    assert!((got[r * 6 + k] - want).abs() < 1e-5, "{bits:?} [{r}][{k}]");
                }
            }
        }
    }
}
