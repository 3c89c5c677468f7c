//! `tinyfit prune RUN --keep-macs|--keep-params|--keep-flash|--keep-sram F | --sparsity S`:
//! structured channel pruning to a target of the cost model, or unstructured magnitude pruning
//! to a sparsity, of a trained run, with fine-tuning, into a new run folder that `quantize`
//! and `deploy` take as they take any run.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tinyfit_compress::prune::magnitude::{self, GradualMagnitude, Scope};
use tinyfit_compress::prune::{self, Criterion, PruneConfig, Ranking, Resource};
use tinyfit_data::Splits;
use tinyfit_graph::{Graph, Weights};
use tinyfit_train::{GraphModel, Masking, Metrics, cpu, evaluate, loss_gradients};

use super::train::{FineTuneArgs, train_run};
use crate::experiment::Experiment;
use crate::report;
use crate::run_dir::{Report, RunDir};

/// `tinyfit prune`'s arguments.
#[derive(clap::Args)]
#[command(group(
    clap::ArgGroup::new("target")
        .required(true)
        .args(["keep_macs", "keep_params", "keep_flash", "keep_sram", "sparsity"])
))]
pub struct PruneArgs {
    /// Run folder written by `tinyfit train`.
    pub run: PathBuf,
    /// Structured: fraction of the run's MACs to keep, in (0, 1].
    #[arg(long)]
    pub keep_macs: Option<f64>,
    /// Structured: fraction of the run's parameters to keep.
    #[arg(long)]
    pub keep_params: Option<f64>,
    /// Structured: fraction of the run's deployed constants (int8 weights, biases,
    /// multipliers) to keep.
    #[arg(long)]
    pub keep_flash: Option<f64>,
    /// Structured: fraction of the run's peak activation bytes (the largest layer's inputs and
    /// output, int8) to keep.
    #[arg(long)]
    pub keep_sram: Option<f64>,
    /// Unstructured: fraction of the convolution and linear weights to set to zero, in [0, 1).
    #[arg(long)]
    pub sparsity: Option<f64>,
    /// Structured: channel importance.
    #[arg(long, value_enum, default_value = "l1")]
    pub criterion: CriterionArg,
    /// Rank channels (structured) or weights (unstructured) over the whole graph or layer by
    /// layer.
    #[arg(long, value_enum, default_value = "global")]
    pub ranking: RankingArg,
    /// Structured: fraction of every layer's channels that stays, at least one.
    #[arg(long, default_value_t = 0.25)]
    pub min_keep: f64,
    /// Unstructured: epochs over which the sparsity rises to its target (Zhu and Gupta's
    /// cubic schedule; 1 prunes at once); the rest fine-tune. Default: half the epochs.
    #[arg(long)]
    pub ramp_epochs: Option<usize>,
    /// Fine-tuning.
    #[command(flatten)]
    pub tune: FineTuneArgs,
}

/// Channel importance (see [`Criterion`]).
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum CriterionArg {
    /// Σ|w| of a channel's filters.
    L1,
    /// ‖w‖₂ of a channel's filters.
    L2,
    /// Σ|γ| of a channel's batch norms (network slimming).
    BnGamma,
    /// First-order Taylor: (Σ g·w)² over a channel's parameters, averaged over training
    /// batches.
    Taylor,
}

impl From<CriterionArg> for Criterion {
    fn from(c: CriterionArg) -> Self {
        match c {
            CriterionArg::L1 => Criterion::L1,
            CriterionArg::L2 => Criterion::L2,
            CriterionArg::BnGamma => Criterion::BnGamma,
            CriterionArg::Taylor => Criterion::Taylor,
        }
    }
}

/// Ranking (see [`Ranking`] and [`Scope`]).
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum RankingArg {
    /// One ranking over the graph.
    Global,
    /// The same fraction of every layer.
    LayerWise,
}

impl From<RankingArg> for Ranking {
    fn from(r: RankingArg) -> Self {
        match r {
            RankingArg::Global => Ranking::Global,
            RankingArg::LayerWise => Ranking::LayerWise,
        }
    }
}

impl From<RankingArg> for Scope {
    fn from(r: RankingArg) -> Self {
        match r {
            RankingArg::Global => Scope::Global,
            RankingArg::LayerWise => Scope::LayerWise,
        }
    }
}

/// Accuracy of one split before pruning, right after it, and after fine-tuning.
#[derive(Debug, Serialize)]
struct Stages {
    original: f64,
    pruned: f64,
    fine_tuned: f64,
}

