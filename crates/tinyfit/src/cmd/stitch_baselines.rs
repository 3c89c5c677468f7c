//! Independently trained models of intermediate size beside an SN-Net (`stitch.baselines`):
//! each measured as the routes are — float accuracy from its own run, int8 accuracy after
//! post-training quantisation, flash, arena and the board's latency estimate — so that the
//! stitched frontier can be compared with them at their budgets.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use tinyfit_compress::{PtqConfig, quantize};
use tinyfit_data::Splits;
use tinyfit_deploy::boards::Board;

use crate::cmd::stitch_int8::{Int8Route, int8_route, latency_ms};
use crate::run_dir::{RunDir, TrainedRun};

/// An independently trained model and how the stitched frontier fares at its budget.
#[derive(Serialize)]
pub struct BaselineReport {
    /// Its run folder's name.
    pub run: String,
    pub params: u64,
    pub macs: u64,
    /// Float accuracies, from its run's `report.json`.
    pub validation_accuracy: f64,
    pub test_accuracy: f64,
    /// After post-training quantisation.
    pub int8: Int8Route,
    /// The frontier route (validation) that is most accurate within its MACs, if any.
    pub frontier_route: Option<String>,
    /// That route's float test accuracy minus the baseline's.
    pub frontier_test_gain: Option<f64>,
}

/// The figures of a finished training run that the comparison reads.
#[derive(Deserialize)]
struct RunFigures {
    validation: Accuracy,
    test: Accuracy,
}

#[derive(Deserialize)]
struct Accuracy {
    accuracy: f64,
}

/// Measures the runs `paths`, which must share the anchors' data (`like`); the board's
/// latency estimate where it has an emulated core (packages written under `scratch`).
pub fn measure(
    paths: &[PathBuf],
    like: &TrainedRun,
    splits: &Splits,
    board: Option<&Board>,
    scratch: &std::path::Path,
) -> Result<Vec<BaselineReport>> {
    let hidden = ProgressBar::hidden();
    let mut out = Vec::with_capacity(paths.len());
    for path in paths {
        let run = RunDir(path.clone());
        let trained = run
            .load()
            .with_context(|| format!("loading the baseline {}", path.display()))?;
        if !trained.experiment.data.same_data(&like.experiment.data) || trained.norm != like.norm {
            bail!(
                "stitch.baselines: the run {} was trained on other data than the anchors (its \
                 [data] or normalisation differs); baselines must share the anchors' data",
                path.display()
            );
        }
        let figures: RunFigures = run.read_json("report.json")?;
        let analysis = trained.graph.analyze()?;
        let quant = quantize(
            &trained.graph,
            &trained.weights,
            &splits.train,
            PtqConfig::default(),
        )
        .with_context(|| format!("post-training quantisation of {}", path.display()))?;
        let program = tinyfit_deploy::lower(&quant)?;
        let mut int8 = int8_route(&program, splits, &hidden)?;
        if let Some((board, core)) = board.and_then(|b| b.core.emulated().map(|c| (b, c))) {
            int8.latency_ms = Some(latency_ms(&program, board, core, scratch)?);
        }
        out.push(BaselineReport {
            run: path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
            params: analysis.params(),
            macs: analysis.macs(),
            validation_accuracy: figures.validation.accuracy,
            test_accuracy: figures.test.accuracy,
            int8,
            frontier_route: None,
            frontier_test_gain: None,
        });
    }
    if scratch.exists() {
        std::fs::remove_dir_all(scratch)
            .with_context(|| format!("cannot remove {}", scratch.display()))?;
    }
    Ok(out)
}
