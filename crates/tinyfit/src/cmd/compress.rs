//! `tinyfit compress --config FILE`: a pipeline of compression steps (distill, prune, QAT) from
//! a trained run, each step a run folder of its own, every step quantised to int8, deployed on
//! one board and measured the same way: parameters, MACs, validation accuracy (float and int8),
//! flash, peak SRAM and estimated latency, in one table and in `compress.json`.
//!
//! ```toml
//! source = "../../runs/train"      # a trained run, relative to this file
//! board = "l4r5zi"
//!
//! [[step]]
//! kind = "distill"                 # train a student on the current model's soft targets
//! student = "../graphs/har_student.json"
//! temperature = 4.0
//! alpha = 0.9
//!
//! [[step]]
//! kind = "prune"                   # the flags of `tinyfit prune`, as keys
//! keep_macs = 0.5
//!
//! [[step]]
//! kind = "qat"                     # the flags of `tinyfit qat`, as keys
//! weights = "int4"
//! ```
//!
//! The test split is reported for the source and the final model only. A pipeline interrupted
//! resumes where it stopped: finished steps are kept, a step in training continues from its
//! checkpoint.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use serde::{Deserialize, Serialize};
use tinyfit_graph::{Graph, Op, Weights};
use tinyfit_train::{HintConfig, Precision};

use super::train::train_run;
use super::{deploy, prune, qat, quantize};
use crate::experiment::DistillSection;
use crate::report::thousands;
use crate::run_dir::{Report, RunDir, config_folder, read_json, read_toml};

/// The pipeline file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Pipeline {
    /// The trained run the pipeline starts from.
    source: PathBuf,
    /// The board every step is deployed on.
    board: String,
    /// The steps, in order.
    #[serde(default)]
    step: Vec<toml::Table>,
}

/// A `kind = "distill"` step: a student trained on the current model's soft targets.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DistillStep {
    /// The student's graph, relative to the pipeline file.
    student: PathBuf,
    /// Softmax temperature (default 4).
    temperature: Option<f64>,
    /// Weight of the soft targets (default 0.9).
    alpha: Option<f64>,
    /// Training epochs (default: the source run's).
    epochs: Option<usize>,
    /// FitNets hints before distillation.
    hints: Option<HintConfig>,
}

/// The subcommands a step may name, parsed from the step's keys turned into flags.
#[derive(Parser)]
#[command(no_binary_name = true)]
enum StepCommand {
    Prune(prune::PruneArgs),
    Qat(qat::QatArgs),
}

/// One row of the table: a model after a step.
#[derive(Debug, Serialize)]
struct Row {
    step: String,
    run: PathBuf,
    params: u64,
    nonzero_params: u64,
    macs: u64,
    /// Layers with weights below int8.
    weight_bits: Precision,
    validation_float: f64,
    validation_int8: f64,
    /// Test accuracy, float and int8: the source and the final model only.
    #[serde(skip_serializing_if = "Option::is_none")]
    test: Option<(f64, f64)>,
    const_bytes: u64,
    flash_bytes: Option<u64>,
    peak_sram_bytes: Option<u64>,
    latency_ms: Option<f64>,
}

/// What `compress.json` records.
#[derive(Debug, Serialize)]
struct CompressReport {
    source: PathBuf,
    board: String,
    rows: Vec<Row>,
}

/// Runs the pipeline in `config` into `out` (default `runs/<config name>`).
pub fn run(config: &Path, out: Option<PathBuf>) -> Result<()> {
    let pipeline: Pipeline = read_toml(config, "pipeline")?;
    let base = config_folder(config);
    let out = out.unwrap_or_else(|| {
        let stem = config.file_stem().map(|s| s.to_string_lossy().into_owned());
        PathBuf::from("runs").join(stem.unwrap_or_else(|| "compress".into()))
    });
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;

    let baseline = out.join("0-baseline");
    copy_run(&base.join(&pipeline.source), &baseline)?;
    let mut dirs = vec![("baseline".to_string(), baseline)];
    for (i, table) in pipeline.step.iter().enumerate() {
        let kind = table
            .get("kind")
            .and_then(|k| k.as_str())
            .ok_or_else(|| {
                anyhow!(
                    "pipeline {}: step {} needs kind = \"distill\", \"prune\" or \"qat\"",
                    config.display(),
                    i + 1
                )
            })?
            .to_string();
        let previous = dirs.last().expect("the baseline").1.clone();
        let dir = out.join(format!("{}-{kind}", i + 1));
        println!("\n== step {}: {kind} from {} ==", i + 1, previous.display());
        check_step_unchanged(&dir, table, &previous)?;
        if !dir.join("report.json").exists() {
            run_step(&kind, table, base, &previous, &dir).with_context(|| {
                format!("pipeline {}, step {} ({kind})", config.display(), i + 1)
            })?;
        } else {
            println!("already trained in {}", dir.display());
        }
        dirs.push((kind, dir));
    }

    let mut rows = Vec::with_capacity(dirs.len());
    for (k, (step, dir)) in dirs.iter().enumerate() {
        let ends = k == 0 || k + 1 == dirs.len();
        rows.push(measure(step, dir, &pipeline.board, ends)?);
    }
    let report = CompressReport {
        source: pipeline.source.clone(),
        board: pipeline.board.clone(),
        rows,
    };
    RunDir(out.clone()).write_json("compress.json", &report)?;
    print_table(&report);
    println!("wrote {}", out.join("compress.json").display());
    Ok(())
}

