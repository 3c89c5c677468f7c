//! `tinyfit eval RUN`: reload a run's model and recompute its figures.

use std::path::Path;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use tinyfit_data::Dataset;
use tinyfit_deploy::Program;
use tinyfit_train::{GraphModel, Metrics, MetricsBuilder, cpu, evaluate};

use crate::experiment::Experiment;
use crate::report;
use crate::run_dir::{Report, RunDir};

/// Which split to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Split {
    /// Training split.
    Train,
    /// Validation split.
    Val,
    /// Test split.
    Test,
    /// Every sample of the dataset (for models trained elsewhere, e.g. on a canonical test set).
    All,
}

/// Evaluates the run in `dir` on `split` and compares with the figure recorded at training.
pub fn run(dir: &Path, split: Split) -> Result<()> {
    let run = RunDir(dir.to_path_buf());
    let trained = run.load()?;
    let splits = trained.splits()?;
    let data = match split {
        Split::Train => &splits.train,
        Split::Val => &splits.val,
        Split::Test => &splits.test,
        Split::All => {
            bail!("--split all is for `--model X.tflite`; a run is evaluated on its own splits")
        }
    };
    let device = cpu();
    let model = GraphModel::new(&trained.graph, &trained.weights, &device)?;
    let metrics = evaluate(
        &model,
        data,
        trained.experiment.train.eval_batch_size,
        &device,
    );
    let name = format!("{split:?}").to_lowercase();
    report::print_metrics(&name, &metrics);
    report::print_confusion(&data.class_names, &metrics.confusion);

    if let Ok(recorded) = run.read_json::<Report>("report.json") {
        let want = match split {
            Split::Train | Split::All => None,
            Split::Val => Some(&recorded.validation),
            Split::Test => Some(&recorded.test),
        };
        if let Some(want) = want {
            if want.confusion == metrics.confusion {
                println!("matches the figures recorded at training (report.json)");
            } else {
                bail!(
                    "differs from report.json: recorded accuracy {:.4}%, now {:.4}%",
                    100.0 * want.accuracy,
                    100.0 * metrics.accuracy
                );
            }
        }
    }
    Ok(())
}

/// Evaluates an int8 `.tflite` model with tinyfit's runtime on a dataset (a config with a
/// `[data]` section): float features are quantised with the model's input parameters, the class
/// is the arg-max of the int8 output.
pub fn tflite(model: &Path, data: &Path, split: Split) -> Result<()> {
    let bytes = std::fs::read(model).with_context(|| format!("cannot read {}", model.display()))?;
    let quant =
        tinyfit_deploy::tflite::import(&bytes).with_context(|| format!("{}", model.display()))?;
    let program = tinyfit_deploy::lower(&quant).with_context(|| format!("{}", model.display()))?;
    let config = Experiment::load_data(data)?;
    let (dataset, held_out) = config.load_dataset()?;
    let in_split = |groups: &[u32]| dataset.filter_groups(|g| groups.contains(&g));
    let samples: Dataset = match split {
        Split::All => dataset.clone(),
        Split::Val => in_split(&held_out.validation),
        Split::Test => in_split(&held_out.test),
        Split::Train => dataset
            .filter_groups(|g| !held_out.validation.contains(&g) && !held_out.test.contains(&g)),
    };
    let input_shape = &quant.graph.inputs[0].shape;
    if *input_shape != samples.sample_shape {
        bail!(
            "{} takes inputs of shape {:?} (channels first), {} gives samples of shape {:?}",
            model.display(),
            input_shape,
            data.display(),
            samples.sample_shape
        );
    }
    let classes = samples.class_names.len();
    let outputs = program
        .output(0)
        .context("the model has no output")?
        .shape
        .len();
    if outputs != classes {
        bail!(
            "{} has {outputs} outputs, the dataset {classes} classes ({})",
            model.display(),
            samples.class_names.join(", ")
        );
    }
    let bar = ProgressBar::new(samples.len() as u64).with_style(
        ProgressStyle::with_template("{prefix} {bar:30} {pos}/{len} [{elapsed}<{eta}]")
            .expect("valid template"),
    );
    bar.set_prefix("int8 inference");
    let m = int8_metrics(&program, &samples, &bar)?;
    bar.finish_and_clear();
    let name = format!("{split:?}").to_lowercase();
    println!(
        "{} on {} ({name}): int8 accuracy {:.2}% ({} samples), macro-F1 {:.4}",
        model.display(),
        config.kind(),
        100.0 * m.accuracy,
        m.samples,
        m.macro_f1
    );
    report::print_confusion(&samples.class_names, &m.confusion);
    Ok(())
}

/// Accuracy of an int8 program on `data`: float samples are quantised with the model's input
/// parameters, the class is the arg-max of the int8 output. Ticks `progress` once per sample.
pub fn int8_metrics(program: &Program, data: &Dataset, progress: &ProgressBar) -> Result<Metrics> {
    let classes = data.class_names.len();
    let mut metrics = MetricsBuilder::new(classes);
    let mut arena = vec![0i8; program.memory().arena_bytes];
    for i in 0..data.len() {
        let x = program.quantize_input(0, data.sample(i), &data.sample_shape)?;
        let outputs = program.run_in(&mut arena, &[&x])?;
        let (out, y) = program
            .scores(&outputs)
            .context("the model has no output")?;
        if y.len() != classes {
            bail!(
                "the model has {} outputs, the dataset {classes} classes",
                y.len()
            );
        }
        let real: Vec<f32> = y
            .iter()
            .map(|&q| out.scale * (q as i32 - out.zero_point) as f32)
            .collect();
        metrics.add(&real, &[data.y[i]]);
        progress.inc(1);
    }
    Ok(metrics.finish())
}
