//! `tinyfit ditmos --config FILE`: DiTMoS from a trained strong model — data splitting,
//! classifier pre-training, selector pre-training, adversarial rounds — with a checkpoint after
//! every classifier, phase and round (`--resume` continues from it), the checkpoint chosen on
//! validation (or, labelled, on test as the released code does), and the figures in
//! `ditmos.json`.
//!
//! ```toml
//! [ditmos]
//! strong = "../../runs/train"            # relative to this file
//! feature_layer = "relu4"
//! selector = "../graphs/hapt_selector.json"
//! classifier = "../graphs/hapt_classifier.json"
//! classifiers = 4
//! ```

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use burn::module::Module;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use tinyfit_compress::{PtqConfig, quantize};
use tinyfit_data::Splits;
use tinyfit_ditmos::config::{DitmosConfig, Selection, Splitting};
use tinyfit_ditmos::grouped::Grouping;
use tinyfit_ditmos::model::Ditmos;
use tinyfit_ditmos::selection::SelectionMetrics;
use tinyfit_ditmos::split::{DataSplit, SplitConfig, cluster, features, random};
use tinyfit_ditmos::train::{
    Phase, evaluate, pretrain_classifier, train_classifiers, train_selector,
};
use tinyfit_ditmos::{checkpoint, cka, merge};
use tinyfit_graph::Graph;
use tinyfit_train::{GraphModel, cpu};

use super::eval::int8_metrics;
use crate::report;
use crate::run_dir::{
    Report, ResumableArgs, RunDir, TrainedRun, config_folder, read_toml, resolve,
};

/// The pipeline file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DitmosFile {
    ditmos: DitmosConfig,
}

/// How far a run has got; saved with each checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Progress {
    /// Classifiers pre-trained on their clusters.
    pretrained: usize,
    /// Whether the selector pre-training is done.
    selector_pretrained: bool,
    /// Adversarial rounds done.
    rounds: usize,
    /// Routed accuracy of the saved best checkpoint on the selection split.
    best: Option<f64>,
    /// Where the best was found (`round r, selector|classifier epoch t`).
    best_at: Option<String>,
    /// Validation figures after every adversarial epoch.
    history: Vec<EpochLog>,
    /// Wall time so far, by phase, in seconds.
    seconds: PhaseSeconds,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct PhaseSeconds {
    split: f64,
    pretrain: f64,
    selector_pretrain: f64,
    adversarial: f64,
}

/// One adversarial epoch's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct EpochLog {
    round: usize,
    side: String,
    epoch: usize,
    lr: f64,
    validation: SelectionMetrics,
}

/// What `ditmos.json` records.
#[derive(Serialize)]
struct DitmosReport<'a> {
    config: &'a DitmosConfig,
    selection: Selection,
    cluster_sizes: &'a [usize],
    /// Parameters of the selector and of all classifiers; MACs of one inference (selector and
    /// the routed classifier).
    params: u64,
    macs_per_inference: u64,
    strong_test_accuracy: f64,
    validation: SelectionMetrics,
    test: SelectionMetrics,
    int8: Int8Figures,
    /// Linear CKA on the test split between the last hidden features of the strong model
    /// (row and column 0) and of each classifier.
    cka_test: Vec<Vec<f64>>,
    /// How the classifiers' training passes run: as one grouped network or one by one.
    classifier_training: &'a str,
    progress: &'a Progress,
}

/// The int8 system (`model_int8.tflite`), routed, on the host runtime.
#[derive(Serialize)]
struct Int8Figures {
    validation_accuracy: f64,
    test_accuracy: f64,
    /// Constants of the selector and every classifier.
    const_bytes: usize,
    arena_bytes: usize,
}

