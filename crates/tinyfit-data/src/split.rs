//! Subject-disjoint train / validation / test splits with training-only normalisation.

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::normalize::ChannelNorm;

/// The three splits of an experiment, already normalised with statistics of `train`.
#[derive(Debug, Clone)]
pub struct Splits {
    /// Fits the model.
    pub train: Dataset,
    /// Selects checkpoints and stops training early.
    pub val: Dataset,
    /// Touched once, to report the final figure.
    pub test: Dataset,
    /// The normalisation fitted on `train` and applied to all three.
    pub norm: ChannelNorm,
}

/// The groups (subjects, speakers) a protocol holds out of training.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeldOut {
    /// Validation groups.
    pub validation: Vec<u32>,
    /// Test groups.
    pub test: Vec<u32>,
}

/// Sample counts of each split, for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitSizes {
    /// Training samples.
    pub train: usize,
    /// Validation samples.
    pub val: usize,
    /// Test samples.
    pub test: usize,
}

impl Splits {
    /// Splits `data` by group: `test_groups` to test, `val_groups` to validation, the rest to
    /// training. Fits the normalisation on training only, or applies `norm` when given.
    pub fn by_group(
        data: &Dataset,
        test_groups: &[u32],
        val_groups: &[u32],
        norm: Option<ChannelNorm>,
    ) -> Result<Splits> {
        if let Some(g) = val_groups.iter().find(|g| test_groups.contains(g)) {
            return Err(DataError::Config(format!(
                "group {g} is in both the validation and the test groups"
            )));
        }
        let present = data.group_ids();
        for g in test_groups.iter().chain(val_groups) {
            if !present.contains(g) {
                return Err(DataError::Config(format!(
                    "group {g} has no samples (groups present: {present:?})"
                )));
            }
        }
        let mut train =
            data.filter_groups(|g| !test_groups.contains(&g) && !val_groups.contains(&g));
        let mut val = data.filter_groups(|g| val_groups.contains(&g));
        let mut test = data.filter_groups(|g| test_groups.contains(&g));
        for (name, split) in [("training", &train), ("validation", &val), ("test", &test)] {
            if split.is_empty() {
                return Err(DataError::Config(format!("the {name} split is empty")));
            }
        }
        let norm = norm.unwrap_or_else(|| ChannelNorm::fit(&train));
        for split in [&mut train, &mut val, &mut test] {
            norm.apply(split);
        }
        Ok(Splits {
            train,
            val,
            test,
            norm,
        })
    }

    /// The three splits resampled to `steps` positions along the time axis
    /// ([`Dataset::resampled`]); the normalisation is kept (interpolation commutes with it).
    pub fn resampled(&self, steps: usize) -> Result<Splits> {
        let shape = &self.train.sample_shape;
        if shape.len() < 2 {
            return Err(DataError::Config(format!(
                "cannot resample samples of shape {shape:?} to {steps} time steps: they have no time axis"
            )));
        }
        if steps < 2 {
            return Err(DataError::Config(format!(
                "cannot resample to {steps} time steps; expected at least 2"
            )));
        }
        Ok(Splits {
            train: self.train.resampled(steps),
            val: self.val.resampled(steps),
            test: self.test.resampled(steps),
            norm: self.norm.clone(),
        })
    }

    /// Sample counts.
    pub fn sizes(&self) -> SplitSizes {
        SplitSizes {
            train: self.train.len(),
            val: self.val.len(),
            test: self.test.len(),
        }
    }
}
