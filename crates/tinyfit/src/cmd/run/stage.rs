//! Stages of `tinyfit run`: each a list of tinyfit commands run in a folder named by the hash
//! of everything that decides its result — its config texts and commands, the stages it
//! reads, the data and the tinyfit binary — so that a rerun reuses every finished stage and
//! redoes only what changed. Each command runs as a child process (killed with the run) with
//! its output in `logs/<stage>.log`; the run's own log, `run.log`, says which stages were
//! reused and which ran.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

/// A stage to run.
#[derive(Debug, Clone)]
pub struct Stage {
    /// Short name (`strong`, `ditmos`, ...).
    pub name: String,
    /// Config files written into the stage folder: file name, text.
    pub configs: Vec<(String, String)>,
    /// tinyfit command lines, in order; `{dir}` stands for the stage folder.
    pub commands: Vec<Vec<String>>,
    /// Wall-time budget; a stage still running then is stopped and left out.
    pub time_budget: Option<Duration>,
}

impl Stage {
    /// A stage with one config file `config.toml` and commands reading it.
    pub fn new(name: &str, config: String, commands: Vec<Vec<String>>) -> Stage {
        Stage {
            name: name.into(),
            configs: vec![("config.toml".into(), config)],
            commands,
            time_budget: None,
        }
    }

    /// The stage's hash: its configs and commands, the hashes of the stages it reads, the
    /// data and the code.
    fn hash(&self, upstream: &[&str], data: &str, code: &str) -> String {
        let mut h = Sha1::new();
        let mut feed = |s: &str| {
            h.update((s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        };
        feed(&self.name);
        for (name, text) in &self.configs {
            feed(name);
            feed(text);
        }
        for c in &self.commands {
            feed(&c.join("\u{1f}"));
        }
        for u in upstream {
            feed(u);
        }
        feed(data);
        feed(code);
        short_hex(&h.finalize())
    }
}

/// How a stage ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Status {
    /// Finished now.
    Ran,
    /// Finished in an earlier run with the same hash: not recomputed.
    Reused,
    /// Its time budget ran out.
    TimedOut {
        /// Minutes allowed.
        minutes: f64,
    },
    /// A command failed.
    Failed {
        /// The command's last output lines.
        error: String,
    },
    /// A stage it reads did not finish.
    Skipped {
        /// Which.
        because: String,
    },
}

/// A stage's record in the summary.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StageRecord {
    /// The stage.
    pub name: String,
    /// Its hash (the suffix of its folder).
    pub hash: String,
    /// Its folder.
    pub dir: PathBuf,
    /// How it ended.
    #[serde(flatten)]
    pub status: Status,
    /// Wall time of this run's work on it (0 when reused).
    pub seconds: f64,
}

impl StageRecord {
    /// Whether its outputs exist.
    pub fn finished(&self) -> bool {
        matches!(self.status, Status::Ran | Status::Reused)
    }
}

/// Runs stages under one run folder.
pub struct Runner {
    root: PathBuf,
    data: String,
    code: String,
    log: File,
    started: Instant,
    bars: MultiProgress,
}

/// The marker a finished stage leaves in its folder.
const DONE: &str = ".done";

