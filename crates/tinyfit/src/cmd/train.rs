//! `tinyfit train --config FILE`: train a model and report validation and test figures.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use tinyfit_data::Splits;
use tinyfit_graph::{Graph, Weights};
use tinyfit_train::{
    Distillation, GraphModel, HintConfig, Masking, TrainOptions, cpu, evaluate, train_hints,
};

use crate::experiment::{DistillSection, Experiment};
use crate::progress::{HintProgress, TrainProgress};
use crate::report;
use crate::run_dir::{Report, RunDir};

/// Runs the experiment in `config`, writing the run folder `out` (default `runs/<config name>`);
/// with several `seeds`, one run per seed in `out/seed-N` and their spread in `out/seeds.json`.
pub fn run(
    config: &Path,
    out: Option<PathBuf>,
    data: Option<PathBuf>,
    resume: bool,
    seeds: &[u64],
) -> Result<()> {
    let mut exp = Experiment::load(config)?;
    if let Some(data) = data {
        exp.data.set_path(&data);
    }
    if let [seed] = seeds {
        exp.train.seed = *seed;
    }
    let out = out.unwrap_or_else(|| {
        let stem = config.file_stem().map(|s| s.to_string_lossy().into_owned());
        PathBuf::from("runs").join(stem.unwrap_or_else(|| "run".into()))
    });
    let graph = Graph::load(&exp.model.graph)?;
    let analysis = graph.analyze()?;

    let splits = exp.splits(None)?;
    let sizes = splits.sizes();
    println!(
        "data: {} classes, samples {:?}; train {} ({} subjects), validation {} ({} subjects), test {} ({} subjects)",
        splits.train.class_names.len(),
        splits.train.sample_shape,
        sizes.train,
        splits.train.group_ids().len(),
        sizes.val,
        splits.val.group_ids().len(),
        sizes.test,
        splits.test.group_ids().len(),
    );
    println!(
        "model: {} — {} parameters, {} MACs",
        graph.name,
        report::thousands(analysis.params()),
        report::thousands(analysis.macs())
    );

    if seeds.len() < 2 {
        train_run(&exp, &graph, &splits, &out, resume, None, None)?;
        return Ok(());
    }
    let mut runs = Vec::with_capacity(seeds.len());
    for &seed in seeds {
        println!("\n== seed {seed} ==");
        exp.train.seed = seed;
        let dir = out.join(format!("seed-{seed}"));
        if dir.join("report.json").exists() {
            println!("already trained in {}", dir.display());
            runs.push((seed, RunDir(dir).read_json::<Report>("report.json")?));
        } else {
            runs.push((
                seed,
                train_run(&exp, &graph, &splits, &dir, resume, None, None)?,
            ));
        }
    }
    let spread = SeedSpread::new(&runs);
    RunDir(out.clone()).write_json("seeds.json", &spread)?;
    spread.print();
    Ok(())
}

/// Accuracy of one split over several seeds.
#[derive(Debug, serde::Serialize)]
struct Spread {
    per_seed: Vec<f64>,
    mean: f64,
    /// Sample standard deviation.
    sd: f64,
    min: f64,
    max: f64,
}

impl Spread {
    fn new(values: Vec<f64>) -> Self {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        Spread {
            mean,
            sd: var.sqrt(),
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            per_seed: values,
        }
    }

    fn line(&self) -> String {
        let each: Vec<String> = self
            .per_seed
            .iter()
            .map(|v| format!("{:.2}", 100.0 * v))
            .collect();
        format!(
            "mean {:.2} %, sd {:.2}, range {:.2}–{:.2} ({})",
            100.0 * self.mean,
            100.0 * self.sd,
            100.0 * self.min,
            100.0 * self.max,
            each.join(" / ")
        )
    }
}

/// What `seeds.json` records: validation and test accuracy of each seed's run.
#[derive(Debug, serde::Serialize)]
struct SeedSpread {
    seeds: Vec<u64>,
    validation_accuracy: Spread,
    test_accuracy: Spread,
}

impl SeedSpread {
    fn new(runs: &[(u64, Report)]) -> Self {
        SeedSpread {
            seeds: runs.iter().map(|r| r.0).collect(),
            validation_accuracy: Spread::new(
                runs.iter().map(|r| r.1.validation.accuracy).collect(),
            ),
            test_accuracy: Spread::new(runs.iter().map(|r| r.1.test.accuracy).collect()),
        }
    }

