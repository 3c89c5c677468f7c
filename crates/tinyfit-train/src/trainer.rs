//! The training loop: shuffled mini-batches, validation every epoch, best-on-validation
//! weights, early stopping, a resumable checkpoint after every epoch.
//!
//! Every epoch reseeds the shuffle and dropout from `(seed, epoch)`, so a run resumed from a
//! checkpoint continues exactly as the uninterrupted run would have.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::Device;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use tinyfit_data::{Dataset, Splits};
use tinyfit_graph::{Graph, Weights};

use crate::batch;
use crate::checkpoint::{self, TrainState};
use crate::config::{OptimizerConfig, TrainConfig};
use crate::distill::Distillation;
use crate::error::TrainError;
use crate::init;
use crate::masks::{DeviceMasks, Masking};
use crate::metrics::{Metrics, MetricsBuilder};
use crate::model::GraphModel;
use crate::weight_quant::Precision;

/// One epoch's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 0-based epoch.
    pub epoch: usize,
    /// Learning rate used.
    pub lr: f64,
    /// Mean training loss (dropout active).
    pub train_loss: f64,
    /// Training accuracy (dropout active).
    pub train_accuracy: f64,
    /// Validation loss.
    pub val_loss: f64,
    /// Validation accuracy.
    pub val_accuracy: f64,
    /// Validation macro-F1.
    pub val_macro_f1: f64,
    /// Wall time of the epoch, validation included.
    pub seconds: f64,
    /// Fraction of the masked layers' weights held at zero (0 without masks).
    #[serde(default)]
    pub sparsity: f64,
}

/// What training hands back.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// Per-epoch records.
    pub history: Vec<EpochRecord>,
    /// 0-based epoch whose weights are `best`.
    pub best_epoch: usize,
    /// Weights with the best validation accuracy (ties: lower validation loss).
    pub best: Weights,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
}

/// Receives progress; the CLI draws bars with it, tests ignore it.
pub trait Observer {
    /// Training is about to run `epochs` epochs of `steps` steps, starting after `done` epochs.
    fn start(&mut self, _done: usize, _epochs: usize, _steps: usize) {}
    /// A training step finished with this batch loss.
    fn step(&mut self, _loss: f64) {}
    /// An epoch finished; `improved` when it is the new best on validation.
    fn epoch(&mut self, _record: &EpochRecord, _improved: bool) {}
}

/// The CPU device training runs on (burn's Flex backend).
pub fn cpu() -> Device {
    Device::flex()
}

/// Where training starts and what it learns from besides the labels.
#[derive(Default)]
pub struct TrainOptions<'a> {
    /// Initial weights (fine-tuning); PyTorch's default initialisation when `None`.
    pub initial: Option<&'a Weights>,
    /// A teacher whose soft targets join the loss.
    pub distillation: Option<Distillation<'a>>,
    /// Weights held at zero (unstructured pruning), decided each epoch.
    pub masking: Option<&'a dyn Masking>,
    /// Layers trained on a weight grid below float (quantisation-aware training).
    pub weight_bits: Option<&'a Precision>,
}

