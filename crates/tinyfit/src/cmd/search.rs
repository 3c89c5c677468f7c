//! `tinyfit search --config F`: hardware-aware architecture search over the block families
//! (MnasNet's reward on the board's latency estimate, flash and SRAM as hard limits), then
//! the best candidate and a hand-designed baseline of similar latency trained fully and
//! compared on validation and test, in float and int8.
//!
//! Every trial is appended to `trials.jsonl` as it finishes; `--resume` continues a killed
//! search without re-running finished trials. `--shard i/n` runs one of n independent
//! searches (islands with seeds of their own, the trial budget split between them) into
//! `trials-i-of-n.jsonl`; copied into one folder, `--merge` joins them and finishes.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};
use tinyfit_data::DataConfig;
use tinyfit_deploy::boards;
use tinyfit_graph::Graph;
use tinyfit_nas::{
    Cost, Plan, Reward, SearchSpace, Shard, Strategy, Trial, TrialLog, scale_widths,
};
use tinyfit_train::TrainConfig;

use crate::cmd::eval::int8_metrics;
use crate::cmd::search_cost::{Candidates, Limits};
use crate::cmd::train::train_run;
use crate::experiment::{Experiment, ModelSection};
use crate::report::thousands;
use crate::run_dir::{Report, ResumableArgs, RunDir, config_folder, read_toml, resolve};

/// `tinyfit search` arguments.
#[derive(clap::Args)]
pub struct SearchArgs {
    /// The config (TOML: [data], [search] with [search.space] and [search.proxy], [train],
    /// optional [baseline]), output folder and `--resume` (finished trials are kept, not
    /// re-run).
    #[command(flatten)]
    pub run: ResumableArgs,
    /// Run shard i of n (1-based), e.g. 2/4: an independent search with a seed of its own
    /// and its share of the trials, logged to trials-i-of-n.jsonl; no final training.
    #[arg(long)]
    pub shard: Option<String>,
    /// Join the trial logs of every shard found in the output folder, then train the best.
    #[arg(long, conflicts_with = "shard")]
    pub merge: bool,
    /// Override search.strategy.
    #[arg(long, value_enum)]
    pub strategy: Option<StrategyName>,
    /// Override search.seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Override search.trials.
    #[arg(long)]
    pub trials: Option<usize>,
    /// Stop after the search: no full training of the best candidate and the baseline.
    #[arg(long)]
    pub search_only: bool,
}

/// Search strategies by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum StrategyName {
    /// Regularized evolution.
    Evolution,
    /// Random search.
    Random,
}

/// The config file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchFile {
    data: DataConfig,
    search: SearchSection,
    /// The full schedule of the best candidate and the baseline.
    train: TrainConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    baseline: Option<BaselineSection>,
}

/// `[search]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchSection {
    /// Board whose cost model, flash and SRAM apply.
    board: String,
    /// The reward's latency target T.
    latency_target_ms: f64,
    /// Soft (default, w = −0.07) or hard.
    #[serde(default)]
    reward: Reward,
    strategy: StrategyName,
    /// Regularized evolution's population (default 10).
    #[serde(default = "default_population")]
    population: usize,
    /// Regularized evolution's tournament size (default 5).
    #[serde(default = "default_sample")]
    sample: usize,
    /// Candidates evaluated in all.
    trials: usize,
    /// Candidates evaluated at once (default 2, the cores of the reference machine).
    #[serde(default = "default_parallel")]
    parallel: usize,
    #[serde(default)]
    seed: u64,
    /// Flash limit in KiB (default: the board's flash).
    #[serde(default)]
    flash_kib: Option<f64>,
    /// SRAM limit in KiB (default: the board's SRAM).
    #[serde(default)]
    sram_kib: Option<f64>,
    space: SearchSpace,
    /// The short schedule candidates are ranked by.
    proxy: TrainConfig,
}

fn default_population() -> usize {
    10
}

