//! `tinyfit run CONFIG`: the main job. Every method on one dataset and board — the strong
//! model and a small baseline trained, the strong model compressed top-down, DiTMoS, SN-Net
//! stitching and the architecture search bottom-up — each candidate quantised and deployed
//! on the board's cost model, the most accurate one (int8, validation) within the budget
//! chosen, and one report: `summary.json` (every figure), `report.html` (rendered from it),
//! the winner's C package and `.tflite` in `winner/`.
//!
//! Stages are content-addressed ([`stage`]): a rerun reuses finished ones and redoes only
//! what changed; a killed stage resumes from its own checkpoints.

mod collect;
mod configs;
mod html;
mod stage;
pub mod summary;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use tinyfit_deploy::boards;

use configs::MethodConfig;
use stage::{Runner, Stage, StageRecord};
use summary::{Budget, Summary};

use crate::run_dir::{RunDir, config_folder, read_toml, resolve};

/// `tinyfit run` arguments.
#[derive(clap::Args)]
pub struct RunArgs {
    /// Run config (TOML: board, [budget], [methods], [quick]); not needed with --schema.
    #[arg(required_unless_present = "schema")]
    pub config: Option<PathBuf>,
    /// Output folder (default: runs/<config file name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The quick preset: every method with the short schedules of the config's [quick].
    #[arg(long)]
    pub quick: bool,
    /// Board profile, instead of the config's.
    #[arg(long)]
    pub board: Option<String>,
    /// Latency budget in ms, instead of the config's.
    #[arg(long)]
    pub latency_ms: Option<f64>,
    /// SRAM budget in KiB, instead of the config's.
    #[arg(long)]
    pub sram_kib: Option<f64>,
    /// Flash budget in KiB, instead of the config's.
    #[arg(long)]
    pub flash_kib: Option<f64>,
    /// Print the JSON schema of summary.json and exit.
    #[arg(long)]
    pub schema: bool,
}

/// The run config.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunConfig {
    /// Board profile.
    board: String,
    budget: BudgetConfig,
    methods: Methods,
    /// The quick preset: per method, dotted keys of its config and their values.
    #[serde(default)]
    quick: BTreeMap<String, toml::Table>,
    /// Per stage, minutes it may run before it is stopped and left out.
    #[serde(default)]
    time_budget_minutes: BTreeMap<String, f64>,
}

/// `[budget]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetConfig {
    latency_ms: f64,
    sram_kib: f64,
    flash_kib: f64,
}

/// `[methods]`: each method's own config file, relative to the run config.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Methods {
    /// The strong model (`tinyfit train` config): the teacher, pruning source, DiTMoS's
    /// feature model and SN-Net's largest anchor.
    strong: PathBuf,
    /// A small model trained alone.
    #[serde(default)]
    baseline: Option<PathBuf>,
    /// A `tinyfit compress` pipeline from the strong model.
    #[serde(default)]
    compress: Option<PathBuf>,
    /// A `tinyfit ditmos` config on the strong model.
    #[serde(default)]
    ditmos: Option<PathBuf>,
    /// SN-Net's smaller anchors (`tinyfit train` configs), smallest first; the strong model
    /// is the largest.
    #[serde(default)]
    anchors: Vec<PathBuf>,
    /// A `tinyfit stitch` config over the anchors.
    #[serde(default)]
    stitch: Option<PathBuf>,
    /// A `tinyfit search` config.
    #[serde(default)]
    search: Option<PathBuf>,
}