/// Trains `graph` on `splits.train`, selecting on `splits.val`, with checkpoints in `run_dir`.
///
/// With `resume`, continues from the newest checkpoint in `run_dir` (or starts afresh when there
/// is none); without it, refuses a `run_dir` that already holds checkpoints.
pub fn train(
    graph: &Graph,
    splits: &Splits,
    config: &TrainConfig,
    run_dir: &Path,
    resume: bool,
    options: TrainOptions<'_>,
    observer: &mut dyn Observer,
) -> Result<TrainOutcome, TrainError> {
    config.validate().map_err(TrainError::Config)?;
    if let Some(d) = &options.distillation {
        d.config.validate().map_err(TrainError::Config)?;
    }
    let analysis = graph.analyze()?;
    check_fits(graph, &analysis, &splits.train)?;
    std::fs::create_dir_all(run_dir).map_err(|e| TrainError::io(run_dir, e))?;

    let plain = cpu();
    let device = plain.clone().autodiff();
    let initial = match options.initial {
        Some(w) => {
            w.check(graph, &analysis, Path::new("<initial weights>"))?;
            w.clone()
        }
        None => init::pytorch_default(graph, &analysis, config.seed),
    };
    let mut model = GraphModel::new(graph, &initial, &device)?;
    if let Some(precision) = options.weight_bits {
        model = model
            .with_weight_bits(precision)
            .map_err(TrainError::Config)?;
    }
    let mut optim = optimizer(&config.optimizer);
    let best_path = best_weights_path(run_dir);

    let latest = checkpoint::latest(run_dir).map_err(|e| TrainError::io(run_dir, e))?;
    let mut state = match (latest, resume) {
        (Some(_), false) => {
            return Err(TrainError::Config(format!(
                "{} already holds a training run; pass --resume to continue it, or choose another output folder",
                run_dir.display()
            )));
        }
        (Some(files), true) => {
            let text = std::fs::read_to_string(&files.state)
                .map_err(|e| TrainError::io(&files.state, e))?;
            let state: TrainState = serde_json::from_str(&text)
                .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", files.state.display())))?;
            if state.config != *config || state.graph != *graph {
                return Err(TrainError::Config(format!(
                    "the checkpoint in {} was made with another model or [train] config; resume with the same config, or start a new run",
                    run_dir.display()
                )));
            }
            model = model
                .try_load_file(&files.model)
                .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", files.model.display())))?;
            optim = optim.load(&files.optimizer).map_err(|e| {
                TrainError::Checkpoint(format!("{}: {e}", files.optimizer.display()))
            })?;
            state
        }
        (None, _) => TrainState {
            config: config.clone(),
            graph: graph.clone(),
            history: Vec::new(),
            best_epoch: None,
            stale_epochs: 0,
        },
    };

    let train = &splits.train;
    // The teacher is fixed and runs in inference mode: its logits are worked out once.
    let soft_targets = options
        .distillation
        .as_ref()
        .map(|d| (d, d.soft_targets(train, config.eval_batch_size, &plain)));
    let steps = train.len().div_ceil(config.batch_size);
    observer.start(state.epochs_done(), config.epochs, steps);
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let mut stopped_early = false;

    for epoch in state.epochs_done()..config.epochs {
        if config.patience.is_some_and(|p| state.stale_epochs >= p) {
            stopped_early = true;
            break;
        }
        let started = Instant::now();
        let lr = config
            .schedule
            .lr(config.optimizer.lr(), epoch, config.epochs);
        let epoch_seed = config
            .seed
            .wrapping_mul(1_000_003)
            .wrapping_add(epoch as u64);
        device.seed(epoch_seed);
        let (masks, at_target, sparsity) = match options.masking {
            Some(masking) => {
                let weights = model.weights();
                let plan = masking
                    .masks(epoch, graph, &weights)
                    .map_err(TrainError::Config)?;
                let masks = DeviceMasks::new(graph, &weights, &plan.keep, &device)?;
                model = model.apply_masks(&masks);
                (Some(masks), plan.at_target, plan.sparsity())
            }
            None => (None, true, 0.0),
        };
        let mut order: Vec<usize> = (0..train.len()).collect();
        order.shuffle(&mut StdRng::seed_from_u64(epoch_seed));

        let mut train_metrics = MetricsBuilder::new(train.class_names.len());
        for indices in order.chunks(config.batch_size) {
            let x = batch::inputs(train, indices, &device);
            let y = batch::labels(train, indices, &device);
            let soft = soft_targets
                .as_ref()
                .map(|(d, targets)| (d, targets.batch(indices, &device)));
            let logits = model.logits(x);
            let hard = loss_fn.forward(logits.clone(), y);
            let mut loss = match soft {
                Some((d, teacher)) => d.loss(hard, logits.clone(), teacher),
                None => hard,
            };
            if config.bn_gamma_l1 > 0.0
                && let Some(penalty) = model.bn_gamma_l1()
            {
                loss = loss + penalty.mul_scalar(config.bn_gamma_l1);
            }
            let logits_host = logits.into_data();
            let labels: Vec<u32> = indices.iter().map(|&i| train.y[i]).collect();
            train_metrics.add(logits_host.as_slice::<f32>().expect("f32 logits"), &labels);
            let batch_loss = loss.clone().into_scalar::<f32>() as f64;
            if !batch_loss.is_finite() {
                return Err(TrainError::Diverged { epoch });
            }
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr, model, grads);
            if let Some(masks) = &masks {
                model = model.apply_masks(masks);
            }
            observer.step(batch_loss);
        }
        let train_metrics = train_metrics.finish();
        let val = evaluate(&model, &splits.val, config.eval_batch_size, &plain);

        let record = EpochRecord {
            epoch,
            lr,
            train_loss: train_metrics.loss,
            train_accuracy: train_metrics.accuracy,
            val_loss: val.loss,
            val_accuracy: val.accuracy,
            val_macro_f1: val.macro_f1,
            seconds: started.elapsed().as_secs_f64(),
            sparsity,
        };
        let improved = at_target
            && match state.best_epoch {
                None => true,
                Some(b) => {
                    let best = &state.history[b];
                    (val.accuracy, -val.loss) > (best.val_accuracy, -best.val_loss)
                }
            };
        if improved {
            model
                .valid()
                .weights()
                .save(&best_path)
                .map_err(TrainError::Graph)?;
            state.best_epoch = Some(epoch);
            state.stale_epochs = 0;
        } else if at_target {
            // Patience runs from the final masks on: a pruning schedule is not stagnation.
            state.stale_epochs += 1;
        }
        state.history.push(record.clone());
        save_checkpoint(run_dir, &model, &optim, &state)?;
        observer.epoch(&record, improved);
    }

    let best_epoch = state.best_epoch.ok_or_else(|| {
        TrainError::Config(format!(
            "no epoch of the {} ran under the final pruning masks; give the run more epochs than the pruning schedule",
            config.epochs
        ))
    })?;
    let best = Weights::load(&best_path)?;
    Ok(TrainOutcome {
        history: state.history,
        best_epoch,
        best,
        stopped_early,
    })
}

