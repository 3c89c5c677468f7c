//! How `tinyfit search` evaluates a candidate: its graph for the data, its int8 program
//! checked against the board's flash and SRAM before anything is trained, its package built
//! and profiled on the emulated core for the latency estimate, then the proxy training.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use tinyfit_compress::{PtqConfig, quantize};
use tinyfit_data::Splits;
use tinyfit_deploy::boards::Board;
use tinyfit_deploy::emulator::{self, Core};
use tinyfit_deploy::{Program, codegen, cost};
use tinyfit_graph::{Graph, Weights};
use tinyfit_nas::{Architecture, Cost, Evaluation, Proposal, Score};
use tinyfit_train::{Observer, TrainConfig, TrainOptions, init};

use crate::cmd::deploy::profile_package;

/// The board's limits a candidate must meet.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Flash: code and constants.
    pub flash_bytes: u64,
    /// SRAM: static data, arena and stack.
    pub sram_bytes: u64,
}

/// Evaluates candidates of one search on one dataset and board.
pub struct Candidates {
    /// The data at their own resolution.
    splits: Splits,
    /// The data at each resolution asked for so far.
    resampled: Mutex<HashMap<usize, Arc<Splits>>>,
    /// The board and its emulated core.
    pub board: &'static Board,
    core: Core,
    /// The hard limits.
    pub limits: Limits,
    /// The proxy schedule.
    proxy: TrainConfig,
    /// Where trial folders (checkpoints, packages) live while a trial runs.
    scratch: PathBuf,
}

/// Progress of proxy training is the search's bar, not one per candidate.
struct Quiet;
impl Observer for Quiet {}

/// Calibration samples for the int8 program a candidate is sized and timed with.
const CALIBRATION: usize = 64;

impl Candidates {
    /// Candidates trained on `splits` with `proxy`, measured on `board` within `limits`,
    /// their trial folders under `scratch`.
    pub fn new(
        splits: Splits,
        board: &'static Board,
        limits: Limits,
        proxy: TrainConfig,
        scratch: PathBuf,
    ) -> Result<Self> {
        let core = board.core.emulated().ok_or_else(|| {
            anyhow!(
                "search.board: {} has no emulated core here, so no latency estimate; pick a Cortex-M4 or M7 board",
                board.title
            )
        })?;
        if cost::CycleModel::of(board.core).is_none() {
            bail!("search.board: {} has no cycle model", board.title);
        }
        Ok(Candidates {
            splits,
            resampled: Mutex::new(HashMap::new()),
            board,
            core,
            limits,
            proxy,
            scratch,
        })
    }

    /// The data at `time_steps` (resampled once, then shared).
    pub fn splits_at(&self, time_steps: usize) -> Result<Arc<Splits>> {
        if let Some(s) = self
            .resampled
            .lock()
            .expect("not poisoned")
            .get(&time_steps)
        {
            return Ok(s.clone());
        }
        let splits = if self.splits.train.sample_shape[1] == time_steps {
            self.splits.clone()
        } else {
            self.splits.resampled(time_steps)?
        };
        let splits = Arc::new(splits);
        self.resampled
            .lock()
            .expect("not poisoned")
            .insert(time_steps, splits.clone());
        Ok(splits)
    }

    /// The folder trial folders are made in.
    pub fn scratch(&self) -> &Path {
        &self.scratch
    }

    /// The data at their own resolution.
    pub fn splits(&self) -> &Splits {
        &self.splits
    }

    /// The candidate's graph for this data.
    pub fn graph(&self, arch: &Architecture) -> Result<Graph> {
        let shape = &self.splits.train.sample_shape;
        let classes = self.splits.train.class_names.len();
        arch.graph(&arch.describe(), shape[0], shape.get(2).copied(), classes)
            .map_err(|e| anyhow!("{}: {e}", arch.describe()))
    }