/// Runs `tinyfit run`.
pub fn run(args: &RunArgs) -> Result<()> {
    if args.schema {
        let schema = schemars::schema_for!(Summary);
        println!("{}", serde_json::to_string_pretty(&schema)?);
        return Ok(());
    }
    let path = args.config.as_deref().expect("clap requires a config");
    let mut config: RunConfig = read_toml(path, "run config")?;
    let base = config_folder(path);
    {
        let m = &mut config.methods;
        resolve(
            base,
            std::iter::once(&mut m.strong)
                .chain(&mut m.baseline)
                .chain(&mut m.compress)
                .chain(&mut m.ditmos)
                .chain(&mut m.stitch)
                .chain(&mut m.search)
                .chain(m.anchors.iter_mut()),
        );
    }
    if let Some(b) = &args.board {
        config.board = b.clone();
    }
    let b = &mut config.budget;
    b.latency_ms = args.latency_ms.unwrap_or(b.latency_ms);
    b.sram_kib = args.sram_kib.unwrap_or(b.sram_kib);
    b.flash_kib = args.flash_kib.unwrap_or(b.flash_kib);
    let board = boards::board(&config.board).map_err(|e| anyhow::anyhow!("board: {e}"))?;
    let budget = Budget {
        latency_ms: config.budget.latency_ms,
        sram_bytes: (config.budget.sram_kib * 1024.0) as u64,
        flash_bytes: (config.budget.flash_kib * 1024.0) as u64,
    };
    if config.methods.stitch.is_some() && config.methods.anchors.is_empty() {
        bail!(
            "methods.stitch needs methods.anchors (the smaller anchors; the strong model is the largest)"
        );
    }
    let out = args.out.clone().unwrap_or_else(|| {
        let stem = path.file_stem().unwrap_or_default();
        PathBuf::from("runs").join(stem)
    });

    let strong = MethodConfig::load(&config.methods.strong)?;
    let data_path = strong
        .get("data.path")
        .and_then(|v| v.as_str())
        .map(PathBuf::from)
        .with_context(|| format!("{}: no data.path", config.methods.strong.display()))?;
    let mut runner = Runner::new(&out, stage::data_fingerprint(&data_path)?)?;
    runner.note(&format!(
        "{} on {} ({}), budget {} ms, {} KiB SRAM, {} KiB flash; {} preset",
        path.display(),
        board.title,
        board.name,
        budget.latency_ms,
        config.budget.sram_kib,
        config.budget.flash_kib,
        if args.quick { "quick" } else { "full" }
    ));
    let plan = Plan {
        config: &config,
        quick: args.quick,
        board: board.name,
    };
    let records = plan.run_stages(&mut runner, strong, &budget)?;
    let summary = collect::summarise(
        &records,
        board,
        &budget,
        args.quick,
        &data_path,
        &mut runner,
        &out,
    )?;
    RunDir(out.clone()).write_json("summary.json", &summary)?;
    let html = html::render(&summary);
    tinyfit_graph::write_atomic(&out.join("report.html"), html.as_bytes())
        .with_context(|| format!("cannot write {}", out.join("report.html").display()))?;
    runner.note(&format!(
        "wrote {} and {}",
        out.join("summary.json").display(),
        out.join("report.html").display()
    ));
    collect::print_table(&summary);
    match &summary.winner {
        Some(w) => {
            let c = &summary.candidates[w.candidate];
            println!(
                "winner: {} — int8 validation {:.2} %, test {:.2} %, {:.2} ms, {} B flash, {} B SRAM; package in {}",
                c.name,
                100.0 * c.validation_accuracy,
                100.0 * c.test_accuracy,
                c.latency_ms,
                c.flash_bytes,
                c.peak_sram_bytes,
                w.package.display()
            );
        }
        None => bail!(
            "no candidate meets the budget ({} ms, {} B SRAM, {} B flash); the closest: {} (report in {})",
            budget.latency_ms,
            budget.sram_bytes,
            budget.flash_bytes,
            collect::closest(&summary),
            out.join("report.html").display()
        ),
    }
    let failed: Vec<&StageRecord> = summary.stages.iter().filter(|s| !s.finished()).collect();
    if !failed.is_empty() {
        let names: Vec<&str> = failed.iter().map(|s| s.name.as_str()).collect();
        bail!(
            "stages that did not finish (see run.log): {}",
            names.join(", ")
        );
    }
    Ok(())
}

/// What decides the stages.
struct Plan<'a> {
    config: &'a RunConfig,
    quick: bool,
    board: &'static str,
}

