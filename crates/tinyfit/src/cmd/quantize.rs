//! `tinyfit quantize RUN`: post-training int8 quantisation of a trained run, exported as
//! `model_int8.tflite`, with float and int8 figures side by side. Weights below eight bits
//! (the run's `[weight_bits]`, or `--weights`) are exported as int8 codes on their grid, which
//! `deploy` packs.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tinyfit_compress::{PtqConfig, mixed, quantize};
use tinyfit_data::{Dataset, Splits};
use tinyfit_graph::write_atomic;
use tinyfit_graph::{Graph, Op};
use tinyfit_train::{GraphModel, Precision, WeightBits, cpu, evaluate};

use super::eval::int8_metrics;
use tinyfit_deploy::codegen;

use crate::report;
use crate::run_dir::{RunDir, TrainedRun};

/// Float and int8 accuracy of one split.
#[derive(Debug, Serialize)]
struct Comparison {
    samples: usize,
    float_accuracy: f64,
    int8_accuracy: f64,
    float_macro_f1: f64,
    int8_macro_f1: f64,
}

/// `tinyfit quantize`'s arguments.
#[derive(clap::Args)]
pub struct QuantizeArgs {
    /// Run folder written by `tinyfit train`.
    pub run: PathBuf,
    /// Training samples used to calibrate activation ranges.
    #[arg(long, default_value_t = 1024)]
    pub calibration: usize,
    /// Weight grids (default: the run's `[weight_bits]`, int8 elsewhere).
    #[command(flatten)]
    pub precision: PrecisionArgs,
}

/// How the weight grids are chosen: one for all layers, or a mixed-precision search.
#[derive(clap::Args)]
pub struct PrecisionArgs {
    /// Weight grid of every convolution and linear layer.
    #[arg(long, value_enum)]
    pub weights: Option<BitsArg>,
    /// Layers that keep int8 weights under `--weights` (comma-separated node names).
    #[arg(long, value_delimiter = ',', requires = "weights")]
    pub int8_layers: Vec<String>,
    /// Mixed precision: each layer's grid chosen by its validation sensitivity so that the
    /// constants (packed filters, biases, multipliers) take at most this many bytes.
    #[arg(long, conflicts_with = "weights")]
    pub flash_budget: Option<usize>,
}

impl PrecisionArgs {
    /// The grids asked for, if any; a mixed-precision search prints its choice.
    pub fn resolve(&self, trained: &TrainedRun, splits: &Splits) -> Result<Option<Precision>> {
        if let Some(bits) = self.weights {
            return uniform_precision(&trained.graph, bits.into(), &self.int8_layers).map(Some);
        }
        let Some(budget) = self.flash_budget else {
            return Ok(None);
        };
        let mixed = mixed::search(
            &trained.graph,
            &trained.weights,
            &splits.val,
            budget,
            trained.experiment.train.eval_batch_size,
        )?;
        println!(
            "mixed precision for {} B of constants ({} B on int8), by validation sensitivity:",
            report::thousands(mixed.bytes.1 as u64),
            report::thousands(mixed.bytes.0 as u64)
        );
        for (layer, bits) in &mixed.precision {
            let increases: Vec<String> = mixed
                .sensitivities
                .iter()
                .filter(|s| &s.layer == layer)
                .map(|s| format!("{:?} {:+.4}", s.bits, s.loss_increase))
                .collect();
            println!(
                "  {layer:<12} {bits:?}   (validation loss vs int8: {})",
                increases.join(", ")
            );
        }
        Ok(Some(mixed.precision))
    }
}

/// A weight grid (see [`WeightBits`]).
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum BitsArg {
    /// Eight bits.
    Int8,
    /// Four bits, per-channel scale.
    Int4,
    /// −α, 0, +α with TWN's threshold 0.7 · mean|w|.
    Ternary,
    /// −α, +α with XNOR-Net's α = mean|w|.
    Binary,
}

impl From<BitsArg> for WeightBits {
    fn from(b: BitsArg) -> Self {
        match b {
            BitsArg::Int8 => WeightBits::Int8,
            BitsArg::Int4 => WeightBits::Int4,
            BitsArg::Ternary => WeightBits::Ternary,
            BitsArg::Binary => WeightBits::Binary,
        }
    }
}

/// `bits` for every convolution and linear layer of `graph` but `int8_layers`, which must
/// name such layers.
pub fn uniform_precision(
    graph: &Graph,
    bits: WeightBits,
    int8_layers: &[String],
) -> Result<Precision> {
    let weighted = |op: &Op| matches!(op, Op::Conv1d(_) | Op::Conv2d(_) | Op::Linear(_));
    for name in int8_layers {
        if !graph
            .nodes
            .iter()
            .any(|n| &n.name == name && weighted(&n.op))
        {
            bail!(
                "--int8-layers names '{name}', which is no convolution or linear layer of '{}'",
                graph.name
            );
        }
    }
    Ok(graph
        .nodes
        .iter()
        .filter(|n| weighted(&n.op) && !int8_layers.contains(&n.name))
        .map(|n| (n.name.clone(), bits))
        .collect())
}