/// The gradients of the cross-entropy loss on `batches` shuffled batches of `data` (training
/// mode), each as weights: what first-order importance criteria need.
pub fn loss_gradients(
    graph: &Graph,
    weights: &Weights,
    data: &Dataset,
    batches: usize,
    batch_size: usize,
    seed: u64,
) -> Result<Vec<Weights>, TrainError> {
    let device = cpu().autodiff();
    device.seed(seed);
    let model = GraphModel::new(graph, weights, &device)?;
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let mut order: Vec<usize> = (0..data.len()).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed));
    Ok(order
        .chunks(batch_size.max(1))
        .take(batches)
        .map(|indices| {
            let logits = model.logits(batch::inputs(data, indices, &device));
            let loss = loss_fn.forward(logits, batch::labels(data, indices, &device));
            model.gradients(&GradientsParams::from_grads(loss.backward(), &model))
        })
        .collect())
}

/// Accuracy, macro-F1, loss and confusion matrix of `model` on `data` (inference mode).
pub fn evaluate(model: &GraphModel, data: &Dataset, batch_size: usize, device: &Device) -> Metrics {
    let mut metrics = MetricsBuilder::new(data.class_names.len());
    for_each_batch_logits(model, data, batch_size, device, |indices, logits| {
        let labels: Vec<u32> = indices.iter().map(|&i| data.y[i]).collect();
        metrics.add(logits, &labels);
    });
    metrics.finish()
}

