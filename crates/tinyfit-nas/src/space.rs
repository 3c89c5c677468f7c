//! The search space: the choices for every gene of an [`Architecture`], and the random
//! sampling and single-gene mutation that search strategies draw from it.

use rand::Rng;
use rand::seq::IndexedRandom;
use serde::{Deserialize, Serialize};

use crate::architecture::{Architecture, BlockKind, Stage, Stem};

/// The choices of a search, as written in a config's `[search.space]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSpace {
    /// The fixed first layer.
    pub stem: Stem,
    /// The stride of each stage; their count is the number of stages.
    pub strides: Vec<usize>,
    /// Block families a stage may use.
    pub blocks: Vec<BlockKind>,
    /// Spatial kernels.
    pub kernels: Vec<usize>,
    /// Width ratios (inverted residual expansion, fire squeeze, ShuffleNet bottleneck).
    pub expansions: Vec<usize>,
    /// Output channels of a stage.
    pub widths: Vec<usize>,
    /// Blocks per stage.
    pub depths: Vec<usize>,
    /// Input resolutions: time steps the windows are resampled to.
    pub time_steps: Vec<usize>,
    /// Channel groups of ShuffleNet units.
    #[serde(default = "default_groups")]
    pub groups: Vec<usize>,
}

fn default_groups() -> Vec<usize> {
    vec![2, 4]
}

/// The genes a mutation can change: the resolution, or one field of one stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gene {
    TimeSteps,
    Block(usize),
    Kernel(usize),
    Expansion(usize),
    Width(usize),
    Depth(usize),
    Groups(usize),
}

impl SearchSpace {
    /// Checks that every choice list is non-empty and every number positive; the error names
    /// the field.
    pub fn validate(&self) -> Result<(), String> {
        let lists: [(&str, &[usize]); 7] = [
            ("strides", &self.strides),
            ("kernels", &self.kernels),
            ("expansions", &self.expansions),
            ("widths", &self.widths),
            ("depths", &self.depths),
            ("time_steps", &self.time_steps),
            ("groups", &self.groups),
        ];
        for (field, values) in lists {
            if values.is_empty() {
                return Err(format!(
                    "search.space.{field} is empty; expected at least one choice"
                ));
            }
            if values.contains(&0) {
                return Err(format!(
                    "search.space.{field} = {values:?}; expected positive numbers"
                ));
            }
        }
        if self.blocks.is_empty() {
            return Err("search.space.blocks is empty; expected at least one block family".into());
        }
        if self.time_steps.contains(&1) {
            return Err("search.space.time_steps holds 1; a window needs at least 2 steps".into());
        }
        if self.stem.width == 0 || self.stem.stride == 0 || self.stem.kernel.contains(&0) {
            return Err("search.space.stem needs a positive width, kernel and stride".into());
        }
        Ok(())
    }

    /// Choices in the space (the product of every gene's).
    pub fn size(&self) -> f64 {
        let stage = (self.blocks.len()
            * self.kernels.len()
            * self.expansions.len()
            * self.widths.len()
            * self.depths.len()
            * self.groups.len()) as f64;
        self.time_steps.len() as f64 * stage.powi(self.strides.len() as i32)
    }

    /// An architecture with every gene drawn uniformly.
    pub fn sample(&self, rng: &mut impl Rng) -> Architecture {
        Architecture {
            time_steps: pick(&self.time_steps, rng),
            stem: self.stem.clone(),
            stages: self
                .strides
                .iter()
                .map(|&stride| Stage {
                    block: *self.blocks.choose(rng).expect("validated: non-empty"),
                    depth: pick(&self.depths, rng),
                    width: pick(&self.widths, rng),
                    kernel: pick(&self.kernels, rng),
                    expansion: pick(&self.expansions, rng),
                    stride,
                    groups: pick(&self.groups, rng),
                })
                .collect(),
        }
    }

    /// `parent` with one gene redrawn to another of its choices (regularized evolution's
    /// mutation); genes with a single choice, and genes the stage's block family does not read
    /// (an expansion of a separable stage, the groups of a non-ShuffleNet one), are never
    /// picked. The parent itself when no gene can change.
    pub fn mutate(&self, parent: &Architecture, rng: &mut impl Rng) -> Architecture {
        let mut genes = Vec::new();
        if self.time_steps.len() > 1 {
            genes.push(Gene::TimeSteps);
        }
        for (s, stage) in parent.stages.iter().enumerate() {
            let block = stage.block;
            let per_stage = [
                (self.blocks.len(), Gene::Block(s)),
                (self.kernels.len(), Gene::Kernel(s)),
                (
                    if block.uses_expansion() {
                        self.expansions.len()
                    } else {
                        0
                    },
                    Gene::Expansion(s),
                ),
                (self.widths.len(), Gene::Width(s)),
                (self.depths.len(), Gene::Depth(s)),
                (
                    if block.uses_groups() {
                        self.groups.len()
                    } else {
                        0
                    },
                    Gene::Groups(s),
                ),
            ];
            genes.extend(
                per_stage
                    .into_iter()
                    .filter(|(n, _)| *n > 1)
                    .map(|(_, g)| g),
            );
        }
        let mut child = parent.clone();
        let Some(&gene) = genes.choose(rng) else {
            return child;
        };
        let other = |current: usize, choices: &[usize], rng: &mut _| -> usize {
            let rest: Vec<usize> = choices.iter().copied().filter(|&c| c != current).collect();
            rest.choose(rng).copied().unwrap_or(current)
        };
        match gene {
            Gene::TimeSteps => child.time_steps = other(child.time_steps, &self.time_steps, rng),
            Gene::Block(s) => {
                let current = child.stages[s].block;
                let rest: Vec<BlockKind> = self
                    .blocks
                    .iter()
                    .copied()
                    .filter(|&b| b != current)
                    .collect();
                child.stages[s].block = rest.choose(rng).copied().unwrap_or(current);
            }
            Gene::Kernel(s) => {
                child.stages[s].kernel = other(child.stages[s].kernel, &self.kernels, rng)
            }
            Gene::Expansion(s) => {
                child.stages[s].expansion = other(child.stages[s].expansion, &self.expansions, rng)
            }
            Gene::Width(s) => {
                child.stages[s].width = other(child.stages[s].width, &self.widths, rng)
            }
            Gene::Depth(s) => {
                child.stages[s].depth = other(child.stages[s].depth, &self.depths, rng)
            }
            Gene::Groups(s) => {
                child.stages[s].groups = other(child.stages[s].groups, &self.groups, rng)
            }
        }
        child
    }
}

fn pick(choices: &[usize], rng: &mut impl Rng) -> usize {
    *choices.choose(rng).expect("validated: non-empty")
}
