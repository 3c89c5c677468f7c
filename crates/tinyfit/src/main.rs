//! `tinyfit`: fit neural networks onto microcontrollers.

mod cmd;
mod experiment;
mod plot;
mod progress;
mod report;
mod run_dir;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Train, inspect and evaluate tiny models for microcontrollers.
#[derive(Parser)]
#[command(name = "tinyfit", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train the model of an experiment config and report validation and test figures.
    Train {
        /// Experiment config (TOML with [data], [model], [train]).
        #[arg(long)]
        config: PathBuf,
        /// Run folder (default: runs/<config file name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Dataset folder, replacing the config's `data.path`.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Continue the run in the output folder from its last finished epoch.
        #[arg(long)]
        resume: bool,
        /// Seed, replacing the config's `train.seed`; several (comma-separated) train one run
        /// per seed in OUT/seed-N and print the mean and spread of their accuracy.
        #[arg(long, value_delimiter = ',')]
        seed: Vec<u64>,
    },
    /// Reload a trained run and recompute its accuracy on a split.
    Eval {
        /// Run folder written by `tinyfit train` (or use --model and --data).
        #[arg(required_unless_present = "model")]
        run: Option<PathBuf>,
        /// An int8 `.tflite` model to run with tinyfit's runtime instead of a run folder.
        #[arg(long, requires = "data", conflicts_with = "run")]
        model: Option<PathBuf>,
        /// Config with a `[data]` section naming the dataset for --model.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Split to evaluate (`all`: every sample, for models trained elsewhere).
        #[arg(long, value_enum, default_value = "test")]
        split: cmd::eval::Split,
    },
    /// Generate a C99 package of an int8 model for a board: model.h/model.c, the kernels, an
    /// example main and deploy.json (flash, SRAM and MACs against the board's limits).
    Deploy(cmd::deploy::DeployArgs),
    /// Post-training int8 quantisation of a run: writes RUN/model_int8.tflite and
    /// RUN/quantization.json (float vs int8 accuracy on validation and test).
    Quantize(cmd::quantize::QuantizeArgs),
    /// Structured channel pruning of a trained run to a MACs target (coupled channels removed
    /// together), then fine-tuning, into a new run folder with prune.json (parameters, MACs,
    /// accuracy before and after).
    Prune(cmd::prune::PruneArgs),
    /// Quantisation-aware fine-tuning of a trained run with weights on a 4-bit, ternary or
    /// binary grid (straight-through estimator), into a new run folder that `quantize`
    /// exports on the same grids.
    Qat(cmd::qat::QatArgs),
    /// DiTMoS from a trained strong model: k-means data splitting, classifier and selector
    /// pre-training, adversarial rounds; checkpoint chosen on validation; ditmos.json.
    Ditmos(cmd::ditmos::DitmosArgs),
    /// SN-Net model stitching over trained anchors: least-squares stitching layers, joint
    /// training with one route per step, every route evaluated, the accuracy–MACs frontier;
    /// stitch.json.
    Stitch(cmd::stitch::StitchArgs),
    /// Hardware-aware architecture search over the block families (fire, depthwise-separable,
    /// inverted residual, ShuffleNet): MnasNet's reward on the board's latency estimate, flash
    /// and SRAM as hard limits; every trial logged to trials.jsonl (resumable, shardable); the
    /// best candidate and a hand-designed baseline of its latency trained fully; search.json.
    Search(cmd::search::SearchArgs),
    /// The main job: every method on one dataset and board (strong and small models,
    /// compression, DiTMoS, SN-Net, architecture search), each candidate deployed and
    /// measured, the most accurate one within the budget chosen; summary.json, report.html,
    /// the winner's C package and .tflite. Finished stages are reused on a rerun.
    Run(cmd::run::RunArgs),
    /// A compression pipeline (distill, prune, QAT steps) from a trained run: every step
    /// quantised, deployed on one board and measured, in one table and compress.json.
    Compress {
        /// Pipeline file (TOML: source run, board, [[step]]s).
        #[arg(long)]
        config: PathBuf,
        /// Output folder (default: runs/<config file name>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Per-layer shapes, parameters, MACs and activation bytes of a model.
    Inspect {
        /// Graph file (.json/.toml), run folder, or int8 `.tflite` model.
        model: PathBuf,
    },
    /// Datasets.
    Data {
        #[command(subcommand)]
        what: DataCommand,
    },
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
}

