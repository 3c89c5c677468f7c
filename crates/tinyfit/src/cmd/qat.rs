//! `tinyfit qat RUN --weights int4|ternary|binary`: quantisation-aware fine-tuning of a
//! trained run. The forward pass uses the weights on their grid, the gradient reaches the
//! float weights straight through; the new run's `[weight_bits]` tells `tinyfit quantize` to
//! export the same grids.

use std::path::PathBuf;

use anyhow::Result;

use super::quantize::{BitsArg, uniform_precision};
use super::train::{FineTuneArgs, train_run};
use crate::run_dir::RunDir;

/// `tinyfit qat`'s arguments.
#[derive(clap::Args)]
pub struct QatArgs {
    /// Run folder written by `tinyfit train`.
    pub run: PathBuf,
    /// Weight grid of every convolution and linear layer.
    #[arg(long, value_enum)]
    pub weights: BitsArg,
    /// Layers that keep int8 weights (comma-separated node names), as binary and ternary
    /// networks usually keep the first and last.
    #[arg(long, value_delimiter = ',')]
    pub int8_layers: Vec<String>,
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
    exp.weight_bits = uniform_precision(&trained.graph, args.weights.into(), &args.int8_layers)?;
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
