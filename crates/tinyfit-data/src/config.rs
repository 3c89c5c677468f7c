//! The `[data]` section of an experiment config: which dataset and how to split it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::Result;
use crate::files::FilesConfig;
use crate::hapt::HaptConfig;
use crate::normalize::ChannelNorm;
use crate::speech::SpeechCommandsConfig;
use crate::split::HeldOut;
use crate::split::Splits;
use crate::stress::StressConfig;

/// A dataset and its protocol, selected by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DataConfig {
    /// UCI HAPT raw recordings with the UCI-HAR protocol.
    Hapt(HaptConfig),
    /// Google Speech Commands through the MLPerf Tiny KWS front-end, speaker-disjoint.
    SpeechCommands(SpeechCommandsConfig),
    /// Stress-Predict Empatica E4 recordings, stress vs. rest, subject-disjoint.
    StressPredict(StressConfig),
    /// A user's own files: CSV, UCR `.tsv`, sktime `.ts`, NPY or NPZ.
    Files(FilesConfig),
}

impl DataConfig {
    /// Resolves relative dataset paths against `base` (the config file's folder).
    pub fn resolve_paths(&mut self, base: &Path) {
        if let DataConfig::Files(c) = self {
            c.resolve_paths(base);
            return;
        }
        let path = self.path_mut();
        if path.is_relative() {
            *path = base.join(&*path);
        }
    }

    /// Whether `self` and `other` describe the same data: equal but for how their dataset
    /// paths are spelt (relative to another folder, through `..`, through links).
    pub fn same_data(&self, other: &DataConfig) -> bool {
        let canonical = |c: &DataConfig| {
            let mut c = c.clone();
            if !matches!(c, DataConfig::Files(_)) {
                let path = c.path_mut();
                if let Ok(real) = std::fs::canonicalize(&*path) {
                    *path = real;
                }
            }
            c
        };
        canonical(self) == canonical(other)
    }

    /// Replaces the dataset location.
    pub fn set_path(&mut self, path: &Path) {
        *self.path_mut() = path.to_path_buf();
    }

    /// Loads the dataset and splits it by subject; normalises with `norm` when given, else with
    /// statistics fitted on the training split.
    pub fn load(&self, norm: Option<ChannelNorm>) -> Result<Splits> {
        let (data, held_out) = self.load_dataset()?;
        Splits::by_group(&data, &held_out.test, &held_out.validation, norm)
    }

    /// Loads every sample, unnormalised, with the groups the protocol holds out.
    pub fn load_dataset(&self) -> Result<(Dataset, HeldOut)> {
        match self {
            DataConfig::Hapt(c) => Ok((
                c.load()?,
                HeldOut {
                    validation: c.val_users.clone(),
                    test: c.test_users.clone(),
                },
            )),
            DataConfig::SpeechCommands(c) => c.load(),
            DataConfig::StressPredict(c) => Ok((
                c.load()?,
                HeldOut {
                    validation: c.val_subjects.clone(),
                    test: c.test_subjects.clone(),
                },
            )),
            DataConfig::Files(c) => c.load_dataset(),
        }
    }

    /// The layout name as written in configs (`hapt`, `speech_commands`, `stress_predict`).
    pub fn kind(&self) -> &'static str {
        match self {
            DataConfig::Hapt(_) => "hapt",
            DataConfig::SpeechCommands(_) => "speech_commands",
            DataConfig::StressPredict(_) => "stress_predict",
            DataConfig::Files(_) => "files",
        }
    }

    /// The time axis of one sample, in words (source rate and what the model sees).
    pub fn rate_note(&self) -> String {
        match self {
            DataConfig::Hapt(c) => format!(
                "50 Hz accelerometer + gyroscope; {} samples = {:.2} s per window, hop {}",
                c.window,
                c.window as f64 / 50.0,
                c.hop
            ),
            DataConfig::SpeechCommands(c) => format!(
                "16 kHz audio, 1 s clips → {:?} features at 50 frames/s (30 ms frames, 20 ms hop)",
                c.features
            ),
            DataConfig::StressPredict(c) => format!(
                "E4 signals (BVP 64 Hz, EDA/TEMP 4 Hz, ACC 32 Hz) resampled to {} Hz; {} s windows, hop {} s",
                c.rate, c.window_seconds, c.hop_seconds
            ),
            DataConfig::Files(_) => "as stored in the files (no rate recorded)".into(),
        }
    }

    /// The dataset folder.
    pub fn path(&self) -> &Path {
        match self {
            DataConfig::Hapt(c) => &c.path,
            DataConfig::SpeechCommands(c) => &c.path,
            DataConfig::StressPredict(c) => &c.path,
            DataConfig::Files(c) => &c.path,
        }
    }

    /// Recognises a dataset folder by its layout and returns its default protocol.
    pub fn detect(path: &Path) -> Option<DataConfig> {
        if path.join("RawData").is_dir() {
            Some(DataConfig::Hapt(HaptConfig::new(path)))
        } else if path.join("Raw_data").is_dir() {
            Some(DataConfig::StressPredict(StressConfig::new(path)))
        } else if path.join("_silence_").is_dir() || path.join("yes").is_dir() {
            Some(DataConfig::SpeechCommands(SpeechCommandsConfig::new(path)))
        } else {
            None
        }
    }

    fn path_mut(&mut self) -> &mut PathBuf {
        match self {
            DataConfig::Hapt(c) => &mut c.path,
            DataConfig::SpeechCommands(c) => &mut c.path,
            DataConfig::StressPredict(c) => &mut c.path,
            DataConfig::Files(c) => &mut c.path,
        }
    }
}