fn default_sample() -> usize {
    5
}

fn default_parallel() -> usize {
    2
}

/// `[baseline]`: the hand-designed model the searched one is compared with, its widths
/// scaled to the searched model's estimated latency.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BaselineSection {
    graph: PathBuf,
}

/// A fully trained model's figures in `search.json`.
#[derive(Serialize)]
struct Finalist {
    name: String,
    run: PathBuf,
    cost: Cost,
    /// Within the board's flash and SRAM.
    fits: bool,
    /// Within the latency target.
    meets_target: bool,
    float_validation: f64,
    float_test: f64,
    int8_validation: f64,
    int8_test: f64,
    train_seconds: f64,
}

/// What `search.json` records.
#[derive(Serialize)]
struct SearchReport<'a> {
    config: &'a SearchFile,
    search: &'a str,
    strategy: &'static str,
    trials: usize,
    trained: usize,
    over_limits: usize,
    /// Trials on the validation-accuracy / latency frontier.
    pareto: Vec<&'a Trial>,
    /// The trial with the best reward.
    best_trial: &'a Trial,
    best: Option<Finalist>,
    /// The baseline's width multiplier.
    baseline_multiplier: Option<f64>,
    baseline: Option<Finalist>,
    search_seconds: f64,
}

/// Runs `tinyfit search`.
pub fn run(args: &SearchArgs) -> Result<()> {
    let config = &args.run.config;
    let mut file: SearchFile = read_toml(config, "search config")?;
    let base = config_folder(config);
    file.data.resolve_paths(base);
    resolve(base, file.baseline.iter_mut().map(|b| &mut b.graph));
    if let Some(s) = args.strategy {
        file.search.strategy = s;
    }
    if let Some(seed) = args.seed {
        file.search.seed = seed;
    }
    if let Some(trials) = args.trials {
        file.search.trials = trials;
    }
    let out = args.run.run_dir().0;
    let shard = match &args.shard {
        Some(s) => Shard::parse(s).map_err(anyhow::Error::msg)?,
        None => Shard::ALL,
    };
    let board =
        boards::board(&file.search.board).map_err(|e| anyhow::anyhow!("search.board: {e}"))?;
    let limits = Limits {
        flash_bytes: file
            .search
            .flash_kib
            .map_or(board.flash_bytes as u64, |k| (k * 1024.0) as u64),
        sram_bytes: file
            .search
            .sram_kib
            .map_or(board.sram_bytes as u64, |k| (k * 1024.0) as u64),
    };
    let plan = Plan {
        search: fingerprint(&file),
        space: file.search.space.clone(),
        strategy: match file.search.strategy {
            StrategyName::Evolution => Strategy::Evolution {
                population: file.search.population,
                sample: file.search.sample,
            },
            StrategyName::Random => Strategy::Random,
        },
        trials: file.search.trials,
        batch: file.search.parallel,
        seed: file.search.seed,
        shard,
        reward: file.search.reward,
        target_ms: file.search.latency_target_ms,
    };
    plan.validate()?;
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let log_path = out.join(shard.log_name());
    if !args.merge && !args.run.resume && log_path.exists() {
        bail!(
            "{} already holds a search ({}); pass --resume to continue it, or choose another --out",
            out.display(),
            log_path.display()
        );
    }
    RunDir(out.clone()).write_json("search_config.json", &file)?;

    let splits = file.data.load(None)?;
    println!(
        "data: {} classes, samples {:?}; train {}, validation {}, test {}",
        splits.train.class_names.len(),
        splits.train.sample_shape,
        splits.train.len(),
        splits.val.len(),
        splits.test.len()
    );
    let candidates = Candidates::new(
        splits,
        board,
        limits,
        file.search.proxy.clone(),
        out.join("trials"),
    )?;
    println!(
        "search {}: {} over {:.2e} architectures, {} trials{}, {} at once; {} ({} MHz), latency target {} ms, flash ≤ {} B, SRAM ≤ {} B",
        plan.search,
        plan.strategy.name(),
        plan.space.size(),
        plan.trials,
        if shard.count > 1 {
            format!(" (shard {shard}: {})", shard.budget(plan.trials))
        } else {
            String::new()
        },
        plan.batch,
        board.title,
        board.clock_mhz,
        plan.target_ms,
        thousands(limits.flash_bytes),
        thousands(limits.sram_bytes)
    );

    let started = Instant::now();
    let trials = if args.merge {
        let trials = tinyfit_nas::trials::merge(&out, &plan.search)?;
        let shards = trials.iter().map(|t| t.shard).max().map_or(0, |s| s + 1);
        println!(
            "merged {} trials of {shards} shard(s) from {}",
            trials.len(),
            out.display()
        );
        if trials.len() < plan.trials {
            println!(
                "note: {} of the {} trials are missing (unfinished shards?)",
                plan.trials - trials.len(),
                plan.trials
            );
        }
        trials
    } else {
        search(&plan, &candidates, &log_path)?
    };
    let search_seconds = started.elapsed().as_secs_f64();
    let Some(best_trial) = tinyfit_nas::best(&trials) else {
        bail!(
            "no candidate within the limits was trained ({} trials, all over the limits); the closest: {}",
            trials.len(),
            closest(&trials)
        );
    };
    let pareto = tinyfit_nas::pareto(&trials);
    print_trials("validation-accuracy / latency frontier", &pareto);
    print_trials("best reward", &[best_trial]);
    if shard.count > 1 {
        println!(
            "shard {shard} done; copy every shard's trials-*.jsonl into one folder and run `tinyfit search --config {} --out FOLDER --merge`",
            config.display()
        );
        return Ok(());
    }
    let mut report = SearchReport {
        config: &file,
        search: &plan.search,
        strategy: plan.strategy.name(),
        trials: trials.len(),
        trained: trials.iter().filter(|t| t.val_accuracy.is_some()).count(),
        over_limits: trials.iter().filter(|t| t.over_limits.is_some()).count(),
        pareto,
        best_trial,
        best: None,
        baseline_multiplier: None,
        baseline: None,
        search_seconds,
    };
    if !args.search_only {
        let finals = Finals {
            file: &file,
            candidates: &candidates,
            out: &out,
            target_ms: plan.target_ms,
        };
        let graph = candidates.graph(&best_trial.architecture)?;
        let best = finals.train("searched", &graph, Some(best_trial.architecture.time_steps))?;
        if let Some(b) = &file.baseline {
            let hand = Graph::load(&b.graph)?;
            let (multiplier, scaled) =
                finals.match_latency(&hand, &b.graph, best.cost.latency_ms)?;
            report.baseline_multiplier = Some(multiplier);
            report.baseline = Some(finals.train("baseline", &scaled, None)?);
        }
        report.best = Some(best);
        print_finalists(report.best.iter().chain(&report.baseline));
    }
    RunDir(out.clone()).write_json("search.json", &report)?;
    println!("wrote {}", out.join("search.json").display());
    Ok(())
}

