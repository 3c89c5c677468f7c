//! Per-channel standardisation fitted on the training split only.

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;

/// `(x - mean[c]) / std[c]` for each channel `c` (axis 0 of the sample shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelNorm {
    /// Mean of each channel over the fitted samples and positions.
    pub mean: Vec<f32>,
    /// Standard deviation of each channel (population), floored at 1e-8.
    pub std: Vec<f32>,
}

impl ChannelNorm {
    /// Fits mean and standard deviation per channel, accumulating in f64.
    pub fn fit(data: &Dataset) -> ChannelNorm {
        let channels = data.sample_shape[0];
        let per_channel = data.sample_len() / channels;
        let mut sum = vec![0f64; channels];
        let mut sq = vec![0f64; channels];
        for (chunk_index, chunk) in data.x.chunks_exact(per_channel).enumerate() {
            let c = chunk_index % channels;
            for &v in chunk {
                sum[c] += v as f64;
                sq[c] += (v as f64) * (v as f64);
            }
        }
        let n = (data.len() * per_channel).max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let std = sq
            .iter()
            .zip(&mean)
            .map(|(s, m)| ((s / n - m * m).max(0.0).sqrt() as f32).max(1e-8))
            .collect();
        ChannelNorm {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            std,
        }
    }

    /// Standardises every sample in place.
    pub fn apply(&self, data: &mut Dataset) {
        let channels = data.sample_shape[0];
        let per_channel = data.sample_len() / channels;
        for (chunk_index, chunk) in data.x.chunks_exact_mut(per_channel).enumerate() {
            let c = chunk_index % channels;
            let (m, s) = (self.mean[c], self.std[c]);
            for v in chunk {
                *v = (*v - m) / s;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standardises_each_channel() {
        let mut d = Dataset::empty(vec![2, 2], vec!["a".into()]);
        d.push(&[1.0, 3.0, 10.0, 10.0], 0, 0);
        d.push(&[1.0, 3.0, 20.0, 20.0], 0, 0);
        let norm = ChannelNorm::fit(&d);
        assert_eq!(norm.mean, vec![2.0, 15.0]);
        assert_eq!(norm.std, vec![1.0, 5.0]);
        norm.apply(&mut d);
        assert_eq!(d.x, vec![-1.0, 1.0, -1.0, -1.0, -1.0, 1.0, 1.0, 1.0]);
    }
}