/// What was pruned, and how.
#[derive(Debug, Serialize)]
#[serde(tag = "method", rename_all = "snake_case")]
enum Method {
    /// Whole channels removed.
    Channels {
        #[serde(flatten)]
        config: PruneConfig,
        /// The target's resource before and after.
        resource_before_after: (u64, u64),
        channels_removed: usize,
        channels_prunable: usize,
    },
    /// Single weights held at zero.
    Magnitude {
        #[serde(flatten)]
        schedule: GradualMagnitude,
        /// Zero weights of the fine-tuned model over the convolution and linear weights.
        sparsity: f64,
        /// Non-zero parameters of the fine-tuned model.
        nonzero_params: u64,
    },
}

/// What `prune.json` records.
#[derive(Debug, Serialize)]
struct PruneReport {
    source: PathBuf,
    #[serde(flatten)]
    method: Method,
    /// Parameters before and after (unstructured pruning keeps the zeros).
    params: (u64, u64),
    /// MACs per sample before and after.
    macs: (u64, u64),
    validation_accuracy: Stages,
    /// Test accuracy of the original and the fine-tuned model (the pruned one is not tested:
    /// the test split is touched once per model).
    test_accuracy: (f64, f64),
}

/// A trained run, loaded for pruning.
struct Source {
    dir: PathBuf,
    graph: Graph,
    weights: Weights,
    experiment: Experiment,
    splits: Splits,
    report: Report,
}

/// Prunes the run `args.run` and fine-tunes the result.
pub fn run(args: &PruneArgs) -> Result<()> {
    let dir = args.run.as_path();
    let trained = RunDir(dir.to_path_buf()).load()?;
    let report: Report = RunDir(dir.to_path_buf())
        .read_json("report.json")
        .context("the run has no report.json: is its training finished?")?;
    let source = Source {
        dir: dir.to_path_buf(),
        splits: trained.splits()?,
        graph: trained.graph,
        weights: trained.weights,
        experiment: trained.experiment,
        report,
    };
    let out = args.tune.out_dir(dir, "pruned")?;
    let exp = args.tune.experiment(&source.experiment);
    let structured = [
        (args.keep_macs, Resource::Macs),
        (args.keep_params, Resource::Params),
        (args.keep_flash, Resource::Flash),
        (args.keep_sram, Resource::Sram),
    ]
    .into_iter()
    .find_map(|(keep, resource)| Some((keep?, resource)));
    let rep = match (structured, args.sparsity) {
        (Some((keep, resource)), _) => channels(&source, args, resource, keep, &exp, &out)?,
        (None, Some(sparsity)) => weights(&source, args, sparsity, &exp, &out)?,
        (None, None) => unreachable!("clap requires one target"),
    };
    RunDir(out.clone()).write_json("prune.json", &rep)?;
    println!(
        "test accuracy: {:.2} % original, {:.2} % pruned and fine-tuned ({:+.2} points); see {}",
        100.0 * rep.test_accuracy.0,
        100.0 * rep.test_accuracy.1,
        100.0 * (rep.test_accuracy.1 - rep.test_accuracy.0),
        out.join("prune.json").display()
    );
    Ok(())
}

/// Structured pruning to `keep` of `resource`, then fine-tuning.
fn channels(
    source: &Source,
    args: &PruneArgs,
    resource: Resource,
    keep: f64,
    exp: &Experiment,
    out: &Path,
) -> Result<PruneReport> {
    let config = PruneConfig {
        criterion: args.criterion.into(),
        ranking: args.ranking.into(),
        resource,
        keep,
        min_keep: args.min_keep,
    };
    let gradients = if config.criterion == Criterion::Taylor {
        const BATCHES: usize = 32;
        println!("Taylor importance: loss gradients on {BATCHES} training batches");
        let batch = source.experiment.train.batch_size;
        loss_gradients(
            &source.graph,
            &source.weights,
            &source.splits.train,
            BATCHES,
            batch,
            source.experiment.train.seed,
        )?
    } else {
        Vec::new()
    };
    let pruned = prune::prune(&source.graph, &source.weights, &config, &gradients)
        .context("structured pruning")?;
    println!(
        "pruned {} of {} prunable channels ({:?}, {:?} ranking, {:?} {} → {}): {} → {} parameters, {} → {} MACs ({:.1} %)",
        pruned.removed,
        pruned.prunable,
        config.criterion,
        config.ranking,
        resource,
        report::thousands(pruned.resource.0),
        report::thousands(pruned.resource.1),
        report::thousands(pruned.params.0),
        report::thousands(pruned.params.1),
        report::thousands(pruned.macs.0),
        report::thousands(pruned.macs.1),
        100.0 * pruned.macs.1 as f64 / pruned.macs.0.max(1) as f64,
    );
    let before = validation_accuracy(source, &pruned.graph, &pruned.weights)?;
    let tuned = fine_tune(
        exp,
        &pruned.graph,
        source,
        out,
        args.tune.resume,
        (&pruned.weights, before),
        None,
    )?;
    Ok(PruneReport {
        source: source.dir.clone(),
        method: Method::Channels {
            config,
            resource_before_after: pruned.resource,
            channels_removed: pruned.removed,
            channels_prunable: pruned.prunable,
        },
        params: pruned.params,
        macs: pruned.macs,
        validation_accuracy: stages(source, before, &tuned),
        test_accuracy: (source.report.test.accuracy, tuned.test.accuracy),
    })
}