#[derive(Subcommand)]
enum DataCommand {
    /// Classes, counts per split, shapes and value ranges of a dataset folder or config.
    Inspect {
        /// Dataset folder, or a config with a [data] section.
        path: PathBuf,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Milliseconds per training step on the reference shapes.
    Train {
        /// Samples per step.
        #[arg(long, default_value_t = 64)]
        batch: usize,
        /// Timed steps per shape.
        #[arg(long, default_value_t = 30)]
        steps: usize,
        /// Untimed steps first.
        #[arg(long, default_value_t = 5)]
        warmup: usize,
    },
    /// int8 inference latency: tinyfit's runtime vs LiteRT on the MLPerf Tiny models.
    Infer {
        /// Folder with the MLPerf Tiny .tflite models.
        #[arg(long, default_value = "../shared/models/mlperf_tiny")]
        models: PathBuf,
        /// Timed runs per model.
        #[arg(long, default_value_t = 50)]
        runs: usize,
        /// Untimed runs first.
        #[arg(long, default_value_t = 5)]
        warmup: usize,
        /// Also time each operation of tinyfit's runtime (a profile, no LiteRT).
        #[arg(long)]
        per_op: bool,
    },
    /// The MLPerf Tiny models as generated C on an emulated Cortex-M: instructions per layer
    /// and per MAC, estimated latency and energy on a board.
    Mcu {
        /// Folder with the MLPerf Tiny .tflite models.
        #[arg(long, default_value = "../shared/models/mlperf_tiny")]
        models: PathBuf,
        /// Board whose core runs the code and whose clock and power turn counts into time and
        /// energy.
        #[arg(long, default_value = "l4r5zi")]
        board: String,
        /// Print every operation's counts.
        #[arg(long)]
        per_op: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train {
            config,
            out,
            data,
            resume,
            seed,
        } => cmd::train::run(&config, out, data, resume, &seed),
        Command::Eval {
            run,
            model,
            data,
            split,
        } => match (run, model, data) {
            (_, Some(model), Some(data)) => cmd::eval::tflite(&model, &data, split),
            (Some(run), _, _) => cmd::eval::run(&run, split),
            _ => unreachable!("clap requires a run folder or --model with --data"),
        },
        Command::Deploy(args) => cmd::deploy::run(&args),
        Command::Quantize(args) => cmd::quantize::run(&args),
        Command::Qat(args) => cmd::qat::run(&args),
        Command::Compress { config, out } => cmd::compress::run(&config, out),
        Command::Ditmos(args) => cmd::ditmos::run(&args),
        Command::Stitch(args) => cmd::stitch::run(&args),
        Command::Search(args) => cmd::search::run(&args),
        Command::Run(args) => cmd::run::run(&args),
        Command::Prune(args) => cmd::prune::run(&args),
        Command::Inspect { model } => cmd::inspect::run(&model),
        Command::Data {
            what: DataCommand::Inspect { path },
        } => cmd::data::inspect(&path),
        Command::Bench {
            what:
                BenchCommand::Train {
                    batch,
                    steps,
                    warmup,
                },
        } => cmd::bench::run(batch, steps, warmup),
        Command::Bench {
            what:
                BenchCommand::Infer {
                    models,
                    runs,
                    warmup,
                    per_op,
                },
        } => cmd::bench_infer::run(&models, runs, warmup, per_op),
        Command::Bench {
            what:
                BenchCommand::Mcu {
                    models,
                    board,
                    per_op,
                },
        } => cmd::bench_mcu::run(&models, &board, per_op),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
