//! DiTMoS's training phases (`ditmos.md` §4), as the released code runs them:
//!
//! - [`pretrain_classifier`]: classifier i on the training samples of cluster i, plain
//!   cross-entropy, fed the features of the selector as it stands, in training mode without
//!   gradient (its batch-norm statistics move, as in the reference);
//! - [`train_selector`]: the selector on every training sample against the routing targets of
//!   [`crate::selection`], the classifiers in inference mode reading the selector's
//!   training-mode features;
//! - [`train_classifiers`]: the adversarial classifier step, each classifier on four masked
//!   cross-entropy terms (union, negative overlap, single, selection) with the selector fixed.
//!
//! Every phase re-creates its optimiser each epoch (Nesterov SGD, momentum 0.9, weight decay
//! 1e-4, as the reference, whose momentum therefore restarts every epoch) and halves its
//! learning rate on a fixed period.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use tinyfit_data::Dataset;
use tinyfit_train::loss::per_sample_cross_entropy;
use tinyfit_train::{OptimizerConfig, Value, batch, optimizer};

use crate::classifiers::Classifiers;
use crate::model::Ditmos;
use crate::selection::{self, SelectionMetrics};

/// A phase's length and learning rate: `lr · 0.5^(t / halve_every)` at its epoch t.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// Epochs.
    pub epochs: usize,
    /// Learning rate of the first epoch.
    pub lr: f64,
    /// Epochs between halvings.
    pub halve_every: usize,
}

impl Phase {
    /// The learning rate of epoch `t` (counted from the phase's start, or across phases).
    pub fn lr_at(&self, t: usize) -> f64 {
        self.lr * 0.5f64.powi((t / self.halve_every.max(1)) as i32)
    }
}

/// What the selector is trained against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelectorTarget {
    /// The released code: cross-entropy on one label per sample
    /// ([`selection::single_labels`]).
    SingleLabel,
    /// The paper: binary cross-entropy on every classifier's correctness.
    MultiLabel,
}

/// Weights of the adversarial classifier loss (the released code's `[0.1, 0.03, 0.1, 1]`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossWeights {
    /// Samples no classifier gets right: every classifier learns them.
    pub union: f64,
    /// Samples this and another classifier get right: pushed away (negative cross-entropy).
    pub overlap: f64,
    /// Samples only this classifier gets right: reinforced.
    pub single: f64,
    /// Samples the selector routes to this classifier.
    pub select: f64,
}

impl Default for LossWeights {
    fn default() -> Self {
        LossWeights {
            union: 0.1,
            overlap: 0.03,
            single: 0.1,
            select: 1.0,
        }
    }
}

/// The reference's optimiser, fresh.
fn sgd(lr: f64) -> burn::optim::ModuleOptimizer {
    optimizer(&OptimizerConfig::Sgd {
        lr,
        momentum: 0.9,
        nesterov: true,
        weight_decay: 1e-4,
    })
}

/// `indices` shuffled by `(seed, epoch)`.
fn shuffled(indices: &[usize], seed: u64, epoch: usize) -> Vec<usize> {
    let mut order = indices.to_vec();
    order.shuffle(&mut StdRng::seed_from_u64(
        seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64),
    ));
    order
}

/// `Σ mask·values / max(1, Σ mask)` with a host mask.
fn masked_mean(values: Tensor<1>, mask: &[bool]) -> Tensor<1> {
    let count = mask.iter().filter(|&&b| b).count().max(1) as f32;
    let device = values.device();
    let m: Vec<f32> = mask.iter().map(|&b| f32::from(u8::from(b))).collect();
    let m = Tensor::<1>::from_data(TensorData::new(m, [mask.len()]), &device);
    (values * m).sum().div_scalar(count)
}

/// A value as a constant on `device`.
fn constant(v: &Value, device: &Device) -> Value {
    let data = v.to_vec();
    let dims = v.dims();
    let flat = Tensor::<2>::from_data(
        TensorData::new(data, [dims[0], dims[1..].iter().product()]),
        device,
    );
    Value::R2(flat).reshape(&dims[1..])
}

/// Row-major host logits.
fn host(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().expect("f32 logits")
}

