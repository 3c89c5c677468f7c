//! Joint training of an SN-Net (`snnet.md` §A6): after the least-squares initialisation, each
//! step draws one route uniformly — anchors included — and takes a step on its loss: the
//! cross-entropy, mixed with hard distillation from a teacher (`(1 − α)·CE(out, y) +
//! α·CE(out, argmax teacher(x))`, the reference's α = 0.5) where one is given. Anchors and
//! stitching layers all train (the reference's full fine-tuning).

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Int, Tensor};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tinyfit_data::Dataset;
use tinyfit_train::loss::per_sample_cross_entropy;
use tinyfit_train::{GraphModel, OptimizerConfig, batch, optimizer};

use crate::model::SnNet;

/// How the joint training runs.
#[derive(Debug, Clone, PartialEq)]
pub struct JointConfig {
    /// Samples per step.
    pub batch_size: usize,
    /// The optimiser (its learning rate is the peak of a cosine schedule over `epochs`).
    pub optimizer: OptimizerConfig,
    /// Epochs of the schedule.
    pub epochs: usize,
    /// Weight α of hard distillation from the teacher (0 without one).
    pub distill_alpha: f64,
    /// Seeds the order of samples and the routes drawn.
    pub seed: u64,
}

/// Trains epoch `epoch` (of `config.epochs`) of `net` on `data`; returns the net and the mean
/// loss. `teacher` (inference mode, on the plain device) gives the hard distillation targets.
pub fn train_epoch(
    net: SnNet,
    data: &Dataset,
    config: &JointConfig,
    epoch: usize,
    teacher: Option<&GraphModel>,
) -> (SnNet, f64) {
    let device = net.anchors[0].devices()[0].clone();
    let plain = tinyfit_train::cpu();
    let lr = config.optimizer.lr()
        * 0.5
        * (1.0 + (std::f64::consts::PI * epoch as f64 / config.epochs.max(1) as f64).cos());
    let mut optim = optimizer(&config.optimizer);
    let seed = config
        .seed
        .wrapping_mul(1_000_003)
        .wrapping_add(epoch as u64);
    let mut rng = StdRng::seed_from_u64(seed);
    device.seed(seed);
    let mut order: Vec<usize> = (0..data.len()).collect();
    order.shuffle(&mut rng);
    let routes = net.routes().len();
    let mut net = net;
    let mut sum = 0.0;
    for indices in order.chunks(config.batch_size.max(1)) {
        let route = rng.random_range(0..routes);
        let logits = net.forward(route, batch::inputs(data, indices, &device));
        let labels = batch::labels(data, indices, &device);
        let mut loss = per_sample_cross_entropy(logits.clone(), labels).mean();
        if let (Some(teacher), true) = (teacher, config.distill_alpha > 0.0) {
            let n = indices.len();
            let targets = teacher
                .logits(batch::inputs(data, indices, &plain))
                .argmax(1)
                .reshape([n]);
            let targets = Tensor::<1, Int>::from_data(targets.into_data(), &device);
            loss = loss.mul_scalar(1.0 - config.distill_alpha)
                + per_sample_cross_entropy(logits, targets)
                    .mean()
                    .mul_scalar(config.distill_alpha);
        }
        sum += f64::from(loss.clone().into_scalar::<f32>()) * indices.len() as f64;
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = optim.step(lr, net, grads);
    }
    (net, sum / data.len().max(1) as f64)
}

/// One route's figures on a split.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RouteScore {
    /// Top-1 accuracy.
    pub accuracy: f64,
    /// Mean cross-entropy: tells apart routes whose accuracy ties (a saturated split).
    pub loss: f64,
}

/// Accuracy and loss of every route on `data` (in inference mode: `net` on the plain device).
pub fn evaluate(net: &SnNet, data: &Dataset, batch_size: usize) -> Vec<RouteScore> {
    let plain = tinyfit_train::cpu();
    let all: Vec<usize> = (0..data.len()).collect();
    let total = data.len().max(1) as f64;
    (0..net.routes().len())
        .map(|route| {
            let (mut right, mut loss) = (0usize, 0.0);
            for indices in all.chunks(batch_size.max(1)) {
                let n = indices.len();
                let logits = net.forward(route, batch::inputs(data, indices, &plain));
                let labels = batch::labels(data, indices, &plain);
                loss += f64::from(
                    per_sample_cross_entropy(logits.clone(), labels)
                        .sum()
                        .into_scalar::<f32>(),
                );
                let predicted: Vec<i64> = logits
                    .argmax(1)
                    .reshape([n])
                    .into_data()
                    .convert::<i64>()
                    .try_to_vec::<i64>()
                    .expect("class indices");
                right += indices
                    .iter()
                    .zip(predicted)
                    .filter(|&(&k, p)| i64::from(data.y[k]) == p)
                    .count();
            }
            RouteScore {
                accuracy: right as f64 / total,
                loss: loss / total,
            }
        })
        .collect()
}
