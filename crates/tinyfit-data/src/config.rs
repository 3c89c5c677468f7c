//! The `[data]` section of an experiment config: which dataset and how to split it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::hapt::HaptConfig;
use crate::normalize::ChannelNorm;
use crate::split::Splits;

/// A dataset and its protocol, selected by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DataConfig {
    /// UCI HAPT raw recordings with the UCI-HAR protocol.
    Hapt(HaptConfig),
}

impl DataConfig {
    /// Resolves relative dataset paths against `base` (the config file's folder).
    pub fn resolve_paths(&mut self, base: &Path) {
        match self {
            DataConfig::Hapt(c) => {
                if c.path.is_relative() {
                    c.path = base.join(&c.path);
                }
            }
        }
    }

    /// Replaces the dataset location.
    pub fn set_path(&mut self, path: &Path) {
        match self {
            DataConfig::Hapt(c) => c.path = path.to_path_buf(),
        }
    }

    /// Loads the dataset and splits it by subject; normalises with `norm` when given, else with
    /// statistics fitted on the training split.
    pub fn load(&self, norm: Option<ChannelNorm>) -> Result<Splits> {
        match self {
            DataConfig::Hapt(c) => Splits::by_group(&c.load()?, &c.test_users, &c.val_users, norm),
        }
    }
}
