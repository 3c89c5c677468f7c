//! Mixed-precision weights: each layer's grid (int8, 4-bit, ternary, binary) chosen by a
//! sensitivity-guided greedy search under a budget of constant bytes.
//!
//! 1. Sensitivity: for every layer and every grid below int8, the validation loss with that
//!    layer alone on the grid and every other layer on int8, less the loss with all on int8.
//! 2. Greedy descent: from all int8, while the constants exceed the budget, move one layer to
//!    its next smaller grid, the move that costs the least added loss per byte saved (the
//!    sensitivities taken as additive, as in HAQ's and HAWQ's cheap variants).
//!
//! Constant bytes are counted as the generated C stores them: packed filters
//! (`ceil(row · bits / 8)` bytes a row), and per output channel a 4-byte bias and an 8-byte
//! requantisation multiplier.

use serde::Serialize;
use tinyfit_data::Dataset;
use tinyfit_graph::{Graph, GraphError, Op, Weights};
use tinyfit_train::{GraphModel, Precision, WeightBits, cpu, evaluate};

/// Grids from the widest to the narrowest.
const LADDER: [WeightBits; 4] = [
    WeightBits::Int8,
    WeightBits::Int4,
    WeightBits::Ternary,
    WeightBits::Binary,
];

/// One layer's loss increase on one grid.
#[derive(Debug, Clone, Serialize)]
pub struct Sensitivity {
    /// Graph node.
    pub layer: String,
    /// Grid.
    pub bits: WeightBits,
    /// Validation loss increase over all-int8.
    pub loss_increase: f64,
}

/// The search's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct MixedPrecision {
    /// The chosen grid of every convolution and linear layer.
    pub precision: Precision,
    /// Constant bytes with every layer on int8, and with the chosen grids.
    pub bytes: (usize, usize),
    /// Validation loss on all-int8 weights.
    pub base_loss: f64,
    /// Every layer's sensitivity to every grid below int8.
    pub sensitivities: Vec<Sensitivity>,
}

/// Why the search failed.
#[derive(Debug, thiserror::Error)]
pub enum MixedError {
    /// The graph or weights do not check.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// Even binary weights everywhere exceed the budget.
    #[error(
        "a budget of {budget} B of constants is out of reach: binary weights everywhere need {least} B"
    )]
    OutOfReach {
        /// Bytes asked for.
        budget: usize,
        /// Bytes with every layer binary.
        least: usize,
    },
}

/// A convolution or linear layer: name, output channels, weights per channel.
struct WeightedLayer {
    name: String,
    channels: usize,
    row: usize,
}

impl WeightedLayer {
    fn bytes(&self, bits: WeightBits) -> usize {
        self.channels * ((self.row * bits.bits() as usize).div_ceil(8) + 12)
    }
}

/// Chooses each layer's grid for at most `budget` constant bytes, judging on `validation`.
pub fn search(
    graph: &Graph,
    weights: &Weights,
    validation: &Dataset,
    budget: usize,
    batch_size: usize,
) -> Result<MixedPrecision, MixedError> {
    let layers = weighted_layers(graph, weights);
    let total = |choice: &[usize]| -> usize {
        layers
            .iter()
            .zip(choice)
            .map(|(l, &c)| l.bytes(LADDER[c]))
            .sum()
    };
    let narrowest = vec![LADDER.len() - 1; layers.len()];
    if total(&narrowest) > budget {
        return Err(MixedError::OutOfReach {
            budget,
            least: total(&narrowest),
        });
    }
    let device = cpu();
    let loss = |precision: &Precision| -> Result<f64, MixedError> {
        let model = GraphModel::new(graph, weights, &device)?
            .with_weight_bits(precision)
            .expect("the layers are the graph's convolution and linear layers");
        Ok(evaluate(&model, validation, batch_size, &device).loss)
    };
    let all_int8: Precision = layers
        .iter()
        .map(|l| (l.name.clone(), WeightBits::Int8))
        .collect();
    let base_loss = loss(&all_int8)?;
    // increase[layer][ladder step]
    let mut increase = vec![vec![0.0; LADDER.len()]; layers.len()];
    let mut sensitivities = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        for (step, &bits) in LADDER.iter().enumerate().skip(1) {
            let mut precision = all_int8.clone();
            precision.insert(layer.name.clone(), bits);
            let delta = loss(&precision)? - base_loss;
            increase[i][step] = delta;
            sensitivities.push(Sensitivity {
                layer: layer.name.clone(),
                bits,
                loss_increase: delta,
            });
        }
    }
    let mut choice = vec![0usize; layers.len()];
    while total(&choice) > budget {
        let (i, _) = layers
            .iter()
            .enumerate()
            .filter(|&(i, _)| choice[i] + 1 < LADDER.len())
            .map(|(i, l)| {
                let (from, to) = (LADDER[choice[i]], LADDER[choice[i] + 1]);
                let saved = (l.bytes(from) - l.bytes(to)).max(1) as f64;
                let cost = increase[i][choice[i] + 1] - increase[i][choice[i]];
                (i, cost / saved)
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .expect("the narrowest choice fits, so a move remains");
        choice[i] += 1;
    }
    Ok(MixedPrecision {
        precision: layers
            .iter()
            .zip(&choice)
            .map(|(l, &c)| (l.name.clone(), LADDER[c]))
            .collect(),
        bytes: (total(&vec![0; layers.len()]), total(&choice)),
        base_loss,
        sensitivities,
    })
}

fn weighted_layers(graph: &Graph, weights: &Weights) -> Vec<WeightedLayer> {
    graph
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Conv1d(_) | Op::Conv2d(_) | Op::Linear(_)))
        .filter_map(|n| {
            let w = weights.tensors.get(&format!("{}.weight", n.name))?;
            let channels = w.shape[0];
            Some(WeightedLayer {
                name: n.name.clone(),
                channels,
                row: w.data.len() / channels.max(1),
            })
        })
        .collect()
}