/// A fingerprint of everything that decides the trials: data, board, space, strategy,
/// reward, proxy schedule, seed, trial count and batch.
fn fingerprint(file: &SearchFile) -> String {
    let key = serde_json::to_string(&(&file.data, &file.search)).expect("configs serialise");
    let digest = Sha1::digest(key.as_bytes());
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// Runs this shard's search with a progress bar; returns its trials.
fn search(plan: &Plan, candidates: &Candidates, log_path: &Path) -> Result<Vec<Trial>> {
    let (mut log, finished) = TrialLog::open(log_path, &plan.search)?;
    let budget = plan.shard.budget(plan.trials);
    if !finished.is_empty() {
        println!(
            "resuming: {} of {budget} trials finished in {} are kept",
            finished.len(),
            log_path.display()
        );
    }
    let bar = ProgressBar::new(budget as u64).with_style(
        ProgressStyle::with_template(
            "search [{bar:30}] {pos}/{len} trials ({elapsed}, eta {eta}) {msg}",
        )
        .expect("valid template"),
    );
    bar.set_position(finished.len() as u64);
    let mut best = finished.iter().map(|t| t.reward).fold(0.0f64, f64::max);
    let trials = plan.run(
        &mut log,
        finished,
        &|arch| candidates.fits(arch),
        &|p| {
            candidates
                .evaluate(p, plan.shard.index)
                .map_err(|e| format!("{e:#}"))
        },
        &mut |t| {
            best = best.max(t.reward);
            bar.inc(1);
            bar.set_message(format!("best reward {best:.4}"));
            bar.suspend(|| println!("{}", trial_line(t)));
        },
    )?;
    bar.finish();
    // Trial folders are removed as trials finish; the folder itself once all have.
    let _ = std::fs::remove_dir(candidates.scratch());
    Ok(trials)
}

/// One trial as a line.
fn trial_line(t: &Trial) -> String {
    let outcome = match (&t.val_accuracy, &t.over_limits) {
        (Some(a), _) => format!("val {:.2} %, reward {:.4}", 100.0 * a, t.reward),
        (None, Some(why)) => format!("over the limits: {why}"),
        (None, None) => "not trained".into(),
    };
    format!(
        "trial {:>3}{}: {} — {} MACs, flash {} B, SRAM {} B, {:.2} ms; {outcome} ({:.0} s)",
        t.index,
        t.parent.map_or(String::new(), |p| format!(" (from {p})")),
        t.architecture.describe(),
        thousands(t.cost.macs),
        thousands(t.cost.flash_bytes),
        thousands(t.cost.sram_bytes),
        t.cost.latency_ms,
        t.seconds
    )
}

fn print_trials(title: &str, trials: &[&Trial]) {
    println!("\n{title}:");
    println!(
        "| trial | architecture | params | MACs | flash B | SRAM B | latency ms | val. acc. % | reward |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for t in trials {
        println!(
            "| {}.{} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.4} |",
            t.shard + 1,
            t.index,
            t.architecture.describe(),
            thousands(t.cost.params),
            thousands(t.cost.macs),
            thousands(t.cost.flash_bytes),
            thousands(t.cost.sram_bytes),
            t.cost.latency_ms,
            100.0 * t.val_accuracy.unwrap_or(0.0),
            t.reward
        );
    }
}

/// The trial nearest to the limits, for the refusal when none fits.
fn closest(trials: &[Trial]) -> String {
    trials
        .iter()
        .min_by_key(|t| t.cost.flash_bytes.max(t.cost.sram_bytes))
        .map_or("none".into(), |t| {
            format!(
                "trial {} ({}): {}",
                t.index,
                t.architecture.describe(),
                t.over_limits.as_deref().unwrap_or("")
            )
        })
}

/// The final stage: full training and int8 measurement of the finalists.
struct Finals<'a> {
    file: &'a SearchFile,
    candidates: &'a Candidates,
    out: &'a Path,
    target_ms: f64,
}

