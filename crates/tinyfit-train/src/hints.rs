//! FitNets hints (Romero et al., 2015), stage one: the student, up to its guided layer, learns
//! to predict the teacher's hint layer through a learned regressor,
//! `L_HT = ½ ‖u_h(x) − r(v_g(x))‖²`, before the whole student trains on the labels and the
//! teacher's soft targets (stage two, [`crate::train`] with [`crate::Distillation`]).
//!
//! The regressor is a 1×1 convolution (a matrix over channels and a bias), so the two layers
//! must agree on their spatial extent and may differ in channels — the thin, deep student the
//! paper guides. The loss is averaged over the batch and over the hint's positions, which only
//! rescales the paper's sum.

use burn::module::{Module, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tinyfit_data::Dataset;
use tinyfit_graph::{Graph, Weights};

use crate::batch;
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
    regressor: Regressor,
}

/// A 1×1 convolution from the student's channels to the teacher's.
#[derive(Module, Debug)]
struct Regressor {
    /// `[teacher channels, student channels]`.
    weight: Param<Tensor<2>>,
    /// `[teacher channels]`.
    bias: Param<Tensor<1>>,
}

impl Regressor {
    /// `[N, C_s, P]` → `[N, C_t, P]`.
    fn forward(&self, v: Tensor<3>) -> Tensor<3> {
        let [n, _, p] = v.dims();
        let w = self.weight.val();
        let [t, s] = w.dims();
        let y = w.unsqueeze::<3>().expand([n, t, s]).matmul(v);
        y + self.bias.val().reshape([1, t, 1]).expand([n, t, p])
    }
}

/// A graph value as `[N, C, positions]`.
fn channels_by_positions(v: Value) -> Tensor<3> {
    match v {
        Value::R2(t) => t.unsqueeze_dim(2),
        Value::R3(t) => t,
        Value::R4(t) => t.flatten(2, 3),
    }
}

/// The output of node `name` of `model` on `x`.
fn node_value(model: &GraphModel, index: usize, x: Value) -> Tensor<3> {
    let (_, mut values) = model.forward_all(vec![x]);
    channels_by_positions(values.swap_remove(index))
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
        regressor: regressor(t_dims[1], s_dims[1], config.seed, &device),
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
            let diff = target - stage.regressor.forward(guided_value);
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

/// PyTorch's default initialisation of a 1×1 convolution from `s` to `t` channels:
/// U(−1/√s, 1/√s) for weight and bias.
fn regressor(t: usize, s: usize, seed: u64, device: &Device) -> Regressor {
    let bound = 1.0 / (s as f32).sqrt();
    let mut rng = StdRng::seed_from_u64(seed ^ 0x0f17_4e75);
    let mut uniform =
        |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-bound..bound)).collect() };
    Regressor {
        weight: Param::from_tensor(Tensor::from_data(
            TensorData::new(uniform(t * s), [t, s]),
            device,
        )),
        bias: Param::from_tensor(Tensor::from_data(TensorData::new(uniform(t), [t]), device)),
    }
}
