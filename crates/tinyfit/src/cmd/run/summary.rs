//! `summary.json`: every figure `tinyfit run` reports, read from the stages' own outputs into
//! one schema ([`Summary`]); `report.html` is rendered from it alone. The schema is
//! `docs/summary.schema.json` (generated from these types: `tinyfit run --schema`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::stage::StageRecord;

/// Version of this schema; bumped when a field changes meaning or goes.
pub const SCHEMA_VERSION: u32 = 1;

/// Everything one `tinyfit run` measured.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The dataset.
    pub dataset: DatasetInfo,
    /// The board every candidate is measured on.
    pub board: BoardInfo,
    /// The budget the winner must meet.
    pub budget: Budget,
    /// `quick` or `full`.
    pub preset: String,
    /// Every stage and how it ended.
    pub stages: Vec<StageRecord>,
    /// Every deployable model the methods produced, measured alike.
    pub candidates: Vec<Candidate>,
    /// The most accurate candidate (int8, validation) within the budget, if any.
    pub winner: Option<Winner>,
    /// Per-method details.
    pub details: Details,
}

/// The dataset.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatasetInfo {
    /// Reader (`hapt`, `speech_commands`, ...).
    pub kind: String,
    /// Folder.
    pub path: PathBuf,
    /// Class names in label order.
    pub classes: Vec<String>,
    /// Samples in training, validation and test.
    pub split_sizes: [u64; 3],
}

/// The board.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BoardInfo {
    /// Profile name.
    pub name: String,
    /// Full name.
    pub title: String,
    /// Core clock, MHz.
    pub clock_mhz: u32,
    /// SRAM of the board, bytes.
    pub sram_bytes: u64,
    /// Flash of the board, bytes.
    pub flash_bytes: u64,
    /// Active power the energy estimates use, mW.
    pub active_mw: f64,
}

/// The budget.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Estimated latency of one inference, ms.
    pub latency_ms: f64,
    /// Peak SRAM, bytes.
    pub sram_bytes: u64,
    /// Flash (code and constants), bytes.
    pub flash_bytes: u64,
}

/// Which family of methods produced a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// A model trained as configured (the reference points).
    Trained,
    /// Compression of the strong model: pruning, quantisation, distillation.
    TopDown,
    /// DiTMoS, SN-Net stitching, architecture search.
    BottomUp,
}

/// One deployable model, measured on the board.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Candidate {
    /// Its name in the table.
    pub name: String,
    /// The stage that made it.
    pub stage: String,
    /// The family of its method.
    pub family: Family,
    /// Trainable parameters.
    pub params: u64,
    /// MACs of one inference.
    pub macs: u64,
    /// Flash of its package built for the board (code and constants), bytes.
    pub flash_bytes: u64,
    /// Peak SRAM: static data and, where measured, the stack, bytes.
    pub peak_sram_bytes: u64,
    /// Estimated latency on the board, ms.
    pub latency_ms: f64,
    /// Estimated energy per inference: latency × the board's active power, µJ.
    pub energy_uj: f64,
    /// int8 validation accuracy (what the winner is chosen by).
    pub validation_accuracy: f64,
    /// int8 test accuracy.
    pub test_accuracy: f64,
    /// Union (oracle) test accuracy, for DiTMoS.
    pub union_accuracy: Option<f64>,
    /// Wall time of the training that made it, s.
    pub train_seconds: Option<f64>,
    /// What it exceeds of the budget (empty: it fits).
    pub over_budget: Vec<String>,
    /// Its run folder.
    pub run: PathBuf,
}

impl Candidate {
    /// Within the budget.
    pub fn fits(&self) -> bool {
        self.over_budget.is_empty()
    }
}

/// The winner and its artefacts.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Winner {
    /// Index into `candidates`.
    pub candidate: usize,
    /// Test confusion matrix (`[true][predicted]`) where the run recorded one.
    pub confusion: Option<Vec<Vec<u64>>>,
    /// Its C package.
    pub package: PathBuf,
    /// Its int8 `.tflite`, where the model exports to one.
    pub tflite: Option<PathBuf>,
    /// Test samples whose outputs the package gave in QEMU, and how many differed from
    /// tinyfit's runtime.
    pub qemu_samples: Option<u64>,
    /// Differing output bytes in QEMU.
    pub qemu_differing_bytes: Option<u64>,
}

/// Per-method details for the report.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Details {
    /// The compression pipeline's steps.
    pub compress: Vec<CompressStep>,
    /// DiTMoS routing and similarity.
    pub ditmos: Option<DitmosDetails>,
    /// Every SN-Net route.
    pub stitch: Vec<StitchRoute>,
    /// Every NAS trial.
    pub search: Vec<SearchTrial>,
}

/// A step of the compression pipeline.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompressStep {
    /// The step.
    pub step: String,
    /// Parameters.
    pub params: u64,
    /// MACs.
    pub macs: u64,
    /// int8 validation accuracy.
    pub validation_accuracy: f64,
    /// Flash, bytes.
    pub flash_bytes: Option<u64>,
    /// Estimated latency, ms.
    pub latency_ms: Option<f64>,
}

/// DiTMoS's routing on the test split.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DitmosDetails {
    /// Test samples that 0, 1, …, m classifiers get right.
    pub correct_histogram: Vec<u64>,
    /// Share of test samples routed to each classifier.
    pub routed_share: Vec<f64>,
    /// Each classifier's own test accuracy.
    pub classifier_accuracy: Vec<f64>,
    /// How often the selector picks a classifier that is right, where one is.
    pub routing_accuracy: f64,
    /// Linear CKA between the strong model (0) and each classifier, test split.
    pub cka: Vec<Vec<f64>>,
}

/// An SN-Net route.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StitchRoute {
    /// The route.
    pub route: String,
    /// MACs.
    pub macs: u64,
    /// int8 test accuracy.
    pub test_accuracy: f64,
    /// Estimated latency, ms.
    pub latency_ms: Option<f64>,
    /// On the validation frontier.
    pub frontier: bool,
}

/// A NAS trial.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchTrial {
    /// The architecture.
    pub architecture: String,
    /// Estimated latency, ms.
    pub latency_ms: f64,
    /// Proxy validation accuracy (absent: over the limits).
    pub validation_accuracy: Option<f64>,
}

/// Reads a JSON file of a stage.
pub fn read(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

/// The number at a dotted path of `v` (read from `file`), or an error naming both.
pub fn num(v: &Value, dotted: &str, file: &Path) -> Result<f64> {
    field(v, dotted, file)?
        .as_f64()
        .ok_or_else(|| anyhow!("{}: `{dotted}` is not a number", file.display()))
}

/// The value at a dotted path (`a.b.0.c`).
pub fn field<'v>(v: &'v Value, dotted: &str, file: &Path) -> Result<&'v Value> {
    let mut at = v;
    for part in dotted.split('.') {
        at = match part.parse::<usize>() {
            Ok(i) => at.get(i),
            Err(_) => at.get(part),
        }
        .ok_or_else(|| {
            anyhow!(
                "{}: no `{dotted}` (expected from the stage's output)",
                file.display()
            )
        })?;
    }
    Ok(at)
}