/// Runs `model` in inference mode over `data` in order, `batch_size` samples at a time, and
/// hands each batch's sample indices and row-major logits to `f`.
pub(crate) fn for_each_batch_logits(
    model: &GraphModel,
    data: &Dataset,
    batch_size: usize,
    device: &Device,
    mut f: impl FnMut(&[usize], &[f32]),
) {
    let model = model.valid();
    let all: Vec<usize> = (0..data.len()).collect();
    for indices in all.chunks(batch_size) {
        let logits = model
            .logits(batch::inputs(data, indices, device))
            .into_data();
        f(indices, logits.as_slice::<f32>().expect("f32 logits"));
    }
}

fn save_checkpoint(
    run_dir: &Path,
    model: &GraphModel,
    optim: &ModuleOptimizer,
    state: &TrainState,
) -> Result<(), TrainError> {
    let state_json = serde_json::to_string_pretty(state).expect("state serialises");
    checkpoint::save(run_dir, state.epochs_done(), |files| {
        model
            .clone()
            .save_file(&files.model)
            .map_err(std::io::Error::other)?;
        optim
            .save(&files.optimizer)
            .map_err(std::io::Error::other)?;
        std::fs::write(&files.state, &state_json)
    })
    .map_err(|e| TrainError::io(&run_dir.join("checkpoints"), e))
}

/// Checks that the graph reads one input shaped like the samples and emits one logit per class.
fn check_fits(
    graph: &Graph,
    analysis: &tinyfit_graph::Analysis,
    data: &Dataset,
) -> Result<(), TrainError> {
    if graph.inputs.len() != 1 {
        return Err(TrainError::Config(format!(
            "training a classifier needs a graph with one input; '{}' has {}",
            graph.name,
            graph.inputs.len()
        )));
    }
    if graph.inputs[0].shape != data.sample_shape {
        return Err(TrainError::Config(format!(
            "the model's input '{}' has shape {:?} but the data's samples are {:?}",
            graph.inputs[0].name, graph.inputs[0].shape, data.sample_shape
        )));
    }
    let out = graph.value_shape(analysis, analysis.outputs[0]);
    if out != [data.class_names.len()] {
        return Err(TrainError::Config(format!(
            "the model's output has shape {out:?} but the data has {} classes",
            data.class_names.len()
        )));
    }
    Ok(())
}

/// Builds the optimiser with PyTorch's semantics (SGD dampening 0, Adam ε as configured).
pub fn optimizer(config: &OptimizerConfig) -> ModuleOptimizer {
    let decay = |wd: f64| (wd > 0.0).then(|| WeightDecayConfig::new(wd as f32));
    match *config {
        OptimizerConfig::Sgd {
            momentum,
            nesterov,
            weight_decay,
            ..
        } => SgdConfig::new()
            .with_momentum((momentum > 0.0).then(|| {
                MomentumConfig::new()
                    .with_momentum(momentum)
                    .with_dampening(0.0)
                    .with_nesterov(nesterov)
            }))
            .with_weight_decay(decay(weight_decay))
            .init(),
        OptimizerConfig::Adam {
            betas,
            eps,
            weight_decay,
            ..
        } => AdamConfig::new()
            .with_beta_1(betas.0 as f32)
            .with_beta_2(betas.1 as f32)
            .with_epsilon(eps as f32)
            .with_weight_decay(decay(weight_decay))
            .init(),
        OptimizerConfig::AdamW {
            betas,
            eps,
            weight_decay,
            ..
        } => AdamWConfig::new()
            .with_beta_1(betas.0 as f32)
            .with_beta_2(betas.1 as f32)
            .with_epsilon(eps as f32)
            .with_weight_decay(weight_decay as f32)
            .init(),
    }
}

/// Where a run keeps its best weights.
pub fn best_weights_path(run_dir: &Path) -> PathBuf {
    run_dir.join("best.safetensors")
}