/// The epochs of `phase` (schedule from epoch `offset`) over the samples `members` of `data`
/// shuffled by `seed`: a fresh optimiser and the device's generator reseeded each epoch, one
/// step a batch on the loss `loss` gives for the model and the batch's sample indices.
#[allow(clippy::too_many_arguments)]
fn epochs<M: Module>(
    mut model: M,
    members: &[usize],
    phase: &Phase,
    offset: usize,
    batch_size: usize,
    seed: u64,
    mut loss: impl FnMut(&M, &[usize]) -> Tensor<1>,
) -> M {
    let device = model.devices().first().cloned();
    for epoch in offset..offset + phase.epochs {
        // Dropout draws from the device's generator: seeded by epoch, so that a run resumed
        // from a checkpoint draws what the uninterrupted run drew.
        if let Some(device) = &device {
            device.seed(seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64));
        }
        let lr = phase.lr_at(epoch);
        let mut optim = sgd(lr);
        for indices in shuffled(members, seed, epoch).chunks(batch_size.max(1)) {
            let loss = loss(&model, indices);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr, model, grads);
        }
    }
    model
}

/// Trains classifier `i` on the training samples `members` of `data` for `phase`, starting
/// the learning-rate schedule at epoch `offset`.
#[allow(clippy::too_many_arguments)]
pub fn pretrain_classifier(
    model: Ditmos,
    i: usize,
    data: &Dataset,
    members: &[usize],
    phase: &Phase,
    offset: usize,
    batch_size: usize,
    seed: u64,
) -> Ditmos {
    let device = model.selector.devices()[0].clone();
    epochs(
        model,
        members,
        phase,
        offset,
        batch_size,
        seed ^ i as u64,
        |model, indices| {
            let x = batch::inputs(data, indices, &device);
            // The selector as it stands, in training mode, without gradient: its parameters
            // untracked, so the forward leaves no autodiff graph behind (burn's graph cleaner
            // scans every orphaned graph at each backward: they made training quadratic).
            let frozen = Ditmos {
                selector: model.selector.clone().no_grad(),
                classifiers: Vec::new(),
            };
            let features: Vec<Value> = frozen
                .select(x.clone())
                .features
                .iter()
                .map(|f| constant(f, &device))
                .collect();
            let logits = model.classify(i, x, &features);
            per_sample_cross_entropy(logits, batch::labels(data, indices, &device)).mean()
        },
    )
}

/// Trains the selector on all of `data` for `phase`, starting the learning-rate schedule at
/// epoch `offset`.
pub fn train_selector(
    model: Ditmos,
    data: &Dataset,
    phase: &Phase,
    offset: usize,
    target: SelectorTarget,
    batch_size: usize,
    seed: u64,
) -> Ditmos {
    let device = model.selector.devices()[0].clone();
    let plain = tinyfit_train::cpu();
    let all: Vec<usize> = (0..data.len()).collect();
    // The classifiers in inference mode, fixed for the phase.
    let (frozen, _) = Classifiers::new(&model.valid().classifiers);
    let m = model.m();
    epochs(
        model,
        &all,
        phase,
        offset,
        batch_size,
        seed,
        |model, indices| {
            let selection = model.select(batch::inputs(data, indices, &device));
            // The classifiers read the selector's training-mode features.
            let features: Vec<Value> = selection
                .features
                .iter()
                .map(|f| constant(f, &plain))
                .collect();
            let x = batch::inputs(data, indices, &plain);
            let logits: Vec<Vec<f32>> = frozen.logits(x, &features).into_iter().map(host).collect();
            let labels: Vec<u32> = indices.iter().map(|&k| data.y[k]).collect();
            match target {
                SelectorTarget::SingleLabel => {
                    let y: Vec<i64> = selection::single_labels(&logits, &labels)
                        .into_iter()
                        .map(|l| l as i64)
                        .collect();
                    let y =
                        Tensor::<1, Int>::from_data(TensorData::new(y, [indices.len()]), &device);
                    per_sample_cross_entropy(selection.logits, y).mean()
                }
                SelectorTarget::MultiLabel => {
                    let t = selection::multi_label_targets(&logits, &labels);
                    let t = Tensor::<2>::from_data(TensorData::new(t, [indices.len(), m]), &device);
                    // Binary cross-entropy with logits: max(z, 0) − z·t + log(1 + e^−|z|).
                    let z = selection.logits;
                    (z.clone().clamp_min(0.0) - z.clone() * t
                        + z.abs().neg().exp().add_scalar(1.0).log())
                    .mean()
                }
            }
        },
    )
}