/// Refuses to reuse a step folder made by another step or from another source (a pipeline edited
/// since it ran); records the step in a new folder.
fn check_step_unchanged(dir: &Path, table: &toml::Table, previous: &Path) -> Result<()> {
    let recorded = RunDir(dir.to_path_buf());
    let step = serde_json::json!({ "step": table, "from": previous });
    let file = recorded.file("step.json");
    if file.exists() {
        let before: serde_json::Value = read_json(&file)?;
        if before != step {
            bail!(
                "{} was made by another step ({}); remove it, or give the pipeline another --out",
                dir.display(),
                file.display()
            );
        }
        return Ok(());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    recorded.write_json("step.json", &step)
}

/// Copies the files of a finished run that later steps read.
fn copy_run(source: &Path, dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    for file in [
        "experiment.json",
        "model.json",
        "model.safetensors",
        "normalization.json",
        "report.json",
    ] {
        let from = source.join(file);
        let bytes = std::fs::read(&from).with_context(|| {
            format!(
                "cannot read {} (the pipeline's source must be a finished run)",
                from.display()
            )
        })?;
        tinyfit_graph::write_atomic(&dest.join(file), &bytes)
            .with_context(|| format!("cannot write {}", dest.join(file).display()))?;
    }
    Ok(())
}

/// Runs one step from the run `previous` into `dir`.
fn run_step(
    kind: &str,
    table: &toml::Table,
    base: &Path,
    previous: &Path,
    dir: &Path,
) -> Result<()> {
    if kind == "distill" {
        let mut fields = table.clone();
        fields.remove("kind");
        let step: DistillStep = toml::Value::Table(fields)
            .try_into()
            .map_err(|e| anyhow!("{e}"))?;
        return distill(&step, base, previous, dir);
    }
    let mut argv: Vec<String> = vec![kind.to_string(), previous.display().to_string()];
    for (key, value) in table.iter().filter(|(k, _)| k.as_str() != "kind") {
        let flag = format!("--{}", key.replace('_', "-"));
        match value {
            toml::Value::Boolean(true) => argv.push(flag),
            toml::Value::Boolean(false) => {}
            toml::Value::String(s) => argv.extend([flag, s.clone()]),
            toml::Value::Integer(_) | toml::Value::Float(_) => {
                argv.extend([flag, value.to_string()])
            }
            toml::Value::Array(items) => {
                let items: Vec<String> = items
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                    .collect();
                argv.extend([flag, items.join(",")]);
            }
            other => bail!("key '{key}': {other} is not a flag value"),
        }
    }
    argv.extend(["--out".into(), dir.display().to_string(), "--resume".into()]);
    match StepCommand::try_parse_from(&argv).map_err(|e| anyhow!("{}", e.render()))? {
        StepCommand::Prune(args) => prune::run(&args),
        StepCommand::Qat(args) => qat::run(&args),
    }
}

/// Trains the student of `step` on the soft targets of the run `teacher` into `dir`.
fn distill(step: &DistillStep, base: &Path, teacher: &Path, dir: &Path) -> Result<()> {
    let source = RunDir(teacher.to_path_buf()).load()?;
    let graph_path = base.join(&step.student);
    let graph = Graph::load(&graph_path)?;
    let defaults = tinyfit_train::DistillConfig::default();
    let mut exp = source.experiment.clone();
    exp.model.graph = graph_path;
    exp.weight_bits = Precision::new();
    if let Some(epochs) = step.epochs {
        exp.train.epochs = epochs;
    }
    exp.distill = Some(DistillSection {
        teacher: teacher.to_path_buf(),
        temperature: step.temperature.unwrap_or(defaults.temperature),
        alpha: step.alpha.unwrap_or(defaults.alpha),
        hints: step.hints.clone(),
    });
    let splits = source.splits()?;
    train_run(&exp, &graph, &splits, dir, true, None, None)?;
    Ok(())
}

/// Quantises and deploys the run in `dir` (unless done before) and reads its figures.
fn measure(step: &str, dir: &Path, board: &str, with_test: bool) -> Result<Row> {
    let package = dir.join("package");
    if !package.join("deploy.json").exists() {
        println!("\n== measuring {} on {board} ==", dir.display());
        quantize::run(&quantize::QuantizeArgs {
            run: dir.to_path_buf(),
            calibration: 1024,
            precision: quantize::PrecisionArgs {
                weights: None,
                int8_layers: Vec::new(),
                flash_budget: None,
            },
        })?;
        deploy::run(&deploy::DeployArgs {
            model: dir.to_path_buf(),
            board: board.to_string(),
            out: package.clone(),
            dense_filters: false,
            routed: false,
            slicing: false,
            verify: false,
        })?;
    }
    let run = RunDir(dir.to_path_buf());
    let report: Report = run.read_json("report.json")?;
    let quant: serde_json::Value = run.read_json("quantization.json")?;
    let deployed: serde_json::Value = read_json(&package.join("deploy.json"))?;
    let graph = Graph::load(&run.file("model.json"))?;
    let weights = Weights::load(&run.file("model.safetensors"))?;
    let number = |v: &serde_json::Value, what: &str| -> Result<f64> {
        v.as_f64()
            .ok_or_else(|| anyhow!("{}: no {what}", dir.display()))
    };
    Ok(Row {
        step: step.to_string(),
        run: dir.to_path_buf(),
        params: report.params,
        nonzero_params: report.params - zero_weights(&graph, &weights),
        macs: report.macs,
        weight_bits: serde_json::from_value(quant["weight_bits"].clone()).unwrap_or_default(),
        validation_float: number(
            &quant["validation"]["float_accuracy"],
            "validation accuracy",
        )?,
        validation_int8: number(&quant["validation"]["int8_accuracy"], "validation accuracy")?,
        test: if with_test {
            Some((
                number(&quant["test"]["float_accuracy"], "test accuracy")?,
                number(&quant["test"]["int8_accuracy"], "test accuracy")?,
            ))
        } else {
            None
        },
        const_bytes: deployed["const_bytes"].as_u64().unwrap_or(0),
        flash_bytes: deployed["elf"]["flash"].as_u64(),
        peak_sram_bytes: deployed["peak_sram_bytes"].as_u64(),
        latency_ms: deployed["estimate"]["latency_ms"].as_f64(),
    })
}

/// Weights of convolutions and linear layers that are exactly zero.
fn zero_weights(graph: &Graph, weights: &Weights) -> u64 {
    graph
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Conv1d(_) | Op::Conv2d(_) | Op::Linear(_)))
        .filter_map(|n| weights.tensors.get(&format!("{}.weight", n.name)))
        .map(|t| t.data.iter().filter(|&&w| w == 0.0).count() as u64)
        .sum()
}

