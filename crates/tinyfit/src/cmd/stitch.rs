//! `tinyfit stitch --config F`: SN-Net model stitching over trained anchors. Builds the
//! stitching space, initialises the stitching layers (least squares or, for the ablation,
//! PyTorch's default), trains anchors and layers jointly with one route drawn per step, then
//! evaluates every route on validation and test and keeps the accuracy–MACs frontier chosen on
//! validation (`stitch.json`, plotted in `stitch.svg`). Every route is then quantised — all
//! of them together, so that shared layers are one set of int8 constants — and measured in
//! int8, with the board's latency estimate where a board is configured
//! (`stitch_latency.svg`). Checkpoints after every epoch; `--resume` continues an interrupted
//! run.

use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use burn::module::Module;
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use tinyfit_deploy::boards;
use tinyfit_graph::Weights;
use tinyfit_stitch::anchor::Anchor;
use tinyfit_stitch::config::{Init, LayerSharing, StitchConfig};
use tinyfit_stitch::frontier::pareto;
use tinyfit_stitch::model::SnNet;
use tinyfit_stitch::space::{Route, Space};
use tinyfit_stitch::train::{JointConfig, RouteScore, evaluate, train_epoch};
use tinyfit_train::{GraphModel, OptimizerConfig, batch, cpu};

use crate::cmd::stitch_baselines::{self, BaselineReport};
use crate::cmd::stitch_int8::{self, Int8Route, PackageReport};
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
    /// The route quantised with the SN-Net's shared int8 quantisation.
    int8: Int8Route,
}