/// The adversarial classifier step on all of `data` for `phase` (schedule from epoch
/// `offset`), with the selector fixed in inference mode.
pub fn train_classifiers(
    model: Ditmos,
    data: &Dataset,
    phase: &Phase,
    offset: usize,
    weights: &LossWeights,
    batch_size: usize,
    seed: u64,
) -> Ditmos {
    let device = model.selector.devices()[0].clone();
    let plain = tinyfit_train::cpu();
    let all: Vec<usize> = (0..data.len()).collect();
    let Ditmos {
        selector,
        classifiers,
    } = model;
    let fixed = Ditmos {
        selector: selector.valid(),
        classifiers: Vec::new(),
    };
    let (classifiers, _) = Classifiers::new(&classifiers);
    let classifiers = epochs(
        classifiers,
        &all,
        phase,
        offset,
        batch_size,
        seed ^ 0x00c1_a551,
        |classifiers, indices| {
            let labels: Vec<u32> = indices.iter().map(|&k| data.y[k]).collect();
            let n = labels.len();
            let y = batch::labels(data, indices, &device);
            let selection = fixed.select(batch::inputs(data, indices, &plain));
            let routes = routes(selection.logits);
            let features: Vec<Value> = selection
                .features
                .iter()
                .map(|f| constant(f, &device))
                .collect();
            // The reference's three training-mode forwards of each classifier (the template
            // that decides correctness, the loss terms', the selection term's), each with its
            // own dropout mask, as one forward of the batch stacked three times. Batch-norm
            // statistics over the copies equal the batch's; running statistics move once.
            let x3 = stacked(batch::inputs(data, indices, &device), 3);
            let features3: Vec<Value> = features.into_iter().map(|f| stacked(f, 3)).collect();
            let logits = classifiers.logits(x3, &features3);
            let part = |l: &Tensor<2>, k: usize| l.clone().narrow(0, k * n, n);
            let template: Vec<Vec<f32>> =
                logits.iter().map(|l| host(part(l, 0).detach())).collect();
            let correct = selection::correctness(&template, &labels);
            let right: Vec<usize> = (0..n)
                .map(|s| correct.iter().filter(|c| c[s]).count())
                .collect();
            let mask = |f: &dyn Fn(usize) -> bool| -> Vec<bool> { (0..n).map(f).collect() };
            correct
                .iter()
                .zip(&logits)
                .enumerate()
                .map(|(i, (c, l))| {
                    let ce = per_sample_cross_entropy(part(l, 1), y.clone());
                    let select_ce = per_sample_cross_entropy(part(l, 2), y.clone());
                    masked_mean(ce.clone(), &mask(&|s| right[s] == 0)).mul_scalar(weights.union)
                        - masked_mean(ce.clone(), &mask(&|s| right[s] > 1 && c[s]))
                            .mul_scalar(weights.overlap)
                        + masked_mean(ce, &mask(&|s| right[s] == 1 && c[s]))
                            .mul_scalar(weights.single)
                        + masked_mean(select_ce, &mask(&|s| routes[s] == i))
                            .mul_scalar(weights.select)
                })
                .reduce(|a, b| a + b)
                .expect("at least one classifier")
        },
    );
    Ditmos {
        selector,
        classifiers: classifiers.into_models(),
    }
}

/// `v`'s batch repeated `times` times along the batch axis.
fn stacked(v: Value, times: usize) -> Value {
    let dims = v.dims();
    let flat = v.into_flat();
    Value::R2(Tensor::cat(vec![flat; times], 0)).reshape(&dims[1..])
}

/// The arg-max of each row of routing logits.
fn routes(logits: Tensor<2>) -> Vec<usize> {
    let n = logits.dims()[0];
    host(logits.argmax(1).float().reshape([n, 1]))
        .into_iter()
        .map(|r| r as usize)
        .collect()
}

/// The system's figures on `data`, in inference mode (`model` on the plain device).
pub fn evaluate(model: &Ditmos, data: &Dataset, batch_size: usize) -> SelectionMetrics {
    let plain = tinyfit_train::cpu();
    let mut logits: Vec<Vec<f32>> = vec![Vec::new(); model.m()];
    let mut routes_all = Vec::with_capacity(data.len());
    let all: Vec<usize> = (0..data.len()).collect();
    let (classifiers, _) = Classifiers::new(&model.classifiers);
    for indices in all.chunks(batch_size.max(1)) {
        let x = batch::inputs(data, indices, &plain);
        let selection = model.select(x.clone());
        routes_all.extend(routes(selection.logits));
        for (l, batch) in logits
            .iter_mut()
            .zip(classifiers.logits(x, &selection.features))
        {
            l.extend(host(batch));
        }
    }
    SelectionMetrics::new(&logits, &routes_all, &data.y)
}