fn print_table(report: &CompressReport) {
    println!(
        "\nevery step quantised to int8 and deployed on {}; accuracy on validation (test for the source and the final model)",
        report.board
    );
    println!(
        "{:<3} {:<9} {:>8} {:>8} {:>10} {:>10} {:>9} {:>9} {:>9} {:>10} {:>9}  weights",
        "#",
        "step",
        "params",
        "nonzero",
        "MACs",
        "val float",
        "val int8",
        "flash B",
        "SRAM B",
        "latency",
        "test int8"
    );
    let opt = |v: Option<u64>| v.map_or("-".into(), thousands);
    for (i, r) in report.rows.iter().enumerate() {
        let bits: Vec<String> = r
            .weight_bits
            .iter()
            .map(|(l, b)| format!("{l}:{b:?}"))
            .collect();
        println!(
            "{:<3} {:<9} {:>8} {:>8} {:>10} {:>9.2}% {:>8.2}% {:>9} {:>9} {:>10} {:>9}  {}",
            i,
            r.step,
            thousands(r.params),
            thousands(r.nonzero_params),
            thousands(r.macs),
            100.0 * r.validation_float,
            100.0 * r.validation_int8,
            opt(r.flash_bytes),
            opt(r.peak_sram_bytes),
            r.latency_ms.map_or("-".into(), |l| format!("{l:.1} ms")),
            r.test
                .map_or("-".into(), |t| format!("{:.2}%", 100.0 * t.1)),
            if bits.is_empty() {
                "int8".into()
            } else {
                bits.join(" ")
            }
        );
    }
}
