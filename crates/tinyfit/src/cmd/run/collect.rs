//! Reading the stages' outputs into [`Summary`]: one candidate per deployable model, measured
//! alike (int8 validation and test accuracy, flash, peak SRAM and latency on the board), the
//! winner chosen on validation within the budget, then deployed and verified in QEMU.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;
use tinyfit_deploy::boards::Board;

use super::stage::{Runner, Stage, StageRecord};
use super::summary::{
    BoardInfo, Budget, Candidate, CompressStep, DatasetInfo, Details, DitmosDetails, Family,
    SCHEMA_VERSION, SearchTrial, StitchRoute, Summary, Winner, field, num, read,
};
use crate::report::thousands;

/// What a finished stage contributed.
struct Contribution {
    candidates: Vec<Candidate>,
}

/// Builds the summary from the stage records, chooses the winner and deploys it (a stage of
/// its own, `winner`, so that a rerun reuses it too).
pub fn summarise(
    records: &[StageRecord],
    board: &'static Board,
    budget: &Budget,
    quick: bool,
    data_path: &Path,
    runner: &mut Runner,
    out: &Path,
) -> Result<Summary> {
    let strong = &records[0];
    if !strong.finished() {
        anyhow::bail!(
            "the strong model's stage did not finish ({:?}); every method reads it",
            strong.status
        );
    }
    let strong_run = strong.dir.join(&strong.name);
    let experiment = read(&strong_run.join("experiment.json"))?;
    let report_path = strong_run.join("report.json");
    let report = read(&report_path)?;
    let sizes = |k: &str| num(&report, &format!("split_sizes.{k}"), &report_path).map(|v| v as u64);
    let dataset = DatasetInfo {
        kind: field(
            &experiment,
            "data.kind",
            &strong_run.join("experiment.json"),
        )?
        .as_str()
        .unwrap_or("")
        .to_string(),
        path: data_path.to_path_buf(),
        classes: serde_json::from_value(field(&report, "classes", &report_path)?.clone())?,
        split_sizes: [sizes("train")?, sizes("val")?, sizes("test")?],
    };
    let mut summary = Summary {
        schema_version: SCHEMA_VERSION,
        dataset,
        board: BoardInfo {
            name: board.name.into(),
            title: board.title.into(),
            clock_mhz: board.clock_mhz,
            sram_bytes: board.sram_bytes as u64,
            flash_bytes: board.flash_bytes as u64,
            active_mw: board.active_mw,
        },
        budget: budget.clone(),
        preset: if quick { "quick" } else { "full" }.into(),
        stages: records.to_vec(),
        candidates: Vec::new(),
        winner: None,
        details: Details::default(),
    };
    for r in records.iter().filter(|r| r.finished()) {
        let contribution = match r.name.as_str() {
            "strong" | "baseline" => {
                let name = if r.name == "strong" {
                    "strong model"
                } else {
                    "small model"
                };
                trained(
                    r,
                    name,
                    Family::Trained,
                    &r.dir.join(&r.name),
                    &r.dir.join("package"),
                    board,
                )
                .map(|c| Contribution {
                    candidates: vec![c],
                })
            }
            "compress" => compress(r, board, &mut summary.details),
            "ditmos" => ditmos(r, board, &mut summary.details),
            "stitch" => stitch(r, board, &mut summary.details),
            "search" => search(r, board, &mut summary.details),
            _ => Ok(Contribution {
                candidates: Vec::new(),
            }), // anchors: read by stitch
        }
        .with_context(|| format!("reading the outputs of stage {}", r.name))?;
        summary.candidates.extend(contribution.candidates);
    }
    for c in &mut summary.candidates {
        c.over_budget = over_budget(c, budget);
    }
    let winner = summary
        .candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| c.fits())
        .max_by(|(_, a), (_, b)| {
            a.validation_accuracy
                .total_cmp(&b.validation_accuracy)
                .then(b.latency_ms.total_cmp(&a.latency_ms))
        })
        .map(|(i, _)| i);
    if let Some(i) = winner {
        summary.winner = Some(deploy_winner(
            &summary.candidates[i],
            i,
            board,
            runner,
            out,
            &mut summary.stages,
        )?);
    }
    Ok(summary)
}

/// What `c` exceeds of `budget`.
fn over_budget(c: &Candidate, budget: &Budget) -> Vec<String> {
    let mut over = Vec::new();
    if c.latency_ms > budget.latency_ms {
        over.push(format!(
            "latency {:.2} ms > {} ms",
            c.latency_ms, budget.latency_ms
        ));
    }
    if c.peak_sram_bytes > budget.sram_bytes {
        over.push(format!(
            "SRAM {} B > {} B",
            c.peak_sram_bytes, budget.sram_bytes
        ));
    }
    if c.flash_bytes > budget.flash_bytes {
        over.push(format!(
            "flash {} B > {} B",
            c.flash_bytes, budget.flash_bytes
        ));
    }
    over
}