impl Finals<'_> {
    /// Trains `graph` (at `time_steps`, else the data's resolution) with `[train]` into
    /// `out/<name>` (a run folder `tinyfit quantize`/`deploy` read; a finished one is
    /// reused, an interrupted one resumed), then quantises and measures it.
    fn train(&self, name: &str, graph: &Graph, time_steps: Option<usize>) -> Result<Finalist> {
        let dir = self.out.join(name);
        let exp = Experiment {
            data: self.file.data.clone(),
            model: ModelSection {
                graph: dir.join("model.json"),
                time_steps,
            },
            train: self.file.train.clone(),
            distill: None,
            weight_bits: Default::default(),
        };
        let splits = exp.splits(None)?;
        let run = RunDir(dir.clone());
        println!("\n== {name}: {} ==", graph.name);
        let report: Report = if dir.join("report.json").exists() {
            println!("already trained in {}", dir.display());
            run.read_json("report.json")?
        } else {
            let resume = tinyfit_train::has_checkpoint(&dir);
            train_run(&exp, graph, &splits, &dir, resume, None, None)?
        };
        let weights = run.load()?.weights;
        let program = self.candidates.program(graph, Some(&weights), &splits)?;
        let hidden = ProgressBar::hidden();
        let cost = self
            .candidates
            .measure(graph, &program, &dir.join("package"))?;
        Ok(Finalist {
            name: name.into(),
            run: dir,
            fits: self.candidates.over_limits(&cost).is_none(),
            meets_target: cost.latency_ms <= self.target_ms,
            cost,
            float_validation: report.validation.accuracy,
            float_test: report.test.accuracy,
            int8_validation: int8_metrics(&program, &splits.val, &hidden)?.accuracy,
            int8_test: int8_metrics(&program, &splits.test, &hidden)?.accuracy,
            train_seconds: report.train_seconds,
        })
    }

    /// The width multiplier (of 1/16 to 4, by bisection on its logarithm) whose scaled
    /// `graph` has the estimated latency closest to `latency_ms`, and that graph.
    fn match_latency(&self, graph: &Graph, path: &Path, latency_ms: f64) -> Result<(f64, Graph)> {
        let splits = self.candidates.splits();
        if graph.inputs.first().map(|i| &i.shape) != Some(&splits.train.sample_shape) {
            bail!(
                "baseline.graph {}: its input {:?} is not the data's sample shape {:?}",
                path.display(),
                graph.inputs.first().map(|i| &i.shape),
                splits.train.sample_shape
            );
        }
        let scratch = self.out.join("baseline-scaling");
        let latency = |m: f64| -> Result<(f64, Graph)> {
            let scaled = scale_widths(graph, m);
            let program = self.candidates.program(&scaled, None, splits)?;
            let cost = self.candidates.measure(&scaled, &program, &scratch)?;
            Ok((cost.latency_ms, scaled))
        };
        let (mut lo, mut hi) = ((1.0f64 / 16.0).ln(), 4.0f64.ln());
        let mut nearest: Option<(f64, f64, Graph)> = None;
        for _ in 0..10 {
            let mid = 0.5 * (lo + hi);
            let (ms, scaled) = latency(mid.exp())?;
            let gap = (ms / latency_ms).ln().abs();
            if nearest
                .as_ref()
                .is_none_or(|n| gap < (n.0 / latency_ms).ln().abs())
            {
                nearest = Some((ms, mid.exp(), scaled));
            }
            if ms < latency_ms {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        std::fs::remove_dir_all(&scratch).ok();
        let (ms, m, scaled) = nearest.expect("ten steps ran");
        println!(
            "baseline {}: width × {m:.3} estimated at {ms:.2} ms (searched model: {latency_ms:.2} ms)",
            graph.name
        );
        Ok((m, scaled))
    }
}

fn print_finalists<'a>(finalists: impl Iterator<Item = &'a Finalist>) {
    println!(
        "\n| model | params | MACs | flash B | SRAM B | latency ms | fits | val. % (float) | test % (float) | val. % (int8) | test % (int8) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for f in finalists {
        println!(
            "| {} | {} | {} | {} | {} | {:.2}{} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
            f.name,
            thousands(f.cost.params),
            thousands(f.cost.macs),
            thousands(f.cost.flash_bytes),
            thousands(f.cost.sram_bytes),
            f.cost.latency_ms,
            if f.meets_target { "" } else { " (over target)" },
            if f.fits { "yes" } else { "no" },
            100.0 * f.float_validation,
            100.0 * f.float_test,
            100.0 * f.int8_validation,
            100.0 * f.int8_test
        );
    }
}
