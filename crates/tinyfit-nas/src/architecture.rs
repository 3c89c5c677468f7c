//! A network as a search sees it: an input resolution, a stem and stages of one block family
//! each — the genome that mutations edit and [`Architecture::graph`] turns into a graph.

use serde::{Deserialize, Serialize};
use tinyfit_graph::Graph;

use crate::blocks::NetBuilder;

/// The block family a stage repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    /// Convolution, batch norm, ReLU (the hand-designed CNN's layer).
    Plain,
    /// MobileNet v1's depthwise-separable block.
    Separable,
    /// MobileNet v2's inverted residual with a linear bottleneck.
    InvertedResidual,
    /// SqueezeNet's fire module (max pooling where the stage downsamples).
    Fire,
    /// ShuffleNet v1's unit: grouped 1×1 convolutions and a channel shuffle.
    Shuffle,
}

impl BlockKind {
    /// Every family, in the order configs list them.
    pub const ALL: [BlockKind; 5] = [
        BlockKind::Plain,
        BlockKind::Separable,
        BlockKind::InvertedResidual,
        BlockKind::Fire,
        BlockKind::Shuffle,
    ];

    /// The name written in configs and trial logs.
    pub fn name(self) -> &'static str {
        match self {
            BlockKind::Plain => "plain",
            BlockKind::Separable => "separable",
            BlockKind::InvertedResidual => "inverted_residual",
            BlockKind::Fire => "fire",
            BlockKind::Shuffle => "shuffle",
        }
    }
}

/// The first layer: a plain convolution, batch norm, ReLU.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stem {
    /// Output channels.
    pub width: usize,
    /// Kernel: one size for every spatial axis, or one per axis (a DS-CNN's `[10, 4]`).
    pub kernel: Vec<usize>,
    /// Stride on every spatial axis.
    pub stride: usize,
}

/// A run of `depth` blocks of one family; the first carries the stage's stride.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// The block family.
    pub block: BlockKind,
    /// Blocks in the stage.
    pub depth: usize,
    /// Output channels of every block.
    pub width: usize,
    /// The spatial kernel of the block's depthwise or widest convolution.
    pub kernel: usize,
    /// The family's width ratio: an inverted residual's expansion, a fire module's
    /// squeeze ratio (`width / expansion` squeeze channels), a ShuffleNet unit's bottleneck
    /// ratio (`width / expansion`); plain and separable blocks ignore it.
    pub expansion: usize,
    /// Stride of the stage's first block (1 or 2).
    pub stride: usize,
    /// Channel groups of a ShuffleNet unit's 1×1 convolutions; others ignore it.
    #[serde(default = "one")]
    pub groups: usize,
}

fn one() -> usize {
    1
}

impl BlockKind {
    /// Whether the family reads a stage's width ratio (`expansion`).
    pub fn uses_expansion(self) -> bool {
        matches!(
            self,
            BlockKind::InvertedResidual | BlockKind::Fire | BlockKind::Shuffle
        )
    }

    /// Whether the family reads a stage's channel groups.
    pub fn uses_groups(self) -> bool {
        self == BlockKind::Shuffle
    }
}

impl Stage {
    /// The stage as built: widths of a ShuffleNet stage rounded up to a multiple of its groups
    /// (so that the grouped convolutions split evenly), every width at least 1.
    pub fn resolved(&self) -> Stage {
        let mut s = self.clone();
        s.depth = s.depth.max(1);
        s.groups = s.groups.max(1);
        s.width = if s.block == BlockKind::Shuffle {
            s.width.max(1).div_ceil(s.groups) * s.groups
        } else {
            s.width.max(1)
        };
        s
    }

    /// Appends the stage's blocks, named `s{index}b{block}`.
    fn build(&self, net: &mut NetBuilder, index: usize) {
        let s = self.resolved();
        let ratio = s.expansion.max(1);
        for b in 0..s.depth {
            let name = format!("s{index}b{b}");
            let stride = if b == 0 { s.stride } else { 1 };
            match s.block {
                BlockKind::Plain => net.conv_bn_relu(&name, s.width, s.kernel, stride),
                BlockKind::Separable => net.separable(&name, s.width, s.kernel, stride),
                BlockKind::InvertedResidual => {
                    net.inverted_residual(&name, s.width, s.kernel, stride, ratio)
                }
                BlockKind::Fire => {
                    if stride > 1 {
                        net.max_pool(&format!("{name}_pool"), stride);
                    }
                    net.fire(&name, s.width, (s.width / ratio).max(1), s.kernel);
                }
                BlockKind::Shuffle => {
                    let bottleneck = (s.width / ratio).max(1).div_ceil(s.groups) * s.groups;
                    net.shuffle_unit(&name, s.width, s.kernel, stride, s.groups, bottleneck)
                }
            }
        }
    }
}

/// A whole network: input resolution, stem, stages, and a pooled linear head.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Architecture {
    /// Time steps of the input window (its resolution: the data are resampled to it).
    pub time_steps: usize,
    /// The first layer.
    pub stem: Stem,
    /// The stages in order.
    pub stages: Vec<Stage>,
}

