//! The trial log: one JSON line per finished trial, appended and synced as each finishes, so
//! that a killed search loses only the trials in flight; read back to resume, and merged
//! across shards.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::architecture::Architecture;
use crate::error::NasError;

/// What a candidate costs on the board, measured before it is trained.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    /// Trainable parameters.
    pub params: u64,
    /// Multiply-accumulates per inference.
    pub macs: u64,
    /// Flash of the built package (code and constants).
    pub flash_bytes: u64,
    /// Peak SRAM of the built package (static data, arena and stack).
    pub sram_bytes: u64,
    /// Estimated latency of one inference on the board.
    pub latency_ms: f64,
}

/// One evaluated candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// The search this trial belongs to (a fingerprint of its config): logs of another search
    /// are refused when merging or resuming.
    pub search: String,
    /// The shard (0-based) that ran it.
    pub shard: usize,
    /// Its index within the shard's search.
    pub index: usize,
    /// The candidate.
    pub architecture: Architecture,
    /// The index of the trial it was mutated from (evolution), if any.
    pub parent: Option<usize>,
    /// Its cost on the board.
    pub cost: Cost,
    /// Validation accuracy after the proxy schedule; `None` where the candidate exceeded a
    /// limit and was not trained.
    pub val_accuracy: Option<f64>,
    /// Validation loss after the proxy schedule (ranks trials of equal reward).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_loss: Option<f64>,
    /// Why it was not trained, if it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub over_limits: Option<String>,
    /// The search reward (0 for a candidate over the limits).
    pub reward: f64,
    /// Wall time of its evaluation.
    pub seconds: f64,
}

/// `i/n`: this machine runs shard `i` (1-based) of `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 0-based shard.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl Shard {
    /// The whole search on one machine.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Parses `i/n` with `1 ≤ i ≤ n`.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let bad = || format!("--shard {text}: expected i/n with 1 ≤ i ≤ n, such as 1/4");
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let (i, n): (usize, usize) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if i == 0 || i > n {
            return Err(bad());
        }
        Ok(Shard {
            index: i - 1,
            count: n,
        })
    }

    /// The trial log's file name in the search folder.
    pub fn log_name(&self) -> String {
        if self.count == 1 {
            "trials.jsonl".into()
        } else {
            format!("trials-{}-of-{}.jsonl", self.index + 1, self.count)
        }
    }

    /// This shard's share of `trials`: as even as possible, the first shards taking the rest.
    pub fn budget(&self, trials: usize) -> usize {
        trials / self.count + usize::from(self.index < trials % self.count)
    }

    /// This shard's seed: shards search independently (as islands) from seeds of their own.
    pub fn seed(&self, seed: u64) -> u64 {
        seed.wrapping_add(1_000_003 * self.index as u64)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index + 1, self.count)
    }
}

/// An open trial log.
pub struct TrialLog {
    path: PathBuf,
    file: File,
}

impl TrialLog {
    /// Opens (or creates) the log at `path` and reads the trials of search `search` finished
    /// in it. A last line cut short by a kill is dropped (and cut from the file); a line of
    /// another search, or one that does not parse elsewhere, is an error naming the line.
    pub fn open(path: &Path, search: &str) -> Result<(TrialLog, Vec<Trial>), NasError> {
        let io = |source| NasError::Io {
            path: path.to_path_buf(),
            source,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io(e)),
        };
        let (trials, complete_bytes) = parse(&text, path, search)?;
        if complete_bytes < text.len() {
            let file = OpenOptions::new().write(true).open(path).map_err(io)?;
            file.set_len(complete_bytes as u64).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        Ok((
            TrialLog {
                path: path.to_path_buf(),
                file,
            },
            trials,
        ))
    }

    /// Appends `trial` as one line and syncs it to disk.
    pub fn append(&mut self, trial: &Trial) -> Result<(), NasError> {
        let mut line = serde_json::to_string(trial).expect("trials serialise");
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.sync_data())
            .map_err(|source| NasError::Io {
                path: self.path.clone(),
                source,
            })
    }
}

/// The trials of every log named `trials*.jsonl` in `dir` (the shards of one search, copied
/// together), each checked to belong to search `search`, ordered by shard and index.
pub fn merge(dir: &Path, search: &str) -> Result<Vec<Trial>, NasError> {
    let io = |source| NasError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("trials") && n.ends_with(".jsonl"))
        })
        .collect();
    logs.sort();
    let mut trials = Vec::new();
    for path in logs {
        let text = std::fs::read_to_string(&path).map_err(|source| NasError::Io {
            path: path.clone(),
            source,
        })?;
        trials.extend(parse(&text, &path, search)?.0);
    }
    trials.sort_by_key(|t| (t.shard, t.index));
    trials.dedup_by_key(|t| (t.shard, t.index));
    Ok(trials)
}

/// The trials in a log's text and the length of its complete lines.
fn parse(text: &str, path: &Path, search: &str) -> Result<(Vec<Trial>, usize), NasError> {
    let mut trials = Vec::new();
    let mut complete = 0;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        if !line.ends_with('\n') {
            break; // cut short by a kill: the trial was not finished
        }
        let trial: Trial = serde_json::from_str(line).map_err(|e| NasError::Log {
            path: path.to_path_buf(),
            line: n + 1,
            message: e.to_string(),
        })?;
        if trial.search != search {
            return Err(NasError::Log {
                path: path.to_path_buf(),
                line: n + 1,
                message: format!(
                    "the trial belongs to search {}, not to this config's {search}; use another output folder or the config it was run with",
                    trial.search
                ),
            });
        }
        trials.push(trial);
        complete += line.len();
    }
    Ok((trials, complete))
}
