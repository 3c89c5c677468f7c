//! Stress-Predict: Empatica E4 recordings of 35 subjects with task tags; stress vs. rest.
//!
//! Layout: `Raw_data/SXX/{ACC,BVP,EDA,TEMP}.csv` — first row the start time (unix seconds,
//! one value per column), second row the rate in Hz, then one sample per row — and
//! `Raw_data/SXX/tags_SXX.csv`, one button-press time per row. Every file may be gzipped.
//!
//! Labels: the seconds `t` with `round(tag1) ≤ t < round(tag2)`, likewise tags 3–4 and 5–6
//! (Stroop, interview, hyperventilation), are stress; the rest is rest. This is the rule behind
//! `Processed_data`'s per-second labels (exact for every subject but 6, 17, 18 and 30, whose
//! processed labels were taken from other timings).
//!
//! Each signal keeps its own start time and rate; all are resampled onto one clock at `rate` Hz
//! (the mean of the source samples in each target period when downsampling, linear
//! interpolation when upsampling), over the span every selected signal covers. Windows of
//! `window_seconds` with hop `hop_seconds` are labelled by majority.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::text::read_text;

/// A recorded signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// Blood volume pulse (64 Hz).
    Bvp,
    /// Electrodermal activity, µS (4 Hz).
    Eda,
    /// Skin temperature, °C (4 Hz).
    Temp,
    /// Acceleration x, y, z (32 Hz): three channels.
    Acc,
}

impl Signal {
    fn file(self) -> &'static str {
        match self {
            Signal::Bvp => "BVP.csv",
            Signal::Eda => "EDA.csv",
            Signal::Temp => "TEMP.csv",
            Signal::Acc => "ACC.csv",
        }
    }

    /// The rate an Empatica E4 records this signal at.
    fn e4_rate(self) -> f64 {
        match self {
            Signal::Bvp => 64.0,
            Signal::Eda | Signal::Temp => 4.0,
            Signal::Acc => 32.0,
        }
    }

    fn columns(self) -> usize {
        if self == Signal::Acc { 3 } else { 1 }
    }
}

/// Where the recordings are and how to window them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StressConfig {
    /// The dataset folder (holding `Raw_data/`).
    pub path: PathBuf,
    /// Signals to use, in channel order.
    #[serde(default = "default_signals")]
    pub signals: Vec<Signal>,
    /// Common rate of the model input, Hz.
    #[serde(default = "default_rate")]
    pub rate: f64,
    /// Window length, seconds.
    #[serde(default = "default_window")]
    pub window_seconds: f64,
    /// Hop between windows, seconds.
    #[serde(default = "default_hop")]
    pub hop_seconds: f64,
    /// Subtract each window's per-channel mean, removing the between-subject offsets of skin
    /// conductance and temperature so the model sees responses, not baselines.
    #[serde(default)]
    pub center_windows: bool,
    /// Subjects to read (default: every `SXX` folder).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<u32>,
    /// Subjects of the test split.
    #[serde(default = "default_test")]
    pub test_subjects: Vec<u32>,
    /// Subjects held out for validation.
    #[serde(default = "default_val")]
    pub val_subjects: Vec<u32>,
}

fn default_signals() -> Vec<Signal> {
    vec![Signal::Bvp, Signal::Eda, Signal::Temp, Signal::Acc]
}
fn default_rate() -> f64 {
    8.0
}
fn default_window() -> f64 {
    60.0
}
fn default_hop() -> f64 {
    15.0
}
fn default_test() -> Vec<u32> {
    vec![3, 8, 13, 18, 23, 28, 33]
}
fn default_val() -> Vec<u32> {
    vec![5, 10, 20, 25, 30]
}

/// One signal file: start time, rate and rows of `columns` values.
struct Recording {
    start: f64,
    rate: f64,
    rows: Vec<Vec<f32>>,
}

impl Recording {
    fn end(&self) -> f64 {
        self.start + self.rows.len() as f64 / self.rate
    }
}

