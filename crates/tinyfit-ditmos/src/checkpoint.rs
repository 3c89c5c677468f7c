//! A DiTMoS system's weights on disk: `selector.safetensors` and `classifier-{i}.safetensors`
//! in one folder, written under a temporary name and renamed into place, so that a folder with
//! its final name is always complete. Every phase re-creates its optimiser each epoch, so the
//! weights (batch-norm statistics included) are all a resumed run needs.

use std::path::Path;

use tinyfit_graph::Weights;

use crate::model::Ditmos;

/// The weights of a saved system: the selector's and each classifier's.
pub struct SavedWeights {
    /// The selector's.
    pub selector: Weights,
    /// Each classifier's.
    pub classifiers: Vec<Weights>,
}

/// Saves `model` into the folder `dir`, replacing it whole.
pub fn save(model: &Ditmos, dir: &Path) -> std::io::Result<()> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "weights".into());
    let tmp = dir.with_file_name(format!(".{name}.partial"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir_all(&tmp)?;
    let io = |e: tinyfit_graph::GraphError| std::io::Error::other(e.to_string());
    model
        .selector
        .weights()
        .save(&tmp.join("selector.safetensors"))
        .map_err(io)?;
    for (i, c) in model.classifiers.iter().enumerate() {
        c.weights()
            .save(&tmp.join(format!("classifier-{i}.safetensors")))
            .map_err(io)?;
    }
    let old = previous(dir);
    if dir.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old)?;
        }
        std::fs::rename(dir, &old)?;
    }
    std::fs::rename(&tmp, dir)?;
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    Ok(())
}

/// Whether `dir` (or the previous copy a kill during [`save`] left) holds saved weights.
pub fn exists(dir: &Path) -> bool {
    dir.is_dir() || previous(dir).is_dir()
}

/// The folder a save in progress moved the previous weights to.
fn previous(dir: &Path) -> std::path::PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "weights".into());
    dir.with_file_name(format!(".{name}.old"))
}

/// Loads the `m` classifiers and the selector saved in `dir` (or in the previous copy, when a
/// kill interrupted [`save`] between its two renames).
pub fn load(dir: &Path, m: usize) -> Result<SavedWeights, tinyfit_graph::GraphError> {
    let prev = previous(dir);
    let dir = if dir.is_dir() { dir } else { prev.as_path() };
    Ok(SavedWeights {
        selector: Weights::load(&dir.join("selector.safetensors"))?,
        classifiers: (0..m)
            .map(|i| Weights::load(&dir.join(format!("classifier-{i}.safetensors"))))
            .collect::<Result<_, _>>()?,
    })
}