/// A model trained by `tinyfit train` (report.json), quantised (quantization.json) and
/// deployed (deploy.json in `package`).
fn trained(
    r: &StageRecord,
    name: &str,
    family: Family,
    run: &Path,
    package: &Path,
    board: &Board,
) -> Result<Candidate> {
    let (report_path, quant_path, deploy_path) = (
        run.join("report.json"),
        run.join("quantization.json"),
        package.join("deploy.json"),
    );
    let (report, quant, deploy) = (read(&report_path)?, read(&quant_path)?, read(&deploy_path)?);
    let model = read(&run.join("model.json"))?;
    let graph_name = model.get("name").and_then(Value::as_str).unwrap_or("");
    let latency_ms = num(&deploy, "estimate.latency_ms", &deploy_path)?;
    Ok(Candidate {
        name: if graph_name.is_empty() {
            name.to_string()
        } else {
            format!("{name}: {graph_name}")
        },
        stage: r.name.clone(),
        family,
        params: num(&report, "params", &report_path)? as u64,
        macs: num(&report, "macs", &report_path)? as u64,
        flash_bytes: num(&deploy, "elf.flash", &deploy_path)? as u64,
        peak_sram_bytes: num(&deploy, "peak_sram_bytes", &deploy_path)? as u64,
        latency_ms,
        energy_uj: latency_ms * board.active_mw,
        validation_accuracy: num(&quant, "validation.int8_accuracy", &quant_path)?,
        test_accuracy: num(&quant, "test.int8_accuracy", &quant_path)?,
        union_accuracy: None,
        train_seconds: Some(num(&report, "train_seconds", &report_path)?),
        over_budget: Vec::new(),
        run: run.to_path_buf(),
    })
}

/// The compression pipeline's final model; every step in the details.
fn compress(r: &StageRecord, board: &Board, details: &mut Details) -> Result<Contribution> {
    let path = r.dir.join("out").join("compress.json");
    let v = read(&path)?;
    let rows = field(&v, "rows", &path)?
        .as_array()
        .cloned()
        .unwrap_or_default();
    for row in &rows {
        details.compress.push(CompressStep {
            step: row["step"].as_str().unwrap_or("").into(),
            params: row["params"].as_u64().unwrap_or(0),
            macs: row["macs"].as_u64().unwrap_or(0),
            validation_accuracy: row["validation_int8"].as_f64().unwrap_or(0.0),
            flash_bytes: row["flash_bytes"].as_u64(),
            latency_ms: row["latency_ms"].as_f64(),
        });
    }
    let Some(last) = rows.last() else {
        return Ok(Contribution {
            candidates: Vec::new(),
        });
    };
    let steps: Vec<&str> = rows
        .iter()
        .skip(1)
        .filter_map(|r| r["step"].as_str())
        .collect();
    let run = PathBuf::from(last["run"].as_str().unwrap_or(""));
    let report_path = run.join("report.json");
    let report = read(&report_path)?;
    let need = |key: &str| {
        last[key]
            .as_f64()
            .with_context(|| format!("{}: the last row has no {key}", path.display()))
    };
    let latency_ms = need("latency_ms")?;
    Ok(Contribution {
        candidates: vec![Candidate {
            name: format!("compressed: {}", steps.join(" → ")),
            stage: r.name.clone(),
            family: Family::TopDown,
            params: need("params")? as u64,
            macs: need("macs")? as u64,
            flash_bytes: need("flash_bytes")? as u64,
            peak_sram_bytes: need("peak_sram_bytes")? as u64,
            latency_ms,
            energy_uj: latency_ms * board.active_mw,
            validation_accuracy: need("validation_int8")?,
            test_accuracy: last["test"][1].as_f64().with_context(|| {
                format!("{}: the last row has no test accuracy", path.display())
            })?,
            union_accuracy: None,
            train_seconds: report["train_seconds"].as_f64(),
            over_budget: Vec::new(),
            run,
        }],
    })
}