    fn print(&self) {
        let seeds: Vec<String> = self.seeds.iter().map(u64::to_string).collect();
        println!("\nover seeds {}:", seeds.join(", "));
        println!("  validation accuracy: {}", self.validation_accuracy.line());
        println!("  test accuracy:       {}", self.test_accuracy.line());
    }
}

/// How a command that starts from a trained run (pruning, QAT) fine-tunes it.
#[derive(clap::Args)]
pub struct FineTuneArgs {
    /// Fine-tuning epochs (default: the run's).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Fine-tuning learning rate as a fraction of the run's.
    #[arg(long, default_value_t = 0.1)]
    pub lr_scale: f64,
    /// Fine-tuning seed (default: the run's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Output run folder (default: RUN-<step> beside RUN).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue an interrupted fine-tuning in the output folder.
    #[arg(long)]
    pub resume: bool,
}

impl FineTuneArgs {
    /// The run's experiment with the epochs, seed and learning rate asked for.
    pub fn experiment(&self, exp: &Experiment) -> Experiment {
        let mut exp = exp.clone();
        if let Some(epochs) = self.epochs {
            exp.train.epochs = epochs;
        }
        if let Some(seed) = self.seed {
            exp.train.seed = seed;
        }
        let lr = exp.train.optimizer.lr() * self.lr_scale;
        exp.train.optimizer = exp.train.optimizer.clone().with_lr(lr);
        exp
    }

    /// The output folder: `--out`, or `RUN-<step>` beside the source run `run`.
    pub fn out_dir(&self, run: &Path, step: &str) -> Result<PathBuf> {
        let out = self.out.clone().unwrap_or_else(|| {
            let name = run.file_name().map(|n| n.to_string_lossy().into_owned());
            run.with_file_name(format!("{}-{step}", name.unwrap_or_else(|| "run".into())))
        });
        if out == run {
            bail!("the {step} run needs its own folder; --out names the source run itself");
        }
        Ok(out)
    }
}

/// Trains `graph` as `exp` says (from `initial` weights, or PyTorch's initialisation; holding
/// the weights `masking` drops at zero) into the run folder `out`, writes its files and
/// report, and prints validation and test figures.
pub fn train_run(
    exp: &Experiment,
    graph: &Graph,
    splits: &Splits,
    out: &Path,
    resume: bool,
    initial: Option<&Weights>,
    masking: Option<&dyn Masking>,
) -> Result<Report> {
    let analysis = graph.analyze()?;
    let sizes = splits.sizes();
    let run = RunDir(out.to_path_buf());
    if tinyfit_train::has_checkpoint(out) {
        if !resume {
            bail!(
                "{} already holds a training run; pass --resume to continue it, or choose another --out",
                out.display()
            );
        }
        let saved: Experiment = run.read_json("experiment.json")?;
        if saved != *exp {
            bail!(
                "{} was started with another experiment config (see its experiment.json); resume with the same config",
                out.display()
            );
        }
    } else {
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
        run.write_json("experiment.json", exp)?;
        run.write_json("model.json", graph)?;
        run.write_json("normalization.json", &splits.norm)?;
    }

    if !exp.weight_bits.is_empty() {
        let layers: Vec<String> = exp
            .weight_bits
            .iter()
            .map(|(layer, bits)| format!("{layer} {bits:?}"))
            .collect();
        println!(
            "quantisation-aware training: weights of {} on their grids in the forward pass",
            layers.join(", ")
        );
    }
    let started = Instant::now();
    let mut progress = TrainProgress::new();
    let teacher = match &exp.distill {
        Some(d) => Some(load_teacher(d, exp)?),
        None => None,
    };
    let hinted = match (
        &teacher,
        exp.distill.as_ref().and_then(|d| d.hints.as_ref()),
    ) {
        (Some(teacher), Some(hints)) => Some(hint_stage(
            exp, graph, &analysis, splits, &run, initial, teacher, hints,
        )?),
        _ => None,
    };
    let options = TrainOptions {
        initial: hinted.as_ref().or(initial),
        distillation: teacher
            .as_ref()
            .zip(exp.distill.as_ref())
            .map(|(t, d)| Distillation {
                teacher: t,
                config: d.settings(),
            }),
        masking,
        weight_bits: (!exp.weight_bits.is_empty()).then_some(&exp.weight_bits),
    };
    let outcome = tinyfit_train::train(
        graph,
        splits,
        &exp.train,
        out,
        resume,
        options,
        &mut progress,
    )?;
    let train_seconds = started.elapsed().as_secs_f64();
    outcome.best.save(&run.file("model.safetensors"))?;

    let device = cpu();
    let model = GraphModel::new(graph, &outcome.best, &device)?;
    let validation = evaluate(&model, &splits.val, exp.train.eval_batch_size, &device);
    let test = evaluate(&model, &splits.test, exp.train.eval_batch_size, &device);
    let rep = Report {
        split_sizes: sizes,
        classes: splits.train.class_names.clone(),
        params: analysis.params(),
        macs: analysis.macs(),
        history: outcome.history,
        best_epoch: outcome.best_epoch,
        stopped_early: outcome.stopped_early,
        validation,
        test,
        train_seconds,
    };
    run.write_json("report.json", &rep)?;

    if rep.stopped_early {
        println!(
            "stopped early after epoch {} (no validation gain)",
            rep.history.len()
        );
    }
    println!(
        "selected epoch {} by validation accuracy; trained in {:.1}s",
        rep.best_epoch + 1,
        train_seconds
    );
    report::print_metrics("validation", &rep.validation);
    report::print_metrics("test", &rep.test);
    let counts = splits.train.class_counts();
    let majority = (0..counts.len()).max_by_key(|&c| counts[c]).unwrap_or(0);
    let hits = splits
        .test
        .y
        .iter()
        .filter(|&&y| y as usize == majority)
        .count();
    println!(
        "majority-class baseline ('{}', the most frequent in training): {:.2}% on test",
        splits.train.class_names[majority],
        100.0 * hits as f64 / splits.test.len().max(1) as f64
    );
    report::print_confusion(&rep.classes, &rep.test.confusion);
    println!("run written to {}", out.display());
    Ok(rep)
}