impl StressConfig {
    /// The default protocol on the dataset at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StressConfig {
            path: path.into(),
            signals: default_signals(),
            rate: default_rate(),
            window_seconds: default_window(),
            hop_seconds: default_hop(),
            center_windows: false,
            subjects: Vec::new(),
            test_subjects: default_test(),
            val_subjects: default_val(),
        }
    }

    fn window_len(&self) -> usize {
        (self.window_seconds * self.rate).round() as usize
    }

    /// Reads every subject and cuts labelled windows; `groups` are subject numbers.
    pub fn load(&self) -> Result<Dataset> {
        let raw = self.path.join("Raw_data");
        if !raw.is_dir() {
            return Err(DataError::Missing {
                what: "Stress-Predict Raw_data folder",
                path: raw,
            });
        }
        let hop = (self.hop_seconds * self.rate).round() as usize;
        if self.signals.is_empty() || self.rate <= 0.0 || self.window_len() == 0 || hop == 0 {
            return Err(DataError::Config(
                "stress: signals must be non-empty and rate, window_seconds, hop_seconds positive"
                    .into(),
            ));
        }
        let subjects = if self.subjects.is_empty() {
            subject_folders(&raw)?
        } else {
            self.subjects.clone()
        };
        let channels: usize = self.signals.iter().map(|s| s.columns()).sum();
        let mut data = Dataset::empty(
            vec![channels, self.window_len()],
            vec!["rest".into(), "stress".into()],
        );
        for subject in subjects {
            self.load_subject(&raw.join(format!("S{subject:02}")), subject, hop, &mut data)?;
        }
        Ok(data)
    }

    fn load_subject(&self, dir: &Path, subject: u32, hop: usize, data: &mut Dataset) -> Result<()> {
        let intervals = stress_intervals(&dir.join(format!("tags_S{subject:02}.csv")))?;
        let recordings = self
            .signals
            .iter()
            .map(|&s| read_signal(&dir.join(s.file()), s))
            .collect::<Result<Vec<_>>>()?;
        let start = recordings.iter().map(|r| r.start).fold(f64::MIN, f64::max);
        let end = recordings.iter().map(|r| r.end()).fold(f64::MAX, f64::min);
        if end <= start {
            return Err(DataError::Invalid {
                path: dir.to_path_buf(),
                message: "the signals do not overlap in time".into(),
            });
        }
        let steps = ((end - start) * self.rate).floor() as usize;
        let mut channels: Vec<Vec<f32>> = Vec::new();
        for r in &recordings {
            for column in 0..r.rows[0].len() {
                channels.push(resample(r, column, start, self.rate, steps));
            }
        }
        let labels: Vec<bool> = (0..steps)
            .map(|i| {
                let t = (start + i as f64 / self.rate).floor();
                intervals.iter().any(|&(a, b)| a <= t && t < b)
            })
            .collect();
        let window = self.window_len();
        let mut sample = vec![0f32; channels.len() * window];
        let mut w = 0;
        while w + window <= steps {
            for (c, channel) in channels.iter().enumerate() {
                let dst = &mut sample[c * window..(c + 1) * window];
                dst.copy_from_slice(&channel[w..w + window]);
                if self.center_windows {
                    let mean = dst.iter().map(|&v| v as f64).sum::<f64>() / window as f64;
                    dst.iter_mut().for_each(|v| *v -= mean as f32);
                }
            }
            let stressed = labels[w..w + window].iter().filter(|&&s| s).count();
            data.push(&sample, (2 * stressed > window) as u32, subject);
            w += hop;
        }
        Ok(())
    }
}

/// The numbers of the `SXX` folders, sorted.
fn subject_folders(raw: &Path) -> Result<Vec<u32>> {
    let entries = std::fs::read_dir(raw).map_err(|source| DataError::Io {
        path: raw.to_path_buf(),
        source,
    })?;
    let mut subjects: Vec<u32> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_prefix('S')?.parse().ok())
        .collect();
    subjects.sort_unstable();
    if subjects.is_empty() {
        return Err(DataError::Invalid {
            path: raw.to_path_buf(),
            message: "no subject folders (SXX)".into(),
        });
    }
    Ok(subjects)
}