/// DiTMoS's routed int8 system.
fn ditmos(r: &StageRecord, board: &Board, details: &mut Details) -> Result<Contribution> {
    let run = r.dir.join("run");
    let path = run.join("ditmos.json");
    let v = read(&path)?;
    let deploy_path = r.dir.join("package").join("deploy.json");
    let deploy = read(&deploy_path)?;
    let m = field(&v, "config.classifiers", &path)?
        .as_u64()
        .unwrap_or(0);
    let latency_ms = num(&deploy, "estimate.latency_ms", &deploy_path)?;
    let floats = |key: &str| -> Vec<f64> {
        v["test"][key]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default()
    };
    details.ditmos = Some(DitmosDetails {
        correct_histogram: v["test"]["correct_histogram"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default(),
        routed_share: floats("routed_share"),
        classifier_accuracy: floats("classifier_accuracy"),
        routing_accuracy: num(&v, "test.routing_accuracy", &path)?,
        cka: serde_json::from_value(field(&v, "cka_test", &path)?.clone())?,
    });
    let seconds: f64 = v["progress"]["seconds"]
        .as_object()
        .map(|phases| phases.values().filter_map(Value::as_f64).sum())
        .unwrap_or(0.0);
    Ok(Contribution {
        candidates: vec![Candidate {
            name: format!("DiTMoS, m = {m}"),
            stage: r.name.clone(),
            family: Family::BottomUp,
            params: num(&v, "params", &path)? as u64,
            macs: num(&v, "macs_per_inference", &path)? as u64,
            flash_bytes: num(&deploy, "elf.flash", &deploy_path)? as u64,
            peak_sram_bytes: num(&deploy, "peak_sram_bytes", &deploy_path)? as u64,
            latency_ms,
            energy_uj: latency_ms * board.active_mw,
            validation_accuracy: num(&v, "int8.validation_accuracy", &path)?,
            test_accuracy: num(&v, "int8.test_accuracy", &path)?,
            union_accuracy: Some(num(&v, "test.union_accuracy", &path)?),
            train_seconds: (seconds > 0.0).then_some(seconds),
            over_budget: Vec::new(),
            run,
        }],
    })
}

/// SN-Net's validation-frontier routes, all in one switchable package.
fn stitch(r: &StageRecord, board: &Board, details: &mut Details) -> Result<Contribution> {
    let run = r.dir.join("run");
    let path = run.join("stitch.json");
    let v = read(&path)?;
    let flash = num(&v, "package.elf.flash", &path)? as u64;
    let sram = num(&v, "package.elf.static_ram", &path)? as u64;
    let seconds = v["progress"]["train_seconds"].as_f64();
    let mut candidates = Vec::new();
    for route in field(&v, "routes", &path)?
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let name = route["route"].as_str().unwrap_or("").to_string();
        let frontier = route["frontier"].as_bool().unwrap_or(false);
        let latency = route["int8"]["latency_ms"].as_f64();
        details.stitch.push(StitchRoute {
            route: name.clone(),
            macs: route["macs"].as_u64().unwrap_or(0),
            test_accuracy: route["int8"]["test_accuracy"].as_f64().unwrap_or(0.0),
            latency_ms: latency,
            frontier,
        });
        if !frontier {
            continue;
        }
        let latency_ms =
            latency.with_context(|| format!("{}: route {name} has no latency", path.display()))?;
        candidates.push(Candidate {
            name: format!("SN-Net route {name}"),
            stage: r.name.clone(),
            family: Family::BottomUp,
            params: route["params"].as_u64().unwrap_or(0),
            macs: route["macs"].as_u64().unwrap_or(0),
            flash_bytes: flash,
            peak_sram_bytes: sram,
            latency_ms,
            energy_uj: latency_ms * board.active_mw,
            validation_accuracy: route["int8"]["validation_accuracy"].as_f64().unwrap_or(0.0),
            test_accuracy: route["int8"]["test_accuracy"].as_f64().unwrap_or(0.0),
            union_accuracy: None,
            train_seconds: seconds,
            over_budget: Vec::new(),
            run: run.clone(),
        });
    }
    Ok(Contribution { candidates })
}

/// The searched model and the hand-designed baseline scaled to its latency; every trial.
fn search(r: &StageRecord, board: &Board, details: &mut Details) -> Result<Contribution> {
    let run = r.dir.join("run");
    let log = run.join("trials.jsonl");
    let text =
        std::fs::read_to_string(&log).with_context(|| format!("cannot read {}", log.display()))?;
    for line in text.lines() {
        let t: tinyfit_nas::Trial = serde_json::from_str(line)
            .with_context(|| format!("{}: a line is not a trial", log.display()))?;
        details.search.push(SearchTrial {
            architecture: t.architecture.describe(),
            latency_ms: t.cost.latency_ms,
            validation_accuracy: t.val_accuracy,
        });
    }
    let mut candidates = vec![trained(
        r,
        "NAS",
        Family::BottomUp,
        &run.join("searched"),
        &run.join("searched-package"),
        board,
    )?];
    if run.join("baseline").join("report.json").exists() {
        candidates.push(trained(
            r,
            "hand-designed at the NAS model's latency",
            Family::Trained,
            &run.join("baseline"),
            &run.join("baseline-package"),
            board,
        )?);
    }
    Ok(Contribution { candidates })
}