/// `tinyfit ditmos`'s arguments.
#[derive(clap::Args)]
pub struct DitmosArgs {
    /// The config (with a [ditmos] section), output folder and `--resume`.
    #[command(flatten)]
    pub run: ResumableArgs,
    /// Number of classifiers m, instead of the config's (for sweeps).
    #[arg(long)]
    pub classifiers: Option<usize>,
    /// Seed, instead of the config's (for sweeps).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Training-data splitting, instead of the config's (`random`: the ablation without
    /// k-means).
    #[arg(long, value_enum)]
    pub splitting: Option<SplittingArg>,
    /// Adversarial rounds, instead of the config's (0: the ablation without them).
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Selector and classifier graphs, instead of the config's (e.g. a pair without feature
    /// aggregation, for the ablation).
    #[arg(long, num_args = 2, value_names = ["SELECTOR", "CLASSIFIER"])]
    pub graphs: Option<Vec<PathBuf>>,
}

/// [`Splitting`] on the command line.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum SplittingArg {
    /// k-means on the strong model's features.
    Kmeans,
    /// Equal random parts.
    Random,
}

/// Runs (or with `--resume` continues) the DiTMoS run of `args.config`.
pub fn run(args: &DitmosArgs) -> Result<()> {
    let (config, resume) = (args.run.config.as_path(), args.run.resume);
    let mut file: DitmosFile = read_toml(config, "config")?;
    let c = &mut file.ditmos;
    resolve(
        config_folder(config),
        [&mut c.strong, &mut c.selector, &mut c.classifier],
    );
    c.classifiers = args.classifiers.unwrap_or(c.classifiers);
    c.seed = args.seed.unwrap_or(c.seed);
    c.adversarial.rounds = args.rounds.unwrap_or(c.adversarial.rounds);
    if let Some(splitting) = args.splitting {
        c.splitting = match splitting {
            SplittingArg::Kmeans => Splitting::KMeans,
            SplittingArg::Random => Splitting::Random,
        };
    }
    if let Some([selector, classifier]) = args.graphs.as_deref() {
        c.selector = selector.clone();
        c.classifier = classifier.clone();
    }
    c.validate()
        .map_err(|e| anyhow!("config {}: {e}", config.display()))?;
    let cfg = file.ditmos;
    let run = args.run.run_dir();
    let mut progress: Progress = run.start_or_resume(&cfg, resume, "DiTMoS", "ditmos")?;

    let strong = RunDir(cfg.strong.clone());
    let trained = strong
        .load()
        .with_context(|| format!("loading the strong model {}", cfg.strong.display()))?;
    let strong_report: Report = strong.read_json("report.json")?;
    let splits = trained.splits()?;
    let m = cfg.classifiers;
    let selector = routing_to(Graph::load(&cfg.selector)?, m)?;
    let classifier = Graph::load(&cfg.classifier)?;
    let classifier_training = match Grouping::new(&classifier, m) {
        Ok(_) => "one grouped network".to_string(),
        Err(why) => format!("one by one ({why})"),
    };
    println!("the {m} classifiers train as {classifier_training}");

    // 1. Diverse data splitting.
    let split: DataSplit = if run.file("split.json").exists() {
        run.read_json("split.json")?
    } else {
        let t0 = Instant::now();
        let split = match cfg.splitting {
            Splitting::KMeans => kmeans_split(&cfg, &trained, &splits)?,
            Splitting::Random => {
                println!(
                    "splitting {} training windows into {m} random parts (no k-means)",
                    splits.train.len()
                );
                random(splits.train.len(), splits.val.len(), m, cfg.seed)?
            }
        };
        run.write_json("split.json", &split)?;
        progress.seconds.split = t0.elapsed().as_secs_f64();
        split
    };
    println!("cluster sizes: {:?}", split.sizes);

    let device = cpu().autodiff();
    let latest = run.file("checkpoint");
    let mut model = if checkpoint::exists(&latest) {
        let w = checkpoint::load(&latest, m)?;
        let cs: Vec<Option<&tinyfit_graph::Weights>> = w.classifiers.iter().map(Some).collect();
        Ditmos::new(
            &selector,
            &classifier,
            m,
            (Some(&w.selector), &cs),
            cfg.seed,
            &device,
        )?
    } else {
        Ditmos::new(&selector, &classifier, m, (None, &[]), cfg.seed, &device)?
    };
    let total = m * cfg.pretrain.epochs
        + cfg.selector_pretrain.epochs
        + 2 * cfg.adversarial.rounds * cfg.adversarial.epochs;
    let done = progress.pretrained * cfg.pretrain.epochs
        + usize::from(progress.selector_pretrained) * cfg.selector_pretrain.epochs
        + 2 * progress.rounds * cfg.adversarial.epochs;
    let bar = ProgressBar::new(total as u64).with_style(
        ProgressStyle::with_template(
            "{msg:<28} [{bar:30}] {pos}/{len} epochs ({elapsed}, eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_position(done as u64);
    if done > 0 {
        bar.suspend(|| {
            println!(
                "resuming after {done} of {total} epochs (from {})",
                latest.display()
            )
        });
    }

    // 2. Classifier pre-training on the clusters.
    while progress.pretrained < m {
        let i = progress.pretrained;
        bar.set_message(format!("pre-training classifier {}", i + 1));
        let t0 = Instant::now();
        let members = split.members(i);
        let one = Phase {
            epochs: 1,
            ..cfg.pretrain
        };
        for epoch in 0..cfg.pretrain.epochs {
            model = pretrain_classifier(
                model,
                i,
                &splits.train,
                &members,
                &one,
                epoch,
                cfg.batch_size,
                cfg.seed,
            );
            bar.inc(1);
        }
        progress.seconds.pretrain += t0.elapsed().as_secs_f64();
        progress.pretrained += 1;
        save_checkpoint(&run, &model, &progress)?;
    }

    // 3. Selector pre-training.
    if !progress.selector_pretrained {
        bar.set_message("pre-training the selector");
        let t0 = Instant::now();
        for epoch in 0..cfg.selector_pretrain.epochs {
            let one = Phase {
                epochs: 1,
                ..cfg.selector_pretrain
            };
            model = train_selector(
                model,
                &splits.train,
                &one,
                epoch,
                cfg.selector_target,
                cfg.batch_size,
                cfg.seed,
            );
            bar.inc(1);
        }
        progress.seconds.selector_pretrain = t0.elapsed().as_secs_f64();
        progress.selector_pretrained = true;
        save_checkpoint(&run, &model, &progress)?;
    }

    // 4. Adversarial rounds, the checkpoint chosen after every epoch.
    let adv = cfg.adversarial;
    let chooser = match cfg.selection {
        Selection::Validation => &splits.val,
        Selection::TestCompatibility => &splits.test,
    };
    while progress.rounds < adv.rounds {
        let r = progress.rounds;
        let t0 = Instant::now();
        for side in ["selector", "classifiers"] {
            bar.set_message(format!("round {}/{}: {side}", r + 1, adv.rounds));
            for t in 0..adv.epochs {
                let offset = adv.epochs * r + t;
                let one = Phase {
                    epochs: 1,
                    lr: adv.lr,
                    halve_every: adv.halve_every,
                };
                model = if side == "selector" {
                    train_selector(
                        model,
                        &splits.train,
                        &one,
                        offset,
                        cfg.selector_target,
                        cfg.batch_size,
                        cfg.seed,
                    )
                } else {
                    train_classifiers(
                        model,
                        &splits.train,
                        &one,
                        offset,
                        &cfg.loss,
                        cfg.batch_size,
                        cfg.seed,
                    )
                };
                let frozen = model.valid();
                let validation = evaluate(&frozen, &splits.val, 256);
                let score = match cfg.selection {
                    Selection::Validation => validation.accuracy,
                    Selection::TestCompatibility => evaluate(&frozen, chooser, 256).accuracy,
                };
                if progress.best.is_none_or(|b| score >= b) {
                    checkpoint::save(&model, &run.file("best"))
                        .with_context(|| format!("saving {}", run.file("best").display()))?;
                    progress.best = Some(score);
                    progress.best_at = Some(format!("round {}, {side} epoch {}", r + 1, t + 1));
                }
                progress.history.push(EpochLog {
                    round: r,
                    side: side.to_string(),
                    epoch: t,
                    lr: one.lr_at(offset),
                    validation,
                });
                bar.inc(1);
            }
        }
        progress.seconds.adversarial += t0.elapsed().as_secs_f64();
        progress.rounds += 1;
        let last = progress.history.last().map(|h| h.validation.clone());
        if let Some(v) = last {
            bar.suspend(|| {
                println!(
                    "round {:>3}: validation routed {:.2} %, union {:.2} %, routing {:.2} %",
                    r + 1,
                    100.0 * v.accuracy,
                    100.0 * v.union_accuracy,
                    100.0 * v.routing_accuracy
                )
            });
        }
        save_checkpoint(&run, &model, &progress)?;
    }
    bar.finish_and_clear();

    // 5. The chosen checkpoint, tested once.
    let best_dir = if checkpoint::exists(&run.file("best")) {
        run.file("best")
    } else {
        latest.clone()
    };
    let w = checkpoint::load(&best_dir, m)?;
    let cs: Vec<Option<&tinyfit_graph::Weights>> = w.classifiers.iter().map(Some).collect();
    let plain = cpu();
    let best = Ditmos::new(
        &selector,
        &classifier,
        m,
        (Some(&w.selector), &cs),
        cfg.seed,
        &plain,
    )?;
    let validation = evaluate(&best, &splits.val, 256);
    let test = evaluate(&best, &splits.test, 256);
    let int8 = quantize_system(&run, &selector, &classifier, &w, &splits)?;
    let strong_model = GraphModel::new(&trained.graph, &trained.weights, &plain)?;
    let cka = cka::similarity_matrix(&strong_model, &best, &splits.test, 256);
    let (s, c) = (selector.analyze()?, classifier.analyze()?);
    let rep = DitmosReport {
        config: &cfg,
        selection: cfg.selection,
        cluster_sizes: &split.sizes,
        params: s.params() + m as u64 * c.params(),
        macs_per_inference: s.macs() + c.macs(),
        strong_test_accuracy: strong_report.test.accuracy,
        validation,
        test,
        int8,
        cka_test: cka,
        classifier_training: &classifier_training,
        progress: &progress,
    };
    run.write_json("ditmos.json", &rep)?;
    print_summary(&rep, &splits);
    Ok(())
}

/// k-means on the strong model's features of the training windows; validation windows go to
/// their nearest centroid.
fn kmeans_split(cfg: &DitmosConfig, trained: &TrainedRun, splits: &Splits) -> Result<DataSplit> {
    println!(
        "splitting {} training windows into {} clusters of the strong model's '{}' features",
        splits.train.len(),
        cfg.classifiers,
        cfg.feature_layer
    );
    let device = cpu();
    let strong_model = GraphModel::new(&trained.graph, &trained.weights, &device)?;
    let f_train = features(&strong_model, &cfg.feature_layer, &splits.train, 256)?;
    let f_val = features(&strong_model, &cfg.feature_layer, &splits.val, 256)?;
    Ok(cluster(
        &f_train,
        &f_val,
        &SplitConfig {
            clusters: cfg.classifiers,
            feature_layer: cfg.feature_layer.clone(),
            restarts: cfg.restarts,
            seed: cfg.seed,
        },
    )?)
}

/// Quantises the selector and classifiers as one graph ([`merge::merged`]), calibrated on
/// training windows, writes `model_int8.tflite` and measures the routed int8 system.
fn quantize_system(
    run: &RunDir,
    selector: &Graph,
    classifier: &Graph,
    weights: &checkpoint::SavedWeights,
    splits: &Splits,
) -> Result<Int8Figures> {
    let (graph, merged_weights) = merge::merged(selector, classifier, weights)?;
    let quant = quantize(&graph, &merged_weights, &splits.train, PtqConfig::default())
        .context("post-training quantisation of the DiTMoS system")?;
    let program = tinyfit_deploy::lower(&quant)?;
    let bytes = tinyfit_deploy::tflite::export_lowered(&quant, &program, Default::default())
        .context("TFLite export")?;
    let out = run.file("model_int8.tflite");
    tinyfit_graph::write_atomic(&out, &bytes)
        .with_context(|| format!("cannot write {}", out.display()))?;
    let program = program.routed()?;
    let hidden = ProgressBar::hidden();
    Ok(Int8Figures {
        validation_accuracy: int8_metrics(&program, &splits.val, &hidden)?.accuracy,
        test_accuracy: int8_metrics(&program, &splits.test, &hidden)?.accuracy,
        const_bytes: program.const_bytes(),
        arena_bytes: program.memory().arena_bytes,
    })
}

/// The selector with its routing layer (its first output, a linear layer) sized to `m`.
fn routing_to(mut selector: Graph, m: usize) -> Result<Graph> {
    let first = selector
        .outputs
        .first()
        .cloned()
        .or_else(|| selector.nodes.last().map(|n| n.name.clone()))
        .unwrap_or_default();
    let node = selector
        .nodes
        .iter_mut()
        .find(|n| n.name == first)
        .ok_or_else(|| anyhow!("the selector '{}' has no output node", selector.name))?;
    match &mut node.op {
        tinyfit_graph::Op::Linear(l) => l.out_features = m,
        other => bail!(
            "the selector's first output '{first}' must be a linear layer (the routing logits), not {}",
            other.kind()
        ),
    }
    selector.analyze()?;
    Ok(selector)
}

/// Saves the weights, then the progress that refers to them.
fn save_checkpoint(run: &RunDir, model: &Ditmos, progress: &Progress) -> Result<()> {
    checkpoint::save(model, &run.file("checkpoint"))
        .with_context(|| format!("saving {}", run.file("checkpoint").display()))?;
    run.write_json("progress.json", progress)
}

fn print_summary(rep: &DitmosReport, splits: &Splits) {
    let pct = |v: f64| format!("{:.2} %", 100.0 * v);
    println!(
        "DiTMoS, m = {}: {} parameters in all, {} MACs per inference (selector + one classifier)",
        rep.config.classifiers,
        report::thousands(rep.params),
        report::thousands(rep.macs_per_inference)
    );
    if rep.selection == Selection::TestCompatibility {
        println!(
            "CHECKPOINT CHOSEN ON THE TEST SPLIT (the released code's protocol): the test figure is optimistic"
        );
    }
    for (name, m, n) in [
        ("validation", &rep.validation, splits.val.len()),
        ("test", &rep.test, splits.test.len()),
    ] {
        println!(
            "{name} ({n} windows): routed {}, union {}, routing {}; right classifiers per window {:?}; each classifier {:?}",
            pct(m.accuracy),
            pct(m.union_accuracy),
            pct(m.routing_accuracy),
            m.correct_histogram,
            m.classifier_accuracy
                .iter()
                .map(|a| format!("{:.1}", 100.0 * a))
                .collect::<Vec<_>>()
        );
    }
    let pairs: Vec<String> = (1..rep.cka_test.len())
        .flat_map(|i| (i + 1..rep.cka_test.len()).map(move |j| (i, j)))
        .map(|(i, j)| format!("{:.2}", rep.cka_test[i][j]))
        .collect();
    let to_strong: Vec<String> = rep.cka_test[0][1..]
        .iter()
        .map(|c| format!("{c:.2}"))
        .collect();
    println!(
        "linear CKA on test (last hidden features): classifier pairs [{}]; each classifier to the strong model [{}]",
        pairs.join(", "),
        to_strong.join(", ")
    );
    println!(
        "int8 (model_int8.tflite, routed on tinyfit's runtime): validation {}, test {}; constants {} B, arena {} B",
        pct(rep.int8.validation_accuracy),
        pct(rep.int8.test_accuracy),
        report::thousands(rep.int8.const_bytes as u64),
        report::thousands(rep.int8.arena_bytes as u64)
    );
    println!(
        "strong model test accuracy {}; best checkpoint at {}",
        pct(rep.strong_test_accuracy),
        rep.progress.best_at.as_deref().unwrap_or("the end")
    );
}