/// FitNets' first stage, or its weights from an earlier run of it in `run`
/// (`hints.safetensors`, written atomically when the stage ends, with `hints.json`).
#[allow(clippy::too_many_arguments)]
fn hint_stage(
    exp: &Experiment,
    graph: &Graph,
    analysis: &tinyfit_graph::Analysis,
    splits: &Splits,
    run: &RunDir,
    initial: Option<&Weights>,
    teacher: &GraphModel,
    hints: &HintConfig,
) -> Result<Weights> {
    let saved = run.file("hints.safetensors");
    if saved.exists() {
        println!(
            "FitNets hints: stage one done before, weights from {}",
            saved.display()
        );
        return Ok(Weights::load(&saved)?);
    }
    let start = match initial {
        Some(w) => w.clone(),
        None => tinyfit_train::init::pytorch_default(graph, analysis, exp.train.seed),
    };
    println!(
        "FitNets hints: {} epochs training the student up to '{}' to predict the teacher's '{}'",
        hints.epochs, hints.student, hints.teacher
    );
    let outcome = train_hints(
        graph,
        &start,
        teacher,
        hints,
        &splits.train,
        &exp.train,
        &mut HintProgress::default(),
    )?;
    let losses: Vec<String> = outcome.losses.iter().map(|l| format!("{l:.4}")).collect();
    println!("hint loss by epoch: {}", losses.join(", "));
    run.write_json("hints.json", &outcome.losses)?;
    outcome.weights.save(&saved)?;
    Ok(outcome.weights)
}

/// The teacher run a `[distill]` section names, checked to have been trained on the same data
/// (so that it reads the student's inputs as its own), as a model on the CPU.
fn load_teacher(distill: &DistillSection, exp: &Experiment) -> Result<GraphModel> {
    let run = RunDir(distill.teacher.clone());
    let teacher = run
        .load()
        .with_context(|| format!("loading the teacher run {}", distill.teacher.display()))?;
    // The same folder may be spelt differently (relative to another config, or absolute).
    let canonical = |d: &tinyfit_data::DataConfig| {
        let mut d = d.clone();
        if let Ok(path) = std::fs::canonicalize(d.path()) {
            d.set_path(&path);
        }
        d
    };
    if canonical(&teacher.experiment.data) != canonical(&exp.data) {
        bail!(
            "the teacher {} was trained on other data (see its experiment.json); distillation needs the student's [data]",
            distill.teacher.display()
        );
    }
    let params = teacher.graph.analyze()?.params();
    println!(
        "distilling from {} ({} parameters), T = {}, α = {}",
        distill.teacher.display(),
        report::thousands(params),
        distill.temperature,
        distill.alpha
    );
    Ok(GraphModel::new(&teacher.graph, &teacher.weights, &cpu())?)
}