impl Architecture {
    /// The graph for inputs of `channels` channels (and `width` values per time step for 2-D
    /// inputs such as MFCC frames) and `classes` outputs.
    pub fn graph(
        &self,
        name: &str,
        channels: usize,
        width: Option<usize>,
        classes: usize,
    ) -> Result<Graph, String> {
        let mut shape = vec![channels, self.time_steps];
        shape.extend(width);
        let mut net = NetBuilder::new(name, shape)?;
        match &self.stem.kernel[..] {
            [k] => net.conv_bn_relu("stem", self.stem.width, *k, self.stem.stride),
            k => net.conv_bn_relu_shaped("stem", self.stem.width, k, self.stem.stride),
        }
        for (i, stage) in self.stages.iter().enumerate() {
            stage.build(&mut net, i);
        }
        let graph = net.classifier(classes);
        graph.analyze().map_err(|e| e.to_string())?;
        Ok(graph)
    }

    /// The architecture with the genes no block reads set to 1: two architectures that build
    /// the same graph have the same canonical form.
    pub fn canonical(&self) -> Architecture {
        let mut a = self.clone();
        for s in &mut a.stages {
            *s = s.resolved();
            if !s.block.uses_expansion() {
                s.expansion = 1;
            }
            if !s.block.uses_groups() {
                s.groups = 1;
            }
        }
        a
    }

    /// A short description: `t128 stem16 / ir e4 k3 w24 d2 s2 / ...`.
    pub fn describe(&self) -> String {
        let mut out = format!("t{} stem{}", self.time_steps, self.stem.width);
        for s in self.stages.iter().map(Stage::resolved) {
            let tag = match s.block {
                BlockKind::Plain => "plain".to_string(),
                BlockKind::Separable => "sep".to_string(),
                BlockKind::InvertedResidual => format!("ir e{}", s.expansion),
                BlockKind::Fire => format!("fire e{}", s.expansion),
                BlockKind::Shuffle => format!("shuf g{} e{}", s.groups, s.expansion),
            };
            out += &format!(
                " / {tag} k{} w{} d{} s{}",
                s.kernel, s.width, s.depth, s.stride
            );
        }
        out
    }

    /// EfficientNet's compound scaling by `phi`: every stage's depth × α^φ (rounded up),
    /// every width × β^φ (rounded), the input resolution × γ^φ (rounded).
    pub fn compound_scaled(&self, phi: f64, c: &Compound) -> Architecture {
        let (depth, width, resolution) = (c.alpha.powf(phi), c.beta.powf(phi), c.gamma.powf(phi));
        let scale = |w: usize| ((w as f64 * width).round() as usize).max(1);
        Architecture {
            time_steps: ((self.time_steps as f64 * resolution).round() as usize).max(2),
            stem: Stem {
                width: scale(self.stem.width),
                ..self.stem.clone()
            },
            stages: self
                .stages
                .iter()
                .map(|s| Stage {
                    depth: ((s.depth as f64 * depth).ceil() as usize).max(1),
                    width: scale(s.width),
                    ..s.clone()
                })
                .collect(),
        }
    }
}

/// EfficientNet's compound-scaling coefficients: depth α, width β, resolution γ per unit of φ.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compound {
    /// Depth multiplier per unit of φ.
    pub alpha: f64,
    /// Width multiplier per unit of φ.
    pub beta: f64,
    /// Resolution multiplier per unit of φ.
    pub gamma: f64,
}

impl Default for Compound {
    /// EfficientNet-B0's grid-searched α = 1.2, β = 1.1, γ = 1.15.
    fn default() -> Self {
        Compound {
            alpha: 1.2,
            beta: 1.1,
            gamma: 1.15,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Architecture {
        Architecture {
            time_steps: 128,
            stem: Stem {
                width: 16,
                kernel: vec![5],
                stride: 2,
            },
            stages: vec![Stage {
                block: BlockKind::Shuffle,
                depth: 2,
                width: 30,
                kernel: 3,
                expansion: 4,
                stride: 2,
                groups: 4,
            }],
        }
    }

    #[test]
    fn compound_scaling_follows_efficientnet() {
        let scaled = base().compound_scaled(1.0, &Compound::default());
        assert_eq!(scaled.time_steps, 147); // 128 × 1.15
        assert_eq!(scaled.stem.width, 18); // 16 × 1.1 = 17.6
        assert_eq!(scaled.stages[0].depth, 3); // ⌈2 × 1.2⌉
        assert_eq!(scaled.stages[0].width, 33);
        let down = base().compound_scaled(-1.0, &Compound::default());
        assert_eq!((down.time_steps, down.stages[0].depth), (111, 2));
    }

    #[test]
    fn shuffle_widths_round_up_to_their_groups() {
        let graph = base().graph("t", 6, None, 4).unwrap();
        let a = graph.analyze().unwrap();
        let last_block = graph
            .nodes
            .iter()
            .rposition(|n| n.name.starts_with("s0b1"))
            .unwrap();
        assert_eq!(a.nodes[last_block].shape.output[0], 32);
        assert!(
            base()
                .describe()
                .starts_with("t128 stem16 / shuf g4 e4 k3 w32 d2 s2")
        );
    }
}