/// Command-line words.
fn words(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// `tinyfit COMMAND` on the stage's config into `out`, continuing what a killed run left.
fn resumable(command: &str, out: &str) -> Vec<String> {
    words(&[
        command,
        "--config",
        "{dir}/config.toml",
        "--out",
        out,
        "--resume",
    ])
}

/// `train` into `{dir}/<name>` (the run folder is named after the stage: SN-Net names its
/// anchors by their folders), then `quantize` and `deploy` it for `board`.
fn train_commands(name: &str, board: &str) -> Vec<Vec<String>> {
    let run = format!("{{dir}}/{name}");
    vec![
        resumable("train", &run),
        words(&["quantize", &run]),
        words(&["deploy", &run, "--board", board, "--out", "{dir}/package"]),
    ]
}

impl Plan<'_> {
    /// The method config at `path` with the quick preset of `method` applied.
    fn method(&self, method: &str, path: &Path) -> Result<MethodConfig> {
        let mut c = MethodConfig::load(path)?;
        if self.quick
            && let Some(overrides) = self.config.quick.get(method)
        {
            for (key, value) in overrides {
                c.set(key, value.clone())?;
            }
        }
        Ok(c)
    }

    fn stage(&self, name: &str, config: &MethodConfig, commands: Vec<Vec<String>>) -> Stage {
        let mut s = Stage::new(name, config.text(), commands);
        s.time_budget = self
            .config
            .time_budget_minutes
            .get(name)
            .map(|m| Duration::from_secs_f64(m * 60.0));
        s
    }

    /// Runs every configured stage in dependency order.
    fn run_stages(
        &self,
        runner: &mut Runner,
        strong: MethodConfig,
        budget: &Budget,
    ) -> Result<Vec<StageRecord>> {
        let m = &self.config.methods;
        let mut strong = strong;
        if self.quick
            && let Some(overrides) = self.config.quick.get("strong")
        {
            for (key, value) in overrides {
                strong.set(key, value.clone())?;
            }
        }
        let mut records = Vec::new();
        let strong_stage = self.stage("strong", &strong, train_commands("strong", self.board));
        let strong_rec = runner.run(&strong_stage, &[]);
        let strong_run = strong_rec.dir.join("strong").display().to_string();
        records.push(strong_rec.clone());

        if let Some(p) = &m.baseline {
            let c = self.method("baseline", p)?;
            let cmd = train_commands("baseline", self.board);
            records.push(runner.run(&self.stage("baseline", &c, cmd), &[]));
        }
        if let Some(p) = &m.compress {
            let mut c = self.method("compress", p)?;
            c.set("source", strong_run.clone().into())?;
            c.set("board", self.board.into())?;
            let cmd = vec![words(&[
                "compress",
                "--config",
                "{dir}/config.toml",
                "--out",
                "{dir}/out",
            ])];
            records.push(runner.run(&self.stage("compress", &c, cmd), &[&strong_rec]));
        }
        if let Some(p) = &m.ditmos {
            let mut c = self.method("ditmos", p)?;
            c.set("ditmos.strong", strong_run.clone().into())?;
            let cmd = vec![
                resumable("ditmos", "{dir}/run"),
                words(&[
                    "deploy",
                    "{dir}/run",
                    "--board",
                    self.board,
                    "--out",
                    "{dir}/package",
                ]),
            ];
            records.push(runner.run(&self.stage("ditmos", &c, cmd), &[&strong_rec]));
        }
        if let Some(p) = &m.stitch {
            let mut anchor_records = Vec::new();
            for (i, a) in m.anchors.iter().enumerate() {
                let name = format!("anchor{}", i + 1);
                let c = self.method("anchors", a)?;
                let run = format!("{{dir}}/{name}");
                let cmd = vec![resumable("train", &run)];
                let r = runner.run(&self.stage(&name, &c, cmd), &[]);
                records.push(r.clone());
                anchor_records.push(r);
            }
            let mut c = self.method("stitch", p)?;
            let anchors: Vec<toml::Value> = anchor_records
                .iter()
                .map(|r| r.dir.join(&r.name).display().to_string().into())
                .chain(std::iter::once(strong_run.clone().into()))
                .collect();
            c.set("stitch.anchors", toml::Value::Array(anchors))?;
            c.set("stitch.baselines", toml::Value::Array(Vec::new()))?;
            c.set("stitch.board", self.board.into())?;
            let cmd = vec![resumable("stitch", "{dir}/run")];
            let mut upstream: Vec<&StageRecord> = anchor_records.iter().collect();
            upstream.push(&strong_rec);
            records.push(runner.run(&self.stage("stitch", &c, cmd), &upstream));
        }
        if let Some(p) = &m.search {
            let mut c = self.method("search", p)?;
            c.set("search.board", self.board.into())?;
            c.set("search.latency_target_ms", budget.latency_ms.into())?;
            c.set(
                "search.flash_kib",
                (budget.flash_bytes as f64 / 1024.0).into(),
            )?;
            c.set(
                "search.sram_kib",
                (budget.sram_bytes as f64 / 1024.0).into(),
            )?;
            let mut cmd = vec![resumable("search", "{dir}/run")];
            let finalists: &[&str] = if c.get("baseline").is_some() {
                &["searched", "baseline"]
            } else {
                &["searched"]
            };
            for finalist in finalists {
                let run = format!("{{dir}}/run/{finalist}");
                cmd.push(words(&["quantize", &run]));
                let package = format!("{{dir}}/run/{finalist}-package");
                cmd.push(words(&[
                    "deploy", &run, "--board", self.board, "--out", &package,
                ]));
            }
            records.push(runner.run(&self.stage("search", &c, cmd), &[]));
        }
        Ok(records)
    }
}
