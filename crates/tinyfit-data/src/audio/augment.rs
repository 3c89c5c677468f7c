//! Training-time audio augmentation as in the Speech Commands reference training: a random
//! time shift and background noise mixed in from the `_silence_` clips.
//!
//! tinyfit featurises once, before training, so augmentation adds `copies` perturbed versions of
//! every training clip (never of validation or test clips); noise comes only from training-split
//! noise clips, so nothing of a held-out speaker or recording leaks into training.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Augmentation settings (the `[data.augment]` table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Augment {
    /// Perturbed copies added per training clip.
    #[serde(default = "one")]
    pub copies: usize,
    /// Largest shift, milliseconds; each copy shifts uniformly within ±this, zero-filling.
    #[serde(default = "shift_ms")]
    pub time_shift_ms: f64,
    /// Probability that a copy gets background noise.
    #[serde(default = "noise_probability")]
    pub noise_probability: f64,
    /// Largest noise gain; each noisy copy draws its gain uniformly in [0, this].
    #[serde(default = "noise_volume")]
    pub noise_volume: f64,
    /// Seed of the perturbations.
    #[serde(default)]
    pub seed: u64,
}

fn one() -> usize {
    1
}
fn shift_ms() -> f64 {
    100.0
}
fn noise_probability() -> f64 {
    0.8
}
fn noise_volume() -> f64 {
    0.1
}

/// Draws perturbations reproducibly from the seed.
pub struct Augmenter<'a> {
    config: &'a Augment,
    noise: &'a [Vec<i16>],
    rng: StdRng,
}

impl<'a> Augmenter<'a> {
    /// An augmenter mixing in `noise` clips (may be empty: then only shifts).
    pub fn new(config: &'a Augment, noise: &'a [Vec<i16>]) -> Self {
        Augmenter {
            config,
            noise,
            rng: StdRng::seed_from_u64(config.seed),
        }
    }

    /// One perturbed copy of a clip at `rate` Hz.
    pub fn perturb(&mut self, clip: &[i16], rate: u32) -> Vec<i16> {
        let max_shift = (self.config.time_shift_ms / 1000.0 * rate as f64).round() as i64;
        let shift = if max_shift > 0 {
            self.rng.random_range(-max_shift..=max_shift)
        } else {
            0
        };
        let len = clip.len() as i64;
        let mut out: Vec<f64> = (0..len)
            .map(|i| {
                let src = i - shift;
                if (0..len).contains(&src) {
                    clip[src as usize] as f64
                } else {
                    0.0
                }
            })
            .collect();
        if !self.noise.is_empty()
            && self
                .rng
                .random_bool(self.config.noise_probability.clamp(0.0, 1.0))
        {
            let noise = &self.noise[self.rng.random_range(0..self.noise.len())];
            let gain = self
                .rng
                .random_range(0.0..=self.config.noise_volume.max(0.0));
            let offset = if noise.len() > out.len() {
                self.rng.random_range(0..=noise.len() - out.len())
            } else {
                0
            };
            for (o, &n) in out.iter_mut().zip(&noise[offset..]) {
                *o += gain * n as f64;
            }
        }
        out.into_iter()
            .map(|v| v.round().clamp(i16::MIN as f64, i16::MAX as f64) as i16)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shift_only_moves_samples_and_zero_fills() {
        let config = Augment {
            copies: 1,
            time_shift_ms: 1.0,
            noise_probability: 0.0,
            noise_volume: 0.0,
            seed: 3,
        };
        let clip: Vec<i16> = (1..=100).collect();
        let mut a = Augmenter::new(&config, &[]);
        for _ in 0..20 {
            let out = a.perturb(&clip, 16_000);
            let shift = out
                .iter()
                .position(|&v| v == 1)
                .map(|p| p as i64)
                .unwrap_or_else(|| -(clip.iter().position(|&v| v == out[0]).unwrap() as i64));
            assert!(shift.abs() <= 16, "shift {shift}");
            for (i, &v) in out.iter().enumerate() {
                let src = i as i64 - shift;
                let want = if (0..100).contains(&src) {
                    clip[src as usize]
                } else {
                    0
                };
                assert_eq!(v, want);
            }
        }
    }

    #[test]
    fn noise_is_added_and_clipped() {
        let config = Augment {
            copies: 1,
            time_shift_ms: 0.0,
            noise_probability: 1.0,
            noise_volume: 1.0,
            seed: 1,
        };
        let noise = vec![vec![i16::MAX; 200]];
        let mut a = Augmenter::new(&config, &noise);
        let out = a.perturb(&[i16::MAX; 100], 16_000);
        assert!(
            out.iter().all(|&v| v == i16::MAX),
            "sums clip at the int16 range"
        );
        let out = a.perturb(&[0; 100], 16_000);
        assert!(out.iter().all(|&v| v >= 0) && out.iter().any(|&v| v > 0));
    }
}
