//! UCI HAPT raw recordings, windowed with the UCI-HAR protocol.
//!
//! Layout (`RawData/`): `acc_expEE_userUU.txt` and `gyro_expEE_userUU.txt` hold three
//! space-separated columns at 50 Hz (acceleration in g, angular velocity in rad/s);
//! `labels.txt` holds `experiment user activity start end` rows with 0-based inclusive sample
//! indices. Every file may also be gzipped (`NAME.gz`).
//!
//! Windows of `window` samples with a hop of `hop` are cut inside each labelled segment, so no
//! window mixes two activities; a sample is `[6, window]`: acc x, y, z then gyro x, y, z. The
//! labels are re-indexed `0..activities.len()` in the configured order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::text::{parse_table, read_text};

/// Where the HAPT recordings are and how to window them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaptConfig {
    /// The dataset folder (holding `RawData/` and `activity_labels.txt`).
    pub path: PathBuf,
    /// Window length in samples (UCI-HAR: 128 = 2.56 s).
    #[serde(default = "default_window")]
    pub window: usize,
    /// Hop between windows (UCI-HAR: 64, i.e. 50 % overlap).
    #[serde(default = "default_hop")]
    pub hop: usize,
    /// Activity ids to keep, in label order (UCI-HAR: 1–6).
    #[serde(default = "default_activities")]
    pub activities: Vec<u32>,
    /// Users of the test split (UCI-HAR's nine official test users).
    #[serde(default = "default_test_users")]
    pub test_users: Vec<u32>,
    /// Training users held out for validation (model selection and early stopping).
    #[serde(default = "default_val_users")]
    pub val_users: Vec<u32>,
}

fn default_window() -> usize {
    128
}
fn default_hop() -> usize {
    64
}
fn default_activities() -> Vec<u32> {
    (1..=6).collect()
}
fn default_test_users() -> Vec<u32> {
    vec![2, 4, 9, 10, 12, 13, 18, 20, 24]
}
fn default_val_users() -> Vec<u32> {
    vec![3, 11, 19, 27]
}

impl HaptConfig {
    /// The UCI-HAR protocol on the dataset at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        HaptConfig {
            path: path.into(),
            window: default_window(),
            hop: default_hop(),
            activities: default_activities(),
            test_users: default_test_users(),
            val_users: default_val_users(),
        }
    }

    /// Reads every recording and cuts the labelled windows; `groups` are user ids.
    pub fn load(&self) -> Result<Dataset> {
        if self.window == 0 || self.hop == 0 {
            return Err(DataError::Config("window and hop must be positive".into()));
        }
        if !self.path.is_dir() {
            return Err(DataError::Missing {
                what: "HAPT folder",
                path: self.path.clone(),
            });
        }
        let raw = self.path.join("RawData");
        if !raw.is_dir() {
            return Err(DataError::Missing {
                what: "HAPT RawData folder",
                path: raw,
            });
        }
        let names = self.activity_names()?;
        let (labels_path, text) = read_text(&raw.join("labels.txt"), "HAPT labels file")?;
        let labels: Vec<Vec<u64>> = parse_table(&labels_path, &text, 5)?;

        let mut by_experiment: BTreeMap<(u64, u64), Vec<Segment>> = BTreeMap::new();
        for (i, row) in labels.iter().enumerate() {
            by_experiment
                .entry((row[0], row[1]))
                .or_default()
                .push(Segment {
                    line: i + 1,
                    activity: row[2],
                    start: row[3] as usize,
                    end: row[4] as usize,
                });
        }

        let mut data = Dataset::empty(vec![6, self.window], names);
        let mut sample = vec![0f32; 6 * self.window];
        for ((exp, user), segments) in by_experiment {
            let signals = read_recording(&raw, exp, user)?;
            for Segment {
                line,
                activity,
                start,
                end,
            } in segments
            {
                let Some(label) = self.activities.iter().position(|&a| a as u64 == activity) else {
                    continue;
                };
                if start > end || end >= signals.len() {
                    return Err(DataError::Parse {
                        path: labels_path.clone(),
                        line,
                        message: format!(
                            "segment {start}..={end} lies outside experiment {exp}'s {} samples",
                            signals.len()
                        ),
                    });
                }
                let mut w = start;
                while w + self.window <= end + 1 {
                    for t in 0..self.window {
                        for c in 0..6 {
                            sample[c * self.window + t] = signals[w + t][c];
                        }
                    }
                    data.push(&sample, label as u32, user as u32);
                    w += self.hop;
                }
            }
        }
        Ok(data)
    }

    /// Names of the configured activities, from `activity_labels.txt`.
    fn activity_names(&self) -> Result<Vec<String>> {
        let (path, text) = read_text(
            &self.path.join("activity_labels.txt"),
            "HAPT activity_labels.txt",
        )?;
        let mut names = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let mut parts = line.split_whitespace();
            let (Some(id), Some(name)) = (parts.next(), parts.next()) else {
                continue;
            };
            let id: u32 = id.parse().map_err(|_| DataError::Parse {
                path: path.clone(),
                line: i + 1,
                message: format!("expected 'ID NAME', found '{line}'"),
            })?;
            names.insert(id, name.to_string());
        }
        self.activities
            .iter()
            .map(|a| {
                names.get(a).cloned().ok_or_else(|| DataError::Invalid {
                    path: path.clone(),
                    message: format!("activity {a} is not listed"),
                })
            })
            .collect()
    }
}

/// One row of `labels.txt`: an activity over inclusive sample indices.
struct Segment {
    line: usize,
    activity: u64,
    start: usize,
    end: usize,
}

/// Reads one experiment's acc and gyro files into rows of 6 values.
fn read_recording(raw: &Path, exp: u64, user: u64) -> Result<Vec<[f32; 6]>> {
    let read = |sensor: &str| -> Result<(PathBuf, Vec<Vec<f32>>)> {
        let name = format!("{sensor}_exp{exp:02}_user{user:02}.txt");
        let (path, text) = read_text(&raw.join(name), "HAPT recording")?;
        let rows = parse_table(&path, &text, 3)?;
        Ok((path, rows))
    };
    let (_, acc) = read("acc")?;
    let (gyro_path, gyro) = read("gyro")?;
    if acc.len() != gyro.len() {
        return Err(DataError::Invalid {
            path: gyro_path,
            message: format!(
                "{} gyro rows but {} acc rows; the two sensors must have one row per sample",
                gyro.len(),
                acc.len()
            ),
        });
    }
    Ok(acc
        .iter()
        .zip(&gyro)
        .map(|(a, g)| [a[0], a[1], a[2], g[0], g[1], g[2]])
        .collect())
}
