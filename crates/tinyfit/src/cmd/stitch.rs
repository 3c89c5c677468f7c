//! `tinyfit stitch --config F`: SN-Net model stitching over trained anchors. Builds the
//! stitching space, initialises the stitching layers (least squares or, for the ablation,
//! PyTorch's default), trains anchors and layers jointly with one route drawn per step, then
//! evaluates every route on validation and test and keeps the accuracy–MACs frontier chosen on
//! validation (`stitch.json`, plotted in `stitch.svg`). Checkpoints after every epoch;
//! `--resume` continues an interrupted run.

use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use burn::module::Module;
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use tinyfit_graph::Weights;
use tinyfit_stitch::anchor::Anchor;
use tinyfit_stitch::config::{Init, StitchConfig};
use tinyfit_stitch::frontier::pareto;
use tinyfit_stitch::model::SnNet;
use tinyfit_stitch::space::{Route, Space};
use tinyfit_stitch::train::{JointConfig, RouteScore, evaluate, route_costs, train_epoch};
use tinyfit_train::{GraphModel, OptimizerConfig, batch, cpu};

use crate::plot;
use crate::run_dir::{ResumableArgs, RunDir, config_folder, read_toml, resolve};

/// The config file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StitchFile {
    stitch: StitchConfig,
}

/// How far a run has got; saved with each checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Progress {
    /// Joint-training epochs done.
    epochs: usize,
    /// Mean training loss of each epoch.
    losses: Vec<f64>,
    /// Validation figures of every route right after initialisation (before joint training).
    init_validation: Vec<RouteScore>,
    /// Wall time of joint training so far, in seconds.
    train_seconds: f64,
}

/// One route's figures in `stitch.json`.
#[derive(Serialize)]
struct RouteReport {
    route: String,
    params: u64,
    macs: u64,
    validation_accuracy: f64,
    validation_loss: f64,
    test_accuracy: f64,
    /// On the accuracy–MACs frontier of validation accuracies (ties: validation loss).
    frontier: bool,
}

/// What `stitch.json` records.
#[derive(Serialize)]
struct StitchReport<'a> {
    config: &'a StitchConfig,
    anchors: Vec<String>,
    /// Stitches of the space that could not be stitched (shapes do not line up).
    dropped_stitches: usize,
    stitching_layers: usize,
    routes: Vec<RouteReport>,
    progress: &'a Progress,
}

/// `tinyfit stitch`'s arguments.
#[derive(clap::Args)]
pub struct StitchArgs {
    /// The config (with a [stitch] section), output folder and `--resume`.
    #[command(flatten)]
    pub run: ResumableArgs,
    /// Stitching-layer initialisation, instead of the config's (`default`: the ablation).
    #[arg(long, value_enum)]
    pub init: Option<InitArg>,
    /// Joint-training epochs, instead of the config's.
    #[arg(long)]
    pub epochs: Option<usize>,
}

/// [`Init`] on the command line.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum InitArg {
    /// Least squares on training activations.
    LeastSquares,
    /// PyTorch's default initialisation.
    Default,
}