/// What `stitch.json` records.
#[derive(Serialize)]
struct StitchReport<'a> {
    config: &'a StitchConfig,
    anchors: Vec<String>,
    /// Stitches of the space that could not be stitched (shapes do not line up).
    dropped_stitches: usize,
    stitching_layers: usize,
    /// The switchable int8 package of every route.
    package: PackageReport,
    /// Independently trained models of intermediate size, against the frontier.
    baselines: Vec<BaselineReport>,
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
    resolve(config_folder(config), &mut cfg.baselines);
    if let Some(init) = args.init {
        cfg.init = match init {
            InitArg::LeastSquares => Init::LeastSquares,
            InitArg::Default => Init::Default,
        };
    }
    cfg.epochs = args.epochs.unwrap_or(cfg.epochs);
    cfg.validate()
        .map_err(|e| anyhow!("config {}: {e}", config.display()))?;
    // Baselines are measured at the end: refuse missing ones before any training.
    if let Some(missing) = cfg
        .baselines
        .iter()
        .find(|p| !p.join("report.json").is_file())
    {
        bail!(
            "config {}: stitch.baselines lists {}, which is no finished training run (it has no \
             report.json); train the baselines first (scripts/stitch_baselines.py) or leave it out",
            config.display(),
            missing.display()
        );
    }
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
        if !t.experiment.data.same_data(&trained[0].experiment.data) || t.norm != trained[0].norm {
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
    let mut space = Space::new(&depths, cfg.direction.into(), cfg.window.into());
    if cfg.layers == LayerSharing::PerStitch {
        space = space.with_layer_per_stitch();
    }
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

    if cfg.freeze_batch_norms {
        net = net.with_frozen_batch_norms();
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
    let models = plain.route_models();
    let analyses = models
        .iter()
        .map(|m| m.graph.analyze())
        .collect::<Result<Vec<_>, _>>()?;
    let macs: Vec<u64> = analyses.iter().map(|a| a.macs()).collect();
    let frontier = pareto(&macs, &validation);
    let board = cfg
        .board
        .as_deref()
        .map(boards::board)
        .transpose()
        .map_err(|e| anyhow!("config {}: stitch.board: {e}", config.display()))?;
    let (int8, package) = stitch_int8::deploy(&run, &models, &splits, board)?;
    let mut baselines = stitch_baselines::measure(
        &cfg.baselines,
        &trained[0],
        &splits,
        board,
        &run.file("baseline_package"),
    )?;
    let routes: Vec<RouteReport> = plain
        .routes()
        .iter()
        .zip(int8)
        .enumerate()
        .map(|(i, (r, int8))| RouteReport {
            route: describe(r, &names),
            params: analyses[i].params(),
            macs: macs[i],
            validation_accuracy: validation[i].accuracy,
            validation_loss: validation[i].loss,
            test_accuracy: test[i].accuracy,
            frontier: frontier.contains(&i),
            int8,
        })
        .collect();
    compare_with_frontier(&mut baselines, &routes);
    let report = StitchReport {
        config: &cfg,
        anchors: names,
        dropped_stitches: plain.dropped(),
        stitching_layers: plain.layers.len(),
        package,
        routes,
        baselines,
        progress: &progress,
    };
    run.write_json("stitch.json", &report)?;
    write_plots(&run, &report)?;
    print_routes(&report, &splits);
    let int8: Vec<&Int8Route> = report.routes.iter().map(|r| &r.int8).collect();
    stitch_int8::print_package(&report.package, &int8);
    print_baselines(&report.baselines);
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

/// A plot of routes: its file, title, x-axis label and the point of a route and of a baseline
/// (none: left out).
struct RoutePlot {
    file: &'static str,
    title: &'static str,
    x_label: &'static str,
    point: fn(&RouteReport) -> Option<(f64, f64)>,
    baseline: fn(&BaselineReport) -> Option<(f64, f64)>,
}

/// The plots: float test accuracy against MACs (`stitch.svg`), and int8 test accuracy against
/// the board's estimated latency (`stitch_latency.svg`, where routes have an estimate).
const PLOTS: [RoutePlot; 2] = [
    RoutePlot {
        file: "stitch.svg",
        title: "SN-Net: test accuracy (float) against MACs per inference",
        x_label: "MACs per inference (log)",
        point: |r| Some((r.macs as f64, 100.0 * r.test_accuracy)),
        baseline: |b| Some((b.macs as f64, 100.0 * b.test_accuracy)),
    },
    RoutePlot {
        file: "stitch_latency.svg",
        title: "SN-Net: int8 test accuracy against estimated latency",
        x_label: "estimated latency on the board, ms (log)",
        point: |r| {
            r.int8
                .latency_ms
                .map(|ms| (ms, 100.0 * r.int8.test_accuracy))
        },
        baseline: |b| {
            b.int8
                .latency_ms
                .map(|ms| (ms, 100.0 * b.int8.test_accuracy))
        },
    },
];

/// Every plot of [`PLOTS`] that has points: anchors and stitches apart, the validation
/// frontier as a line.
fn write_plots(run: &RunDir, report: &StitchReport) -> Result<()> {
    let anchors = report.anchors.len();
    for plot in &PLOTS {
        let points = |routes: &[RouteReport]| -> Vec<(f64, f64)> {
            routes.iter().filter_map(plot.point).collect()
        };
        let frontier: Vec<&RouteReport> = report.routes.iter().filter(|r| r.frontier).collect();
        if points(&report.routes).is_empty() {
            continue;
        }
        let svg = plot::scatter_svg(
            plot.title,
            plot.x_label,
            &[
                plot::Series {
                    name: "anchors",
                    points: points(&report.routes[..anchors]),
                    marker: plot::Marker::Square,
                    color: plotters::style::BLUE,
                },
                plot::Series {
                    name: "stitches",
                    points: points(&report.routes[anchors..]),
                    marker: plot::Marker::Circle,
                    color: plotters::style::RED,
                },
                plot::Series {
                    name: "trained alone (intermediate sizes)",
                    points: report.baselines.iter().filter_map(plot.baseline).collect(),
                    marker: plot::Marker::Triangle,
                    color: plotters::style::RGBColor(0, 140, 60),
                },
            ],
            Some((
                "frontier (chosen on validation)",
                frontier.into_iter().filter_map(plot.point).collect(),
            )),
        )?;
        let path = run.file(plot.file);
        tinyfit_graph::write_atomic(&path, svg.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
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
        "{:<44} {:>8} {:>11} {:>7} {:>7} {:>8} {:>8} {:>8} {:>7} {:>7}  frontier",
        "route",
        "params",
        "MACs",
        "val %",
        "test %",
        "int8 val",
        "int8 tst",
        "flash B",
        "arena B",
        "ms"
    );
    for r in &report.routes {
        println!(
            "{:<44} {:>8} {:>11} {:>7.2} {:>7.2} {:>8.2} {:>8.2} {:>8} {:>7} {:>7}  {}",
            r.route,
            crate::report::thousands(r.params),
            crate::report::thousands(r.macs),
            100.0 * r.validation_accuracy,
            100.0 * r.test_accuracy,
            100.0 * r.int8.validation_accuracy,
            100.0 * r.int8.test_accuracy,
            crate::report::thousands(r.int8.const_bytes as u64),
            crate::report::thousands(r.int8.arena_bytes as u64),
            milliseconds(r.int8.latency_ms),
            if r.frontier { "*" } else { "" }
        );
    }
    println!(
        "(validation {} samples, test {} samples; frontier: float accuracy against MACs on \
         validation, ties broken by validation loss; all routes in one package: {} B of \
         constants)",
        splits.val.len(),
        splits.test.len(),
        crate::report::thousands(report.package.const_bytes as u64)
    );
}

/// A latency for the tables, `-` where there is none.
fn milliseconds(ms: Option<f64>) -> String {
    ms.map_or_else(|| "-".to_string(), |ms| format!("{ms:.2}"))
}

/// Sets each baseline's frontier route: of the routes on the validation frontier that cost no
/// more MACs, the most accurate on validation (the frontier's costliest one within budget).
fn compare_with_frontier(baselines: &mut [BaselineReport], routes: &[RouteReport]) {
    for b in baselines {
        let best = routes
            .iter()
            .filter(|r| r.frontier && r.macs <= b.macs)
            .max_by(|x, y| {
                x.validation_accuracy
                    .total_cmp(&y.validation_accuracy)
                    .then(y.validation_loss.total_cmp(&x.validation_loss))
            });
        b.frontier_route = best.map(|r| r.route.clone());
        b.frontier_test_gain = best.map(|r| r.test_accuracy - b.test_accuracy);
    }
}

fn print_baselines(baselines: &[BaselineReport]) {
    if baselines.is_empty() {
        return;
    }
    println!(
        "\n{:<14} {:>11} {:>7} {:>7} {:>8} {:>7}  best frontier route within its MACs (test gain)",
        "trained alone", "MACs", "val %", "test %", "int8 tst", "ms"
    );
    for b in baselines {
        println!(
            "{:<14} {:>11} {:>7.2} {:>7.2} {:>8.2} {:>7}  {}",
            b.run,
            crate::report::thousands(b.macs),
            100.0 * b.validation_accuracy,
            100.0 * b.test_accuracy,
            100.0 * b.int8.test_accuracy,
            milliseconds(b.int8.latency_ms),
            match (&b.frontier_route, b.frontier_test_gain) {
                (Some(r), Some(g)) => format!("{r} ({:+.2} points)", 100.0 * g),
                _ => "(no frontier route this cheap)".to_string(),
            }
        );
    }
    let wins = baselines
        .iter()
        .filter(|b| b.frontier_test_gain.is_some_and(|g| g >= 0.0))
        .count();
    println!(
        "the stitched frontier matches or beats the model trained alone at {wins} of {} \
         intermediate budgets (float test accuracy; routes chosen on validation)",
        baselines.len()
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
