//! FitNets hints (Romero et al., 2015), stage one: the student, up to its guided layer, learns
//! to predict the teacher's hint layer through a learned regressor,
//! `L_HT = ½ ‖u_h(x) − r(v_g(x))‖²`, before the whole student trains on the labels and the
//! teacher's soft targets (stage two, [`crate::train`] with [`crate::Distillation`]).
//!
//! The regressor is a 1×1 convolution (a matrix over channels and a bias), so the two layers
//! must agree on their spatial extent and may differ in channels — the thin, deep student the
//! paper guides. The loss is averaged over the batch and over the hint's positions, which only
//! rescales the paper's sum.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use tinyfit_data::Dataset;
use tinyfit_graph::{Graph, Weights};

use crate::batch;
use crate::channel_map::ChannelMap;
use crate::config::TrainConfig;
use crate::error::TrainError;
use crate::model::GraphModel;
use crate::trainer::{Observer, optimizer};
use crate::value::Value;

/// Which layers the hint joins, and for how long stage one trains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HintConfig {
    /// The teacher's hint layer (a node name).
    pub teacher: String,
    /// The student's guided layer (a node name).
    pub student: String,
    /// Epochs of stage one.
    pub epochs: usize,
}

/// The student and the regressor trained together in stage one.
#[derive(Module, Debug)]
struct HintStage {
    student: GraphModel,
    regressor: ChannelMap,
}

/// The output of node `name` of `model` on `x`.
fn node_value(model: &GraphModel, index: usize, x: Value) -> Tensor<3> {
    let (_, mut values) = model.forward_all(vec![x]);
    values.swap_remove(index).channels_by_positions()
}

fn node_index(graph: &Graph, name: &str, role: &str) -> Result<usize, TrainError> {
    graph
        .nodes
        .iter()
        .position(|n| n.name == name)
        .ok_or_else(|| {
            TrainError::Config(format!(
                "distill.hints.{role} names '{name}', which is no node of '{}'",
                graph.name
            ))
        })
}

/// What stage one hands back: the student's weights and the mean hint loss of each epoch.
#[derive(Debug, Clone)]
pub struct HintOutcome {
    /// The student's weights after stage one.
    pub weights: Weights,
    /// Mean `L_HT` per epoch.
    pub losses: Vec<f64>,
}

/// Trains `student` (from `initial`) up to its guided layer on `teacher`'s hint layer over
/// `train`, with `config`'s optimiser, batch size, seed and learning rate (constant).
pub fn train_hints(
    student: &Graph,
    initial: &Weights,
    teacher: &GraphModel,
    hints: &HintConfig,
    train: &Dataset,
    config: &TrainConfig,
    observer: &mut dyn Observer,
) -> Result<HintOutcome, TrainError> {
    let hint = node_index(teacher.graph(), &hints.teacher, "teacher")?;
    let guided = node_index(student, &hints.student, "student")?;
    let plain = crate::cpu();
    let device = plain.clone().autodiff();
    let model = GraphModel::new(student, initial, &device)?;
    let probe: Vec<usize> = (0..train.len().min(2)).collect();
    let (t_dims, s_dims) = (
        node_value(teacher, hint, batch::inputs(train, &probe, &plain)).dims(),
        node_value(&model, guided, batch::inputs(train, &probe, &device)).dims(),
    );
    if t_dims[2] != s_dims[2] {
        return Err(TrainError::Config(format!(
            "the hint layer '{}' has {} positions and the guided layer '{}' {}: a 1×1 regressor needs the same",
            hints.teacher, t_dims[2], hints.student, s_dims[2]
        )));
    }
    let mut stage = HintStage {
        student: model,
        regressor: ChannelMap::pytorch_default(
            t_dims[1],
            s_dims[1],
            config.seed ^ 0x0f17_4e75,
            &device,
        ),
    };
    let mut optim = optimizer(&config.optimizer);
    let lr = config.optimizer.lr();
    let steps = train.len().div_ceil(config.batch_size);
    observer.start(0, hints.epochs, steps);
    let mut losses = Vec::with_capacity(hints.epochs);
    for epoch in 0..hints.epochs {
        let seed = config.seed.wrapping_mul(7_919).wrapping_add(epoch as u64);
        device.seed(seed);
        let mut order: Vec<usize> = (0..train.len()).collect();
        order.shuffle(&mut StdRng::seed_from_u64(seed));
        let mut sum = 0.0;
        for indices in order.chunks(config.batch_size) {
            let target = node_value(teacher, hint, batch::inputs(train, indices, &plain));
            let target = Tensor::<3>::from_data(target.into_data(), &device);
            let guided_value = node_value(
                &stage.student,
                guided,
                batch::inputs(train, indices, &device),
            );
            let diff = target - stage.regressor.forward_positions(guided_value);
            let loss = (diff.clone() * diff).mean().mul_scalar(0.5);
            let value = loss.clone().into_scalar::<f32>() as f64;
            if !value.is_finite() {
                return Err(TrainError::Diverged { epoch });
            }
            sum += value * indices.len() as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &stage);
            stage = optim.step(lr, stage, grads);
            observer.step(value);
        }
        losses.push(sum / train.len().max(1) as f64);
    }
    Ok(HintOutcome {
        weights: stage.student.valid().weights(),
        losses,
    })
}
