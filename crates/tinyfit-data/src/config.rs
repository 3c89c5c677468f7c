//! The `[data]` section of an experiment config: which dataset and how to split it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::hapt::HaptConfig;
use crate::normalize::ChannelNorm;
use crate::speech::SpeechCommandsConfig;
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
}

impl DataConfig {
    /// Resolves relative dataset paths against `base` (the config file's folder).
    pub fn resolve_paths(&mut self, base: &Path) {
        let path = self.path_mut();
        if path.is_relative() {
            *path = base.join(&*path);
        }
    }

    /// Replaces the dataset location.
    pub fn set_path(&mut self, path: &Path) {
        *self.path_mut() = path.to_path_buf();
    }

    /// Loads the dataset and splits it by subject; normalises with `norm` when given, else with
    /// statistics fitted on the training split.
    pub fn load(&self, norm: Option<ChannelNorm>) -> Result<Splits> {
        match self {
            DataConfig::Hapt(c) => Splits::by_group(&c.load()?, &c.test_users, &c.val_users, norm),
            DataConfig::SpeechCommands(c) => {
                let (data, speakers) = c.load()?;
                Splits::by_group(&data, &speakers.test, &speakers.validation, norm)
            }
            DataConfig::StressPredict(c) => {
                Splits::by_group(&c.load()?, &c.test_subjects, &c.val_subjects, norm)
            }
        }
    }

    fn path_mut(&mut self) -> &mut PathBuf {
        match self {
            DataConfig::Hapt(c) => &mut c.path,
            DataConfig::SpeechCommands(c) => &mut c.path,
            DataConfig::StressPredict(c) => &mut c.path,
        }
    }
}
