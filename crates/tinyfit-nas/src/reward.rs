//! MnasNet's multi-objective reward (Tan et al., CVPR 2019, eq. 2):
//! `ACC(m) · (LAT(m) / T)^w`, with `w = α` where `LAT ≤ T` and `w = β` above.

use serde::{Deserialize, Serialize};

/// How latency against the target weighs on accuracy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Reward {
    /// The soft constraint: `α = β = w` (MnasNet's −0.07: twice the latency costs about 5 % of
    /// the reward, half of it gains as much).
    Soft {
        /// The exponent on both sides of the target.
        #[serde(default = "mnasnet_w")]
        w: f64,
    },
    /// The hard constraint: `α = 0` (no gain below the target), `β = −1` (the reward falls in
    /// proportion above it).
    Hard,
}

fn mnasnet_w() -> f64 {
    -0.07
}

impl Default for Reward {
    fn default() -> Self {
        Reward::Soft { w: mnasnet_w() }
    }
}

impl Reward {
    /// The reward of a model of `accuracy` (0–1) and `latency_ms` against `target_ms`.
    pub fn value(&self, accuracy: f64, latency_ms: f64, target_ms: f64) -> f64 {
        let ratio = latency_ms / target_ms;
        let w = match *self {
            Reward::Soft { w } => w,
            Reward::Hard if ratio <= 1.0 => 0.0,
            Reward::Hard => -1.0,
        };
        accuracy * ratio.powf(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_and_hard_rewards_follow_mnasnet() {
        let soft = Reward::default();
        assert!((soft.value(0.9, 10.0, 10.0) - 0.9).abs() < 1e-12);
        // Twice the target: 2^-0.07 = 0.9526; half of it: 2^0.07 = 1.0497.
        assert!((soft.value(1.0, 20.0, 10.0) - 0.952_638).abs() < 1e-6);
        assert!((soft.value(1.0, 5.0, 10.0) - 1.049_717).abs() < 1e-6);
        let hard = Reward::Hard;
        assert_eq!(hard.value(0.8, 5.0, 10.0), 0.8);
        assert!((hard.value(0.8, 20.0, 10.0) - 0.4).abs() < 1e-12);
    }
}