/// What `quantization.json` records.
#[derive(Debug, Serialize)]
struct QuantReport {
    calibration_samples: usize,
    /// Layers with weights below int8, and their grid.
    #[serde(skip_serializing_if = "Precision::is_empty")]
    weight_bits: Precision,
    /// Size of `model_int8.tflite`; absent where the model's ops have no TFLite builtins.
    tflite_bytes: Option<usize>,
    flash_bytes: usize,
    arena_bytes: usize,
    arena_lower_bound: usize,
    validation: Comparison,
    test: Comparison,
}

/// Post-training quantisation of a trained run as `tinyfit quantize` does it (calibrated on
/// `calibration` training samples, weights on `weight_bits` where not int8), lowered to the
/// int8 runtime.
pub fn ptq(
    trained: &TrainedRun,
    splits: &Splits,
    calibration: usize,
    weight_bits: &Precision,
) -> Result<(tinyfit_graph::quant::QuantGraph, tinyfit_deploy::Program)> {
    let config = PtqConfig {
        calibration_samples: calibration,
        weight_bits: weight_bits.clone(),
        ..PtqConfig::default()
    };
    let quant = quantize(&trained.graph, &trained.weights, &splits.train, config)
        .context("post-training quantisation")?;
    let program = tinyfit_deploy::lower(&quant)?;
    Ok((quant, program))
}

/// Quantises the run `args.run` (calibrating on its training split) and reports float vs int8.
pub fn run(args: &QuantizeArgs) -> Result<()> {
    let run = RunDir(args.run.clone());
    let calibration_samples = args.calibration;
    let trained = run.load()?;
    let splits = trained.splits()?;
    let weight_bits = match args.precision.resolve(&trained, &splits)? {
        Some(precision) => precision,
        None => trained.experiment.weight_bits.clone(),
    };
    let weight_bits: Precision = weight_bits
        .into_iter()
        .filter(|&(_, b)| b != WeightBits::Int8)
        .collect();
    let (quant, program) = ptq(&trained, &splits, calibration_samples, &weight_bits)?;
    let out = run.file("model_int8.tflite");
    // A model whose ops TFLite cannot express (grouped convolutions, channel shuffles) has no
    // .tflite; its int8 figures below come from the program all the same, and `tinyfit
    // deploy` quantises the run itself.
    let bytes = match tinyfit_deploy::tflite::export_lowered(&quant, &program, Default::default()) {
        Ok(bytes) => {
            write_atomic(&out, &bytes)
                .with_context(|| format!("cannot write {}", out.display()))?;
            Some(bytes)
        }
        Err(e) => {
            if out.exists() {
                std::fs::remove_file(&out)
                    .with_context(|| format!("cannot remove the stale {}", out.display()))?;
            }
            println!("no .tflite: {e} (`tinyfit deploy` quantises the run itself)");
            None
        }
    };

    let device = cpu();
    let model = GraphModel::new(&trained.graph, &trained.weights, &device)?;
    let compare = |data: &Dataset| -> Result<Comparison> {
        let f = evaluate(
            &model,
            data,
            trained.experiment.train.eval_batch_size,
            &device,
        );
        let q = int8_metrics(&program, data, &indicatif::ProgressBar::hidden())?;
        Ok(Comparison {
            samples: data.len(),
            float_accuracy: f.accuracy,
            int8_accuracy: q.accuracy,
            float_macro_f1: f.macro_f1,
            int8_macro_f1: q.macro_f1,
        })
    };
    let memory = program.memory();
    let report = QuantReport {
        calibration_samples: splits.train.len().min(calibration_samples),
        weight_bits,
        tflite_bytes: bytes.as_ref().map(Vec::len),
        // As the generated C stores them: compact filters where they pay.
        flash_bytes: program.const_bytes()
            - codegen::bytes_saved(&codegen::compact_layers_of(&program, &Default::default())),
        arena_bytes: memory.arena_bytes,
        arena_lower_bound: memory.lower_bound,
        validation: compare(&splits.val)?,
        test: compare(&splits.test)?,
    };
    run.write_json("quantization.json", &report)?;
    if let Some(bytes) = &bytes {
        println!("wrote {} ({} bytes)", out.display(), bytes.len());
    }
    println!(
        "constants in flash (weights as the generated C stores them, biases, multipliers) {} B; arena {} B (lower bound {} B)",
        report.flash_bytes, report.arena_bytes, report.arena_lower_bound
    );
    for (name, c) in [("validation", &report.validation), ("test", &report.test)] {
        println!(
            "{name}: float {:.2}%, int8 {:.2}% ({:+.2} points, {} samples); macro-F1 {:.4} → {:.4}",
            100.0 * c.float_accuracy,
            100.0 * c.int8_accuracy,
            100.0 * (c.int8_accuracy - c.float_accuracy),
            c.samples,
            c.float_macro_f1,
            c.int8_macro_f1
        );
    }
    Ok(())
}
