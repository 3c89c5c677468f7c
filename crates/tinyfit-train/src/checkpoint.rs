//! Per-epoch checkpoints that survive a kill at any moment.
//!
//! Each checkpoint is a folder `checkpoints/epoch-NNNN` holding the module and optimiser state
//! (burnpack, which keeps parameter ids so the optimiser state reattaches) and `state.json`.
//! It is written under a temporary name and renamed into place, so a folder with a final name
//! is always complete; older checkpoints are removed only after a newer one is in place.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tinyfit_graph::Graph;

use crate::config::TrainConfig;
use crate::trainer::EpochRecord;

/// Everything besides tensors that a resumed run needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// The training configuration the run started with.
    pub config: TrainConfig,
    /// The graph being trained.
    pub graph: Graph,
    /// Per-epoch records so far.
    pub history: Vec<EpochRecord>,
    /// 0-based epoch of the best validation result, if any.
    pub best_epoch: Option<usize>,
    /// Epochs since the last improvement.
    pub stale_epochs: usize,
}

impl TrainState {
    /// Completed epochs.
    pub fn epochs_done(&self) -> usize {
        self.history.len()
    }
}

const DIR: &str = "checkpoints";

/// Paths of one checkpoint's files.
pub struct CheckpointFiles {
    /// burnpack of the module.
    pub model: PathBuf,
    /// burnpack of the optimiser.
    pub optimizer: PathBuf,
    /// JSON of [`TrainState`].
    pub state: PathBuf,
}

impl CheckpointFiles {
    fn in_dir(dir: &Path) -> Self {
        CheckpointFiles {
            model: dir.join("model.bpk"),
            optimizer: dir.join("optimizer.bpk"),
            state: dir.join("state.json"),
        }
    }
}

/// Whether `run_dir` holds a complete checkpoint (a run that `--resume` would continue).
pub fn exists(run_dir: &Path) -> bool {
    completed(run_dir).is_ok_and(|c| !c.is_empty())
}

/// The newest complete checkpoint under `run_dir`, if any.
pub fn latest(run_dir: &Path) -> std::io::Result<Option<CheckpointFiles>> {
    Ok(completed(run_dir)?
        .pop()
        .map(|d| CheckpointFiles::in_dir(&d)))
}

fn completed(run_dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let dir = run_dir.join(DIR);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("epoch-") && !n.ends_with(".tmp"))
        })
        .collect();
    found.sort();
    Ok(found)
}

/// Writes a checkpoint for `epochs_done` epochs: `write` fills the files of a temporary folder,
/// which is then renamed into place; older checkpoints are removed afterwards.
pub fn save(
    run_dir: &Path,
    epochs_done: usize,
    write: impl FnOnce(&CheckpointFiles) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = run_dir.join(DIR);
    std::fs::create_dir_all(&dir)?;
    let final_dir = dir.join(format!("epoch-{epochs_done:04}"));
    let tmp_dir = dir.join(format!("epoch-{epochs_done:04}.tmp"));
    if tmp_dir.exists() {
        std::fs::remove_dir_all(&tmp_dir)?;
    }
    std::fs::create_dir(&tmp_dir)?;
    write(&CheckpointFiles::in_dir(&tmp_dir))?;
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir)?;
    }
    std::fs::rename(&tmp_dir, &final_dir)?;
    for old in completed(run_dir)? {
        if old != final_dir {
            std::fs::remove_dir_all(old)?;
        }
    }
    Ok(())
}
