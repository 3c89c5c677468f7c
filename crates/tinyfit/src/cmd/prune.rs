//! `tinyfit prune RUN --keep-macs F`: structured channel pruning of a trained run to a MACs
//! target, then fine-tuning, into a new run folder that `quantize` and `deploy` take as they
//! take any run.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tinyfit_compress::prune::{self, Criterion, Ranking};
use tinyfit_train::{GraphModel, Metrics, cpu, evaluate};

use super::train::train_run;
use crate::report;
use crate::run_dir::{Report, RunDir};

/// `tinyfit prune`'s arguments.
#[derive(clap::Args)]
pub struct PruneArgs {
    /// Run folder written by `tinyfit train`.
    pub run: PathBuf,
    /// Fraction of the run's MACs to keep, in (0, 1].
    #[arg(long)]
    pub keep_macs: f64,
    /// Channel importance.
    #[arg(long, value_enum, default_value = "l1")]
    pub criterion: CriterionArg,
    /// Rank channels over the whole graph or layer by layer.
    #[arg(long, value_enum, default_value = "global")]
    pub ranking: RankingArg,
    /// Fraction of every layer's channels that stays, at least one.
    #[arg(long, default_value_t = 0.25)]
    pub min_keep: f64,
    /// Fine-tuning epochs (default: the run's).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Fine-tuning learning rate as a fraction of the run's.
    #[arg(long, default_value_t = 0.1)]
    pub lr_scale: f64,
    /// Fine-tuning seed (default: the run's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Output run folder (default: RUN-pruned beside RUN).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue an interrupted fine-tuning in the output folder.
    #[arg(long)]
    pub resume: bool,
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
}

impl From<CriterionArg> for Criterion {
    fn from(c: CriterionArg) -> Self {
        match c {
            CriterionArg::L1 => Criterion::L1,
            CriterionArg::L2 => Criterion::L2,
            CriterionArg::BnGamma => Criterion::BnGamma,
        }
    }
}

/// Ranking (see [`Ranking`]).
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum RankingArg {
    /// One ranking over the graph, scores normalised per layer.
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

/// Accuracy of one split before pruning, right after it, and after fine-tuning.
#[derive(Debug, Serialize)]
struct Stages {
    original: f64,
    pruned: f64,
    fine_tuned: f64,
}

/// What `prune.json` records.
#[derive(Debug, Serialize)]
struct PruneReport {
    source: PathBuf,
    criterion: Criterion,
    ranking: Ranking,
    keep_macs: f64,
    min_keep: f64,
    channels_removed: usize,
    channels_prunable: usize,
    params: (u64, u64),
    macs: (u64, u64),
    validation_accuracy: Stages,
    /// Test accuracy of the original and the fine-tuned model (the pruned one is not tested:
    /// the test split is touched once per model).
    test_accuracy: (f64, f64),
}

/// Prunes the run `args.run` and fine-tunes the result.
pub fn run(args: &PruneArgs) -> Result<()> {
    let dir = args.run.as_path();
    let (criterion, ranking): (Criterion, Ranking) = (args.criterion.into(), args.ranking.into());
    let source = RunDir(dir.to_path_buf());
    let trained = source.load()?;
    let original: Report = source
        .read_json("report.json")
        .context("the run has no report.json: is its training finished?")?;
    let splits = trained.splits()?;
    let out = args.out.clone().unwrap_or_else(|| {
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
        dir.with_file_name(format!("{}-pruned", name.unwrap_or_else(|| "run".into())))
    });
    if out == dir {
        bail!("the pruned run needs its own folder; --out names the run itself");
    }

    let pruned = prune::prune(
        &trained.graph,
        &trained.weights,
        criterion,
        ranking,
        args.keep_macs,
        args.min_keep,
    )
    .context("structured pruning")?;
    println!(
        "pruned {} of {} prunable channels ({:?}, {:?} ranking): {} → {} parameters, {} → {} MACs ({:.1} %)",
        pruned.removed,
        pruned.prunable,
        criterion,
        ranking,
        report::thousands(pruned.params.0),
        report::thousands(pruned.params.1),
        report::thousands(pruned.macs.0),
        report::thousands(pruned.macs.1),
        100.0 * pruned.macs.1 as f64 / pruned.macs.0.max(1) as f64,
    );
    let device = cpu();
    let batch = trained.experiment.train.eval_batch_size;
    let before = evaluate(
        &GraphModel::new(&pruned.graph, &pruned.weights, &device)?,
        &splits.val,
        batch,
        &device,
    );
    println!(
        "validation accuracy: {:.2} % before pruning, {:.2} % pruned, before fine-tuning",
        100.0 * original.validation.accuracy,
        100.0 * before.accuracy
    );

    let mut exp = trained.experiment.clone();
    if let Some(epochs) = args.epochs {
        exp.train.epochs = epochs;
    }
    if let Some(seed) = args.seed {
        exp.train.seed = seed;
    }
    let lr = exp.train.optimizer.lr() * args.lr_scale;
    exp.train.optimizer = exp.train.optimizer.clone().with_lr(lr);
    println!(
        "fine-tuning for up to {} epochs from learning rate {lr:.2e}",
        exp.train.epochs
    );
    let tuned = train_run(
        &exp,
        &pruned.graph,
        &splits,
        &out,
        args.resume,
        Some(&pruned.weights),
    )?;
    let accuracy = |m: &Metrics| m.accuracy;
    let rep = PruneReport {
        source: dir.to_path_buf(),
        criterion,
        ranking,
        keep_macs: args.keep_macs,
        min_keep: args.min_keep,
        channels_removed: pruned.removed,
        channels_prunable: pruned.prunable,
        params: pruned.params,
        macs: pruned.macs,
        validation_accuracy: Stages {
            original: accuracy(&original.validation),
            pruned: before.accuracy,
            fine_tuned: accuracy(&tuned.validation),
        },
        test_accuracy: (accuracy(&original.test), accuracy(&tuned.test)),
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
