//! `tinyfit prune RUN --keep-macs F`: structured channel pruning of a trained run to a MACs
//! target, then fine-tuning, into a new run folder that `quantize` and `deploy` take as they
//! take any run.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tinyfit_compress::prune::{self, Criterion, Ranking};
use tinyfit_train::{GraphModel, Metrics, cpu, evaluate};

use super::train::train_run;
use crate::report;
use crate::run_dir::{Report, RunDir};

/// How to prune and fine-tune.
pub struct PruneArgs {
    /// MACs to keep, as a fraction of the run's.
    pub keep_macs: f64,
    /// Channel importance.
    pub criterion: Criterion,
    /// Global or layer-wise ranking.
    pub ranking: Ranking,
    /// The fraction of every layer's channels that stays.
    pub min_keep: f64,
    /// Fine-tuning epochs (default: the run's).
    pub epochs: Option<usize>,
    /// Fine-tuning learning rate as a fraction of the run's.
    pub lr_scale: f64,
    /// The output run folder (default: RUN-pruned).
    pub out: Option<PathBuf>,
    /// Continue an interrupted fine-tuning.
    pub resume: bool,
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

/// Prunes the run in `dir` and fine-tunes the result.
pub fn run(dir: &Path, args: PruneArgs) -> Result<()> {
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
        args.criterion,
        args.ranking,
        args.keep_macs,
        args.min_keep,
    )
    .context("structured pruning")?;
    println!(
        "pruned {} of {} prunable channels ({:?}, {:?} ranking): {} → {} parameters, {} → {} MACs ({:.1} %)",
        pruned.removed,
        pruned.prunable,
        args.criterion,
        args.ranking,
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
        criterion: args.criterion,
        ranking: args.ranking,
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