    /// The int8 program of `graph` with `weights` (PyTorch's initialisation where `None`:
    /// sizes and instruction counts do not depend on the values), calibrated on training
    /// windows at the graph's resolution.
    pub fn program(
        &self,
        graph: &Graph,
        weights: Option<&Weights>,
        splits: &Splits,
    ) -> Result<Program> {
        let initial;
        let weights = match weights {
            Some(w) => w,
            None => {
                initial = init::pytorch_default(graph, &graph.analyze()?, 0);
                &initial
            }
        };
        let step = (splits.train.len() / CALIBRATION).max(1);
        let calibration = splits.train.select(
            &(0..splits.train.len())
                .step_by(step)
                .take(CALIBRATION)
                .collect::<Vec<_>>(),
        );
        let q = quantize(graph, weights, &calibration, PtqConfig::default())?;
        Ok(tinyfit_deploy::lower(&q)?)
    }

    /// Whether the candidate's int8 program fits the limits before code and stack are
    /// counted (its constants in flash, its arena in SRAM): the cheap check that mutations
    /// and samples are redrawn by.
    pub fn fits(&self, arch: &Architecture) -> bool {
        let program = self
            .splits_at(arch.time_steps)
            .and_then(|s| self.program(&self.graph(arch)?, None, &s));
        program.is_ok_and(|p| {
            (p.const_bytes() as u64) < self.limits.flash_bytes
                && (p.memory().arena_bytes as u64) < self.limits.sram_bytes
        })
    }

    /// Builds `program`'s package in `dir` for the board's core and measures it: flash and
    /// static RAM of the ELF, stack high-water and instruction counts of one inference on the
    /// emulated core, converted to latency by the core's cycle model.
    pub fn measure(&self, graph: &Graph, program: &Program, dir: &Path) -> Result<Cost> {
        codegen::generate(program)
            .write(dir)
            .with_context(|| format!("cannot write the package to {}", dir.display()))?;
        let elf = emulator::build(dir, self.core)?;
        let sizes = emulator::elf_sizes(&elf)?;
        let profile = profile_package(dir, program, self.core, 0)?;
        let estimate = cost::estimate(&profile.operations, self.board).context("no cycle model")?;
        let analysis = graph.analyze()?;
        Ok(Cost {
            params: analysis.params(),
            macs: analysis.macs(),
            flash_bytes: sizes.flash as u64,
            sram_bytes: (sizes.static_ram + profile.stack_bytes) as u64,
            latency_ms: estimate.latency_ms,
        })
    }

    /// Why `cost` breaks the limits, if it does.
    pub fn over_limits(&self, cost: &Cost) -> Option<String> {
        let mut why = Vec::new();
        if cost.flash_bytes > self.limits.flash_bytes {
            why.push(format!(
                "flash {} B > {} B",
                cost.flash_bytes, self.limits.flash_bytes
            ));
        }
        if cost.sram_bytes > self.limits.sram_bytes {
            why.push(format!(
                "SRAM {} B > {} B",
                cost.sram_bytes, self.limits.sram_bytes
            ));
        }
        (!why.is_empty()).then(|| why.join(", "))
    }

    /// Measures a proposal and, within the limits, trains it with the proxy schedule; its
    /// trial folder is removed afterwards (a trial interrupted by a kill restarts).
    pub fn evaluate(&self, p: &Proposal, shard: usize) -> Result<Evaluation> {
        let started = Instant::now();
        let dir = self.scratch.join(format!("{}-{}", shard + 1, p.index));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("cannot clear {}", dir.display()))?;
        }
        let splits = self.splits_at(p.architecture.time_steps)?;
        let graph = self.graph(&p.architecture)?;
        let program = self.program(&graph, None, &splits)?;
        let cost = self.measure(&graph, &program, &dir.join("package"))?;
        let score = match self.over_limits(&cost) {
            Some(why) => Err(why),
            None => {
                let outcome = tinyfit_train::train(
                    &graph,
                    &splits,
                    &self.proxy,
                    &dir.join("train"),
                    false,
                    TrainOptions::default(),
                    &mut Quiet,
                )?;
                let selected = &outcome.history[outcome.best_epoch];
                Ok(Score {
                    accuracy: selected.val_accuracy,
                    loss: selected.val_loss,
                })
            }
        };
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot remove {}", dir.display()))?;
        Ok(Evaluation {
            cost,
            score,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}
