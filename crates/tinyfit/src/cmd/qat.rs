//! `tinyfit qat RUN --weights int4|ternary|binary`: quantisation-aware fine-tuning of a
//! trained run. The forward pass uses the weights on their grid, the gradient reaches the
//! float weights straight through; the new run's `[weight_bits]` tells `tinyfit quantize` to
//! export the same grids.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::quantize::PrecisionArgs;
use super::train::{FineTuneArgs, train_run};
use crate::run_dir::RunDir;

/// `tinyfit qat`'s arguments.
#[derive(clap::Args)]
pub struct QatArgs {
    /// Run folder written by `tinyfit train`.
    pub run: PathBuf,
    /// Weight grids: `--weights` for all layers (`--int8-layers` excepted, as binary and
    /// ternary networks usually keep the first and last), or `--flash-budget`.
    #[command(flatten)]
    pub precision: PrecisionArgs,
    /// Fine-tuning.
    #[command(flatten)]
    pub tune: FineTuneArgs,
}

/// Fine-tunes the run `args.run` with fake-quantised weights into a new run folder.
pub fn run(args: &QatArgs) -> Result<()> {
    let dir = args.run.as_path();
    let trained = RunDir(dir.to_path_buf()).load()?;
    let splits = trained.splits()?;
    let out = args.tune.out_dir(dir, "qat")?;
    let mut exp = args.tune.experiment(&trained.experiment);
    exp.weight_bits = args
        .precision
        .resolve(&trained, &splits)?
        .context("QAT needs weight grids: --weights or --flash-budget")?;
    println!(
        "fine-tuning for up to {} epochs from learning rate {:.2e}",
        exp.train.epochs,
        exp.train.optimizer.lr()
    );
    train_run(
        &exp,
        &trained.graph,
        &splits,
        &out,
        args.tune.resume,
        Some(&trained.weights),
        None,
    )?;
    println!(
        "`tinyfit quantize {}` exports it with these weight grids",
        out.display()
    );
    Ok(())
}