/// The three stress intervals `[round(t1), round(t2))`, `[round(t3), round(t4))`,
/// `[round(t5), round(t6))` in unix seconds, from a tags file.
pub fn stress_intervals(path: &Path) -> Result<Vec<(f64, f64)>> {
    let (found, text) = read_text(path, "Stress-Predict tags file")?;
    let mut tags = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let t: f64 = line.trim().parse().map_err(|_| DataError::Parse {
            path: found.clone(),
            line: i + 1,
            message: format!("expected a unix time, found '{}'", line.trim()),
        })?;
        tags.push(((t + 0.5).floor(), i + 1));
    }
    if tags.len() < 6 {
        return Err(DataError::Invalid {
            path: found,
            message: format!(
                "{} tags; expected at least 6 (start and end of three tasks)",
                tags.len()
            ),
        });
    }
    tags[..6]
        .chunks(2)
        .map(|pair| {
            let ((a, _), (b, line)) = (pair[0], pair[1]);
            if b < a {
                return Err(DataError::Parse {
                    path: found.clone(),
                    line,
                    message: format!("task end {b} precedes its start {a}"),
                });
            }
            Ok((a, b))
        })
        .collect()
}

/// Reads an E4 CSV: a row of start times, a row of rates, then samples.
fn read_signal(path: &Path, signal: Signal) -> Result<Recording> {
    let columns = signal.columns();
    let (found, text) = read_text(path, "Empatica E4 signal file")?;
    let mut lines = text.lines().enumerate();
    let mut header = |what: &str| -> Result<f64> {
        let (i, line) = lines.next().ok_or_else(|| DataError::Invalid {
            path: found.clone(),
            message: format!("ends before its {what} row"),
        })?;
        let first = line.split(',').next().unwrap_or("").trim();
        first.parse::<f64>().map_err(|_| DataError::Parse {
            path: found.clone(),
            line: i + 1,
            message: format!("expected the {what} (a number), found '{}'", line.trim()),
        })
    };
    let start = header("start time")?;
    let rate = header("sample rate")?;
    if rate != signal.e4_rate() {
        return Err(DataError::Parse {
            path: found,
            line: 2,
            message: format!(
                "sample rate {rate} Hz; an E4 {} is recorded at {} Hz (is the rate row missing?)",
                signal.file(),
                signal.e4_rate()
            ),
        });
    }
    let mut rows = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let row = line
            .split(',')
            .map(|v| v.trim().parse::<f32>())
            .collect::<std::result::Result<Vec<f32>, _>>()
            .ok()
            .filter(|r| r.len() == columns && r.iter().all(|v| v.is_finite()))
            .ok_or_else(|| DataError::Parse {
                path: found.clone(),
                line: i + 1,
                message: format!(
                    "expected {columns} finite number(s), found '{}'",
                    line.trim()
                ),
            })?;
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(DataError::Invalid {
            path: found,
            message: "no samples after the two header rows".into(),
        });
    }
    Ok(Recording { start, rate, rows })
}

/// `steps` values of one column on the clock `start + i / rate`.
fn resample(r: &Recording, column: usize, start: f64, rate: f64, steps: usize) -> Vec<f32> {
    let at = |j: usize| r.rows[j.min(r.rows.len() - 1)][column] as f64;
    (0..steps)
        .map(|i| {
            let t = start + i as f64 / rate;
            let pos = (t - r.start) * r.rate;
            if r.rate > rate {
                // Mean of the source samples inside [t, t + 1/rate).
                let first = pos.floor().max(0.0) as usize;
                let count = ((r.rate / rate).round() as usize).max(1);
                (first..first + count).map(at).sum::<f64>() as f32 / count as f32
            } else {
                let j = pos.floor().max(0.0) as usize;
                let frac = pos - j as f64;
                (at(j) * (1.0 - frac) + at(j + 1) * frac) as f32
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampling_averages_down_and_interpolates_up() {
        let r = Recording {
            start: 100.0,
            rate: 4.0,
            rows: (0..8).map(|i| vec![i as f32]).collect(),
        };
        assert_eq!(resample(&r, 0, 100.0, 2.0, 4), vec![0.5, 2.5, 4.5, 6.5]);
        assert_eq!(resample(&r, 0, 100.0, 8.0, 4), vec![0.0, 0.5, 1.0, 1.5]);
    }
}
