//! `tinyfit eval RUN`: reload a run's model and recompute its figures.

use std::path::Path;

use anyhow::{Result, bail};
use tinyfit_data::ChannelNorm;
use tinyfit_graph::{Graph, Weights};
use tinyfit_train::{GraphModel, cpu, evaluate};

use crate::experiment::Experiment;
use crate::report;
use crate::run_dir::{Report, RunDir};

/// Which split to evaluate.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Split {
    /// Training split.
    Train,
    /// Validation split.
    Val,
    /// Test split.
    Test,
}

/// Evaluates the run in `dir` on `split` and compares with the figure recorded at training.
pub fn run(dir: &Path, split: Split) -> Result<()> {
    let run = RunDir(dir.to_path_buf());
    if !dir.is_dir() {
        bail!("run folder not found: {}", dir.display());
    }
    let exp: Experiment = run.read_json("experiment.json")?;
    let norm: ChannelNorm = run.read_json("normalization.json")?;
    let graph = Graph::load(&run.file("model.json"))?;
    let weights_path = run.file("model.safetensors");
    let weights = Weights::load(&weights_path)?;
    weights.check(&graph, &graph.analyze()?, &weights_path)?;

    let splits = exp.data.load(Some(norm))?;
    let data = match split {
        Split::Train => &splits.train,
        Split::Val => &splits.val,
        Split::Test => &splits.test,
    };
    let device = cpu();
    let model = GraphModel::new(&graph, &weights, &device)?;
    let metrics = evaluate(&model, data, exp.train.eval_batch_size, &device);
    let name = format!("{split:?}").to_lowercase();
    report::print_metrics(&name, &metrics);
    report::print_confusion(&data.class_names, &metrics.confusion);

    if let Ok(recorded) = run.read_json::<Report>("report.json") {
        let want = match split {
            Split::Train => None,
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