/// Unstructured magnitude pruning to `sparsity`, gradual over the ramp, fine-tuned under the
/// final masks.
fn weights(
    source: &Source,
    args: &PruneArgs,
    sparsity: f64,
    exp: &Experiment,
    out: &Path,
) -> Result<PruneReport> {
    let scope: Scope = args.ranking.into();
    let ramp_epochs = args.ramp_epochs.unwrap_or((exp.train.epochs / 2).max(1));
    if ramp_epochs > exp.train.epochs {
        bail!(
            "--ramp-epochs {ramp_epochs} leaves no epoch under the final masks of the {} fine-tuning epochs",
            exp.train.epochs
        );
    }
    let schedule = GradualMagnitude {
        target: sparsity,
        scope,
        ramp_epochs,
    };
    // Validation accuracy with the final masks at once, before any fine-tuning.
    let masks = magnitude::magnitude_masks(&source.graph, &source.weights, sparsity, scope)
        .context("magnitude pruning")?;
    let mut one_shot = source.weights.clone();
    magnitude::apply_masks(&masks, &mut one_shot)?;
    let before = validation_accuracy(source, &source.graph, &one_shot)?;
    println!(
        "magnitude pruning to {:.0} % zero weights ({scope:?}), rising over {ramp_epochs} of {} epochs",
        100.0 * sparsity,
        exp.train.epochs
    );
    let tuned = fine_tune(
        exp,
        &source.graph,
        source,
        out,
        args.tune.resume,
        (&source.weights, before),
        Some(&schedule),
    )?;
    let best = RunDir(out.to_path_buf()).load()?.weights;
    let masked: Vec<&tinyfit_graph::Tensor> = masks.keys().map(|k| &best.tensors[k]).collect();
    let total: usize = masked.iter().map(|t| t.data.len()).sum();
    let zeros: usize = masked
        .iter()
        .map(|t| t.data.iter().filter(|&&w| w == 0.0).count())
        .sum();
    let params = source.report.params;
    println!(
        "{} of {} convolution and linear weights are zero ({:.1} %)",
        report::thousands(zeros as u64),
        report::thousands(total as u64),
        100.0 * zeros as f64 / total.max(1) as f64
    );
    Ok(PruneReport {
        source: source.dir.clone(),
        method: Method::Magnitude {
            schedule,
            sparsity: zeros as f64 / total.max(1) as f64,
            nonzero_params: params - zeros as u64,
        },
        params: (params, params),
        macs: (source.report.macs, source.report.macs),
        validation_accuracy: stages(source, before, &tuned),
        test_accuracy: (source.report.test.accuracy, tuned.test.accuracy),
    })
}

/// Validation accuracy of `graph` with `weights`.
fn validation_accuracy(source: &Source, graph: &Graph, weights: &Weights) -> Result<f64> {
    let device = cpu();
    let model = GraphModel::new(graph, weights, &device)?;
    let batch = source.experiment.train.eval_batch_size;
    Ok(evaluate(&model, &source.splits.val, batch, &device).accuracy)
}

/// Fine-tunes `graph` from `initial` into `out`.
fn fine_tune(
    exp: &Experiment,
    graph: &Graph,
    source: &Source,
    out: &Path,
    resume: bool,
    (initial, pruned_accuracy): (&Weights, f64),
    masking: Option<&dyn Masking>,
) -> Result<Report> {
    println!(
        "validation accuracy: {:.2} % before pruning, {:.2} % pruned, before fine-tuning",
        100.0 * source.report.validation.accuracy,
        100.0 * pruned_accuracy
    );
    println!(
        "fine-tuning for up to {} epochs from learning rate {:.2e}",
        exp.train.epochs,
        exp.train.optimizer.lr()
    );
    train_run(
        exp,
        graph,
        &source.splits,
        out,
        resume,
        Some(initial),
        masking,
    )
}

fn stages(source: &Source, pruned: f64, tuned: &Report) -> Stages {
    let accuracy = |m: &Metrics| m.accuracy;
    Stages {
        original: accuracy(&source.report.validation),
        pruned,
        fine_tuned: accuracy(&tuned.validation),
    }
}