/// Deploys the winner for the board with its test split verified in QEMU (a stage), copies
/// its `.tflite`, and reads the package's confusion matrix.
fn deploy_winner(
    c: &Candidate,
    index: usize,
    board: &Board,
    runner: &mut Runner,
    out: &Path,
    stages: &mut Vec<StageRecord>,
) -> Result<Winner> {
    let winner_dir = out.join("winner");
    std::fs::create_dir_all(&winner_dir)
        .with_context(|| format!("cannot create {}", winner_dir.display()))?;
    if c.stage == "stitch" {
        // The switchable package of every route, verified route by route in the stitch stage.
        let path = c.run.join("stitch.json");
        let v = read(&path)?;
        let differing: u64 = v["routes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r["int8"]["differing_test_samples"].as_u64())
                    .sum()
            })
            .unwrap_or(0);
        return Ok(Winner {
            candidate: index,
            confusion: None,
            package: c.run.join("package"),
            tflite: None,
            qemu_samples: None,
            qemu_differing_bytes: Some(differing),
        });
    }
    let run = c.run.display().to_string();
    let stage = Stage {
        name: "winner".into(),
        configs: vec![("winner.txt".into(), format!("{}\n{run}\n", c.name))],
        commands: vec![vec![
            "deploy".into(),
            run.clone(),
            "--board".into(),
            board.name.into(),
            "--out".into(),
            "{dir}/package".into(),
            "--verify".into(),
        ]],
        time_budget: None,
    };
    let made_by = stages.iter().find(|s| s.name == c.stage).cloned();
    let record = runner.run(&stage, &made_by.iter().collect::<Vec<_>>());
    let finished = record.finished();
    let package = record.dir.join("package");
    stages.push(record);
    if !finished {
        anyhow::bail!(
            "the winner {} could not be deployed and verified (see run.log)",
            c.name
        );
    }
    let deploy_path = package.join("deploy.json");
    let deploy = read(&deploy_path)?;
    let target = winner_dir.join("package");
    copy_dir(&package, &target)?;
    let tflite = c.run.join("model_int8.tflite");
    let tflite = if tflite.exists() {
        let to = winner_dir.join("model_int8.tflite");
        std::fs::copy(&tflite, &to).with_context(|| format!("cannot copy {}", tflite.display()))?;
        Some(to)
    } else {
        None
    };
    Ok(Winner {
        candidate: index,
        confusion: serde_json::from_value(
            field(&deploy, "verification.confusion", &deploy_path)?.clone(),
        )?,
        package: target,
        tflite,
        qemu_samples: Some(num(&deploy, "verification.samples", &deploy_path)? as u64),
        qemu_differing_bytes: Some(
            num(&deploy, "verification.differing_bytes", &deploy_path)? as u64
        ),
    })
}

/// Copies the files of `from` into `to` (one level: a package folder).
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    for e in std::fs::read_dir(from).with_context(|| format!("cannot list {}", from.display()))? {
        let e = e?;
        if e.file_type()?.is_file() {
            std::fs::copy(e.path(), to.join(e.file_name()))
                .with_context(|| format!("cannot copy {}", e.path().display()))?;
        }
    }
    Ok(())
}

/// The candidates nearest to the budget, for the refusal.
pub fn closest(summary: &Summary) -> String {
    let b = &summary.budget;
    let excess = |c: &Candidate| {
        (c.latency_ms / b.latency_ms)
            .max(c.peak_sram_bytes as f64 / b.sram_bytes as f64)
            .max(c.flash_bytes as f64 / b.flash_bytes as f64)
    };
    let mut all: Vec<&Candidate> = summary.candidates.iter().collect();
    all.sort_by(|x, y| excess(x).total_cmp(&excess(y)));
    all.iter()
        .take(3)
        .map(|c| format!("{} ({})", c.name, c.over_budget.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The comparison table on the terminal.
pub fn print_table(summary: &Summary) {
    println!(
        "\n| candidate | family | params | MACs | flash B | SRAM B | latency ms | val. % (int8) | test % (int8) | union % | fits |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (i, c) in summary.candidates.iter().enumerate() {
        let star = if summary.winner.as_ref().is_some_and(|w| w.candidate == i) {
            " ★"
        } else {
            ""
        };
        println!(
            "| {}{star} | {:?} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {} | {} |",
            c.name,
            c.family,
            thousands(c.params),
            thousands(c.macs),
            thousands(c.flash_bytes),
            thousands(c.peak_sram_bytes),
            c.latency_ms,
            100.0 * c.validation_accuracy,
            100.0 * c.test_accuracy,
            c.union_accuracy
                .map_or("–".into(), |u| format!("{:.2}", 100.0 * u)),
            if c.fits() {
                "yes".to_string()
            } else {
                c.over_budget.join(", ")
            }
        );
    }
}