/// Runs (or with `--resume` continues) the stitching run of `args.config`.
pub fn run(args: &StitchArgs) -> Result<()> {
    let config = args.run.config.as_path();
    let file: StitchFile = read_toml(config, "config")?;
    let mut cfg = file.stitch;
    resolve(config_folder(config), &mut cfg.anchors);
    if let Some(init) = args.init {
        cfg.init = match init {
            InitArg::LeastSquares => Init::LeastSquares,
            InitArg::Default => Init::Default,
        };
    }
    cfg.epochs = args.epochs.unwrap_or(cfg.epochs);
    cfg.validate()
        .map_err(|e| anyhow!("config {}: {e}", config.display()))?;
    let run = args.run.run_dir();
    let mut progress: Progress =
        run.start_or_resume(&cfg, args.run.resume, "stitching", "stitch")?;

    // The anchors: trained runs of one design on the same data.
    let trained = cfg
        .anchors
        .iter()
        .map(|p| {
            RunDir(p.clone())
                .load()
                .with_context(|| format!("loading the anchor {}", p.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    for (p, t) in cfg.anchors.iter().zip(&trained).skip(1) {
        if t.experiment.data != trained[0].experiment.data || t.norm != trained[0].norm {
            bail!(
                "the anchor {} was trained on other data than {} (its [data] or normalisation \
                 differs); anchors must share their data",
                p.display(),
                cfg.anchors[0].display()
            );
        }
    }
    let names: Vec<String> = cfg
        .anchors
        .iter()
        .map(|p| {
            p.file_name().map_or_else(
                || p.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            )
        })
        .collect();
    let anchors = trained
        .iter()
        .map(|t| Anchor::new(t.graph.clone(), cfg.stem.as_deref(), &cfg.blocks))
        .collect::<Result<Vec<_>, _>>()?;
    let depths: Vec<usize> = anchors.iter().map(Anchor::depth).collect();
    let space = Space::new(&depths, cfg.direction.into(), cfg.window.into());
    let weights: Vec<Weights> = trained.iter().map(|t| t.weights.clone()).collect();
    let splits = trained[0].splits()?;
    let device = cpu().autodiff();
    let mut net = SnNet::new(anchors, &weights, &space, cfg.seed, &device)?;
    println!(
        "{} anchors, {} routes ({} stitched; {} stitches of the space dropped: their activations \
         differ in shape), {} stitching layers",
        names.len(),
        net.routes().len(),
        net.routes().len() - names.len(),
        net.dropped(),
        net.layers.len()
    );

    let checkpoint = run.file("checkpoint.safetensors");
    if checkpoint.exists() {
        net = net.with_state(&Weights::load(&checkpoint)?)?;
        println!(
            "resuming from {} after {} of {} epochs",
            checkpoint.display(),
            progress.epochs,
            cfg.epochs
        );
    } else {
        if cfg.init == Init::LeastSquares {
            let mut order: Vec<usize> = (0..splits.train.len()).collect();
            order.shuffle(&mut StdRng::seed_from_u64(cfg.seed));
            order.truncate(cfg.init_samples);
            net = net.init_least_squares(batch::inputs(&splits.train, &order, &cpu()))?;
        }
        progress.init_validation = evaluate(&net.valid(), &splits.val, 256);
        print_initialised(&cfg, &progress.init_validation);
        save_checkpoint(&run, &net, &progress)?;
    }

    let teacher = (cfg.distill_alpha > 0.0)
        .then(|| {
            GraphModel::new(
                &trained.last().expect("anchors").graph,
                weights.last().expect("anchors"),
                &cpu(),
            )
        })
        .transpose()?;
    let joint = JointConfig {
        batch_size: cfg.batch_size,
        optimizer: OptimizerConfig::AdamW {
            lr: cfg.lr,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: cfg.weight_decay,
        },
        epochs: cfg.epochs,
        distill_alpha: cfg.distill_alpha,
        seed: cfg.seed,
    };
    let bar = ProgressBar::new(cfg.epochs as u64).with_style(
        ProgressStyle::with_template(
            "joint training [{bar:30}] {pos}/{len} epochs ({elapsed}, eta {eta}) {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_position(progress.epochs as u64);
    while progress.epochs < cfg.epochs {
        let t0 = Instant::now();
        let (trained_net, loss) = train_epoch(
            net,
            &splits.train,
            &joint,
            progress.epochs,
            teacher.as_ref(),
        );
        net = trained_net;
        progress.train_seconds += t0.elapsed().as_secs_f64();
        progress.epochs += 1;
        progress.losses.push(loss);
        bar.set_message(format!("loss {loss:.4}"));
        bar.inc(1);
        save_checkpoint(&run, &net, &progress)?;
    }
    bar.finish_and_clear();

    // Every route on validation (the frontier is chosen there) and on test, once.
    let plain = net.valid();
    let validation = evaluate(&plain, &splits.val, 256);
    let test = evaluate(&plain, &splits.test, 256);
    let costs = route_costs(&plain);
    let macs: Vec<u64> = costs.iter().map(|c| c.macs).collect();
    let frontier = pareto(&macs, &validation);
    let routes: Vec<RouteReport> = plain
        .routes()
        .iter()
        .enumerate()
        .map(|(i, r)| RouteReport {
            route: describe(r, &names),
            params: costs[i].params,
            macs: costs[i].macs,
            validation_accuracy: validation[i].accuracy,
            validation_loss: validation[i].loss,
            test_accuracy: test[i].accuracy,
            frontier: frontier.contains(&i),
        })
        .collect();
    let report = StitchReport {
        config: &cfg,
        anchors: names,
        dropped_stitches: plain.dropped(),
        stitching_layers: plain.layers.len(),
        routes,
        progress: &progress,
    };
    run.write_json("stitch.json", &report)?;
    write_plot(&run, &report)?;
    print_routes(&report, &splits);
    println!("run written to {}", run.0.display());
    Ok(())
}

/// `anchor` or `front[0..=j] → end[k..]`.
fn describe(route: &Route, names: &[String]) -> String {
    match *route {
        Route::Anchor(a) => names[a].clone(),
        Route::Stitched {
            front, end, stitch, ..
        } => format!(
            "{} blocks 0-{} -> {} blocks {}-",
            names[front], stitch.front, names[end], stitch.end
        ),
    }
}

/// `stitch.svg`: every route's test accuracy against its MACs, anchors and stitches apart,
/// the validation frontier as a line.
fn write_plot(run: &RunDir, report: &StitchReport) -> Result<()> {
    let point = |r: &RouteReport| (r.macs as f64, 100.0 * r.test_accuracy);
    let anchors = report.anchors.len();
    let svg = plot::scatter_svg(
        "SN-Net: test accuracy against MACs per inference",
        "MACs per inference (log)",
        &[
            plot::Series {
                name: "anchors",
                points: report.routes[..anchors].iter().map(point).collect(),
                marker: plot::Marker::Square,
                color: plotters::style::BLUE,
            },
            plot::Series {
                name: "stitches",
                points: report.routes[anchors..].iter().map(point).collect(),
                marker: plot::Marker::Circle,
                color: plotters::style::RED,
            },
        ],
        Some((
            "frontier (chosen on validation)",
            report
                .routes
                .iter()
                .filter(|r| r.frontier)
                .map(point)
                .collect(),
        )),
    )?;
    let path = run.file("stitch.svg");
    tinyfit_graph::write_atomic(&path, svg.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn print_initialised(cfg: &StitchConfig, validation: &[RouteScore]) {
    let mean = validation.iter().map(|s| s.accuracy).sum::<f64>() / validation.len().max(1) as f64;
    let worst = validation
        .iter()
        .map(|s| s.accuracy)
        .fold(f64::INFINITY, f64::min);
    println!(
        "initialised ({:?}): validation accuracy over routes mean {:.2} %, worst {:.2} %",
        cfg.init,
        100.0 * mean,
        100.0 * worst
    );
}

fn print_routes(report: &StitchReport, splits: &tinyfit_data::Splits) {
    println!(
        "{:<44} {:>8} {:>11} {:>9} {:>9}  frontier",
        "route", "params", "MACs", "val %", "test %"
    );
    for r in &report.routes {
        println!(
            "{:<44} {:>8} {:>11} {:>9.2} {:>9.2}  {}",
            r.route,
            crate::report::thousands(r.params),
            crate::report::thousands(r.macs),
            100.0 * r.validation_accuracy,
            100.0 * r.test_accuracy,
            if r.frontier { "*" } else { "" }
        );
    }
    println!(
        "(validation {} samples, test {} samples; frontier: accuracy against MACs on validation, \
         ties broken by validation loss)",
        splits.val.len(),
        splits.test.len()
    );
}

/// Saves the weights, then the progress that refers to them.
fn save_checkpoint(run: &RunDir, net: &SnNet, progress: &Progress) -> Result<()> {
    let path = run.file("checkpoint.safetensors");
    net.state()
        .save(&path)
        .with_context(|| format!("saving {}", path.display()))?;
    run.write_json("progress.json", progress)
}
