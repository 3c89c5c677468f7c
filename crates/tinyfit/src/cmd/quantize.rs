//! `tinyfit quantize RUN`: post-training int8 quantisation of a trained run, exported as
//! `model_int8.tflite`, with float and int8 figures side by side.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use tinyfit_compress::{PtqConfig, quantize};
use tinyfit_data::Dataset;
use tinyfit_graph::write_atomic;
use tinyfit_train::{GraphModel, cpu, evaluate};

use super::eval::int8_metrics;
use crate::run_dir::RunDir;

/// Float and int8 accuracy of one split.
#[derive(Debug, Serialize)]
struct Comparison {
    samples: usize,
    float_accuracy: f64,
    int8_accuracy: f64,
    float_macro_f1: f64,
    int8_macro_f1: f64,
}

/// What `quantization.json` records.
#[derive(Debug, Serialize)]
struct QuantReport {
    calibration_samples: usize,
    tflite_bytes: usize,
    flash_bytes: usize,
    arena_bytes: usize,
    arena_lower_bound: usize,
    validation: Comparison,
    test: Comparison,
}

/// Quantises the run in `dir` (calibrating on its training split) and reports float vs int8.
pub fn run(dir: &Path, calibration_samples: usize) -> Result<()> {
    let run = RunDir(dir.to_path_buf());
    let trained = run.load()?;
    let splits = trained.splits()?;

    let config = PtqConfig {
        calibration_samples,
        ..PtqConfig::default()
    };
    let quant = quantize(&trained.graph, &trained.weights, &splits.train, config)
        .context("post-training quantisation")?;
    let program = tinyfit_deploy::lower(&quant)?;
    let bytes = tinyfit_deploy::tflite::export_lowered(&quant, &program, Default::default())
        .context("TFLite export")?;
    let out = run.file("model_int8.tflite");
    write_atomic(&out, &bytes).with_context(|| format!("cannot write {}", out.display()))?;

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
        tflite_bytes: bytes.len(),
        flash_bytes: program.const_bytes(),
        arena_bytes: memory.arena_bytes,
        arena_lower_bound: memory.lower_bound,
        validation: compare(&splits.val)?,
        test: compare(&splits.test)?,
    };
    run.write_json("quantization.json", &report)?;
    println!("wrote {} ({} bytes)", out.display(), bytes.len());
    println!(
        "flash (weights, biases, multipliers) {} B; arena {} B (lower bound {} B)",
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