impl Runner {
    /// A runner for the run folder `root`; `data` fingerprints the dataset.
    pub fn new(root: &Path, data: String) -> Result<Runner> {
        std::fs::create_dir_all(root.join("logs"))
            .with_context(|| format!("cannot create {}", root.display()))?;
        let exe = std::env::current_exe().context("cannot locate the tinyfit binary")?;
        let bytes =
            std::fs::read(&exe).with_context(|| format!("cannot read {}", exe.display()))?;
        let code = short_hex(&Sha1::digest(&bytes));
        let log_path = root.join("run.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?;
        let mut runner = Runner {
            root: root.to_path_buf(),
            data,
            code,
            log,
            started: Instant::now(),
            bars: MultiProgress::new(),
        };
        runner.note(&format!("tinyfit run, binary {}", runner.code));
        Ok(runner)
    }

    /// The folder `stage` runs in, given the hashes of the stages it reads.
    pub fn dir(&self, stage: &Stage, upstream: &[&str]) -> (String, PathBuf) {
        let hash = stage.hash(upstream, &self.data, &self.code);
        let dir = self
            .root
            .join("stages")
            .join(format!("{}-{hash}", stage.name));
        (hash, dir)
    }

    /// Writes a line to `run.log` and above the bars.
    pub fn note(&mut self, line: &str) {
        let stamped = format!("[{:>7.1} s] {line}", self.started.elapsed().as_secs_f64());
        let _ = writeln!(self.log, "{stamped}");
        let _ = self.log.sync_data();
        self.bars.suspend(|| println!("{stamped}"));
    }

    /// Runs `stage` (reading stages with `upstream` hashes), or reuses its finished folder.
    pub fn run(&mut self, stage: &Stage, upstream: &[&StageRecord]) -> StageRecord {
        let hashes: Vec<&str> = upstream.iter().map(|u| u.hash.as_str()).collect();
        let (hash, dir) = self.dir(stage, &hashes);
        let record = |status, seconds| StageRecord {
            name: stage.name.clone(),
            hash: hash.clone(),
            dir: dir.clone(),
            status,
            seconds,
        };
        if let Some(u) = upstream.iter().find(|u| !u.finished()) {
            self.note(&format!(
                "stage {}: skipped ({} did not finish)",
                stage.name, u.name
            ));
            return record(
                Status::Skipped {
                    because: u.name.clone(),
                },
                0.0,
            );
        }
        if dir.join(DONE).exists() {
            self.note(&format!(
                "stage {}: reused, not recomputed (finished earlier in {})",
                stage.name,
                dir.display()
            ));
            return record(Status::Reused, 0.0);
        }
        let resuming = dir.exists();
        self.note(&format!(
            "stage {}: {} in {}",
            stage.name,
            if resuming { "resuming" } else { "started" },
            dir.display()
        ));
        let started = Instant::now();
        let status = match self.execute(stage, &dir) {
            Ok(status) => status,
            Err(e) => Status::Failed {
                error: format!("{e:#}"),
            },
        };
        let seconds = started.elapsed().as_secs_f64();
        match &status {
            Status::Ran => {
                if let Err(e) = std::fs::write(dir.join(DONE), hash.as_bytes()) {
                    self.note(&format!(
                        "stage {}: cannot mark it finished: {e}",
                        stage.name
                    ));
                }
                self.note(&format!("stage {}: finished in {seconds:.0} s", stage.name));
            }
            Status::TimedOut { minutes } => self.note(&format!(
                "stage {}: stopped at its time budget ({minutes} min); left out of the comparison",
                stage.name
            )),
            Status::Failed { error } => {
                self.note(&format!("stage {}: failed: {error}", stage.name))
            }
            _ => {}
        }
        record(status, seconds)
    }

    /// Writes the stage's configs and runs its commands with a bar; the first command that
    /// fails ends it.
    fn execute(&mut self, stage: &Stage, dir: &Path) -> Result<Status> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for (name, text) in &stage.configs {
            tinyfit_graph::write_atomic(&dir.join(name), text.as_bytes())
                .with_context(|| format!("cannot write {}", dir.join(name).display()))?;
        }
        let log_path = self.root.join("logs").join(format!("{}.log", stage.name));
        let bar = self.bars.add(
            ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{prefix:>10} {spinner} {msg} ({elapsed})")
                    .expect("valid template"),
            ),
        );
        bar.set_prefix(stage.name.clone());
        bar.enable_steady_tick(Duration::from_millis(200));
        let exe = std::env::current_exe().context("cannot locate the tinyfit binary")?;
        let started = Instant::now();
        for argv in &stage.commands {
            let argv: Vec<String> = argv
                .iter()
                .map(|a| a.replace("{dir}", &dir.display().to_string()))
                .collect();
            bar.set_message(argv.iter().take(2).cloned().collect::<Vec<_>>().join(" "));
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .with_context(|| format!("cannot open {}", log_path.display()))?;
            let mut header = log.try_clone()?;
            writeln!(header, "\n$ tinyfit {}", argv.join(" "))?;
            let mut command = Command::new(&exe);
            command
                .args(&argv)
                .stdout(Stdio::from(log.try_clone()?))
                .stderr(Stdio::from(log));
            // SAFETY: prctl is async-signal-safe; the child asks to be killed with its parent,
            // so that killing `tinyfit run` leaves no stage running on its own.
            unsafe {
                command.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let mut child = command.spawn().context("cannot start a stage command")?;
            let status = loop {
                if let Some(status) = child.try_wait()? {
                    break status;
                }
                if let Some(budget) = stage.time_budget
                    && started.elapsed() > budget
                {
                    let _ = child.kill();
                    let _ = child.wait();
                    bar.finish_with_message("stopped at its time budget");
                    return Ok(Status::TimedOut {
                        minutes: budget.as_secs_f64() / 60.0,
                    });
                }
                std::thread::sleep(Duration::from_millis(100));
            };
            if !status.success() {
                bar.finish_with_message("failed");
                return Ok(Status::Failed {
                    error: format!(
                        "`tinyfit {}` exited with {status}: {} (log: {})",
                        argv.iter().take(2).cloned().collect::<Vec<_>>().join(" "),
                        last_error(&log_path),
                        log_path.display()
                    ),
                });
            }
        }
        bar.finish_with_message("done");
        Ok(Status::Ran)
    }
}

/// The last `error:` line of a log, or its last line.
fn last_error(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .rev()
        .find(|l| l.starts_with("error:"))
        .or_else(|| text.lines().last())
        .unwrap_or("")
        .to_string()
}

/// A fingerprint of the files under `path` (names and sizes), so that other data give other
/// stage hashes.
pub fn data_fingerprint(path: &Path) -> Result<String> {
    let mut entries = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::metadata(&p).with_context(|| format!("cannot read {}", p.display()))?;
        if meta.is_dir() {
            for e in
                std::fs::read_dir(&p).with_context(|| format!("cannot list {}", p.display()))?
            {
                stack.push(e?.path());
            }
        } else {
            let rel = p.strip_prefix(path).unwrap_or(&p).display().to_string();
            entries.push((rel, meta.len()));
        }
    }
    entries.sort();
    let mut h = Sha1::new();
    for (name, size) in &entries {
        h.update(name.as_bytes());
        h.update(size.to_le_bytes());
    }
    Ok(short_hex(&h.finalize()))
}

/// The first 8 bytes of a digest in hex: enough to tell stages, data and binaries apart.
fn short_hex(digest: &[u8]) -> String {
    digest.iter().take(8).fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
