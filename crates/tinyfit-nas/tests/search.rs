//! The search loop with a synthetic evaluator (accuracy and latency as functions of the
//! architecture: a test of the bookkeeping, not of any model): a search killed mid-way
//! resumes from its log without re-running finished trials and ends as an uninterrupted one;
//! a log cut mid-line is repaired; shards split the budget and merge; evolution climbs a
//! landscape where better candidates neighbour better ones, where random search only samples.

use std::sync::atomic::{AtomicUsize, Ordering};

use tinyfit_nas::trials::merge;
use tinyfit_nas::{
    Architecture, BlockKind, Cost, Evaluation, Plan, Proposal, Reward, Score, SearchSpace, Shard,
    Stem, Strategy, Trial, TrialLog,
};

fn space() -> SearchSpace {
    SearchSpace {
        stem: Stem {
            width: 8,
            kernel: vec![5],
            stride: 2,
        },
        strides: vec![2, 2],
        blocks: BlockKind::ALL.to_vec(),
        kernels: vec![3, 5, 7],
        expansions: vec![2, 4],
        widths: vec![8, 16, 24, 32],
        depths: vec![1, 2, 3],
        time_steps: vec![64, 96, 128],
        groups: vec![2, 4],
    }
}

fn plan(strategy: Strategy, trials: usize, shard: Shard) -> Plan {
    Plan {
        search: "test".into(),
        space: space(),
        strategy,
        trials,
        batch: 3,
        seed: 7,
        shard,
        reward: Reward::default(),
        target_ms: 10.0,
    }
}

const EVOLUTION: Strategy = Strategy::Evolution {
    population: 6,
    sample: 3,
};

/// Wider and deeper is more accurate and slower; inverted residuals are best.
fn synthetic(p: &Proposal) -> Evaluation {
    let a = &p.architecture;
    let capacity: usize = a.stages.iter().map(|s| s.width * s.depth).sum();
    let family: f64 = a
        .stages
        .iter()
        .map(|s| {
            if s.block == BlockKind::InvertedResidual {
                0.05
            } else {
                0.0
            }
        })
        .sum();
    let latency_ms = capacity as f64 * a.time_steps as f64 / 1000.0;
    Evaluation {
        cost: Cost {
            params: capacity as u64,
            macs: (capacity * a.time_steps) as u64,
            flash_bytes: 0,
            sram_bytes: 0,
            latency_ms,
        },
        score: Ok(Score {
            accuracy: 0.5 + family + 0.3 * (1.0 - (-(capacity as f64) / 60.0).exp()),
            loss: 1.0,
        }),
        seconds: 0.0,
    }
}

fn fits_all(_: &Architecture) -> bool {
    true
}

fn run(
    plan: &Plan,
    dir: &std::path::Path,
    evaluate: &tinyfit_nas::Evaluate,
) -> Result<Vec<Trial>, String> {
    let (mut log, finished) =
        TrialLog::open(&dir.join(plan.shard.log_name()), &plan.search).unwrap();
    plan.run(&mut log, finished, &fits_all, evaluate, &mut |_| {})
        .map_err(|e| e.to_string())
}

#[test]
fn a_killed_search_resumes_without_rerunning_finished_trials() {
    let plan = plan(EVOLUTION, 20, Shard::ALL);
    let whole_dir = tempfile::tempdir().unwrap();
    let whole = run(&plan, whole_dir.path(), &|p| Ok(synthetic(p))).unwrap();
    assert_eq!(whole.len(), 20);
    assert!(whole.iter().skip(6).all(|t| t.parent.is_some()));
    let distinct: std::collections::HashSet<_> =
        whole.iter().map(|t| t.architecture.canonical()).collect();
    assert_eq!(distinct.len(), 20, "an architecture was evaluated twice");

    // The first attempt dies at trial 13 (a kill, as far as the log can tell).
    let dir = tempfile::tempdir().unwrap();
    let err = run(&plan, dir.path(), &|p| {
        if p.index == 13 {
            Err("killed".into())
        } else {
            Ok(synthetic(p))
        }
    })
    .unwrap_err();
    assert!(err.contains("trial 13") && err.contains("killed"), "{err}");
    let (_, logged) = TrialLog::open(&dir.path().join("trials.jsonl"), "test").unwrap();
    assert!(
        logged.len() >= 12 && logged.len() < 15,
        "{} trials logged",
        logged.len()
    );

    let evaluated = AtomicUsize::new(0);
    let resumed = run(&plan, dir.path(), &|p| {
        evaluated.fetch_add(1, Ordering::Relaxed);
        assert!(
            logged.iter().all(|t| t.index != p.index),
            "trial {} ran twice",
            p.index
        );
        Ok(synthetic(p))
    })
    .unwrap();
    assert_eq!(evaluated.into_inner(), 20 - logged.len());
    assert_eq!(resumed, whole);
}

#[test]
fn a_log_line_cut_short_is_dropped_and_its_trial_rerun() {
    let plan = plan(Strategy::Random, 6, Shard::ALL);
    let dir = tempfile::tempdir().unwrap();
    let whole = run(&plan, dir.path(), &|p| Ok(synthetic(p))).unwrap();
    let path = dir.path().join("trials.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, &text[..text.len() - 40]).unwrap();
    let (_, kept) = TrialLog::open(&path, "test").unwrap();
    assert_eq!(kept.len(), 5);
    assert_eq!(
        run(&plan, dir.path(), &|p| Ok(synthetic(p))).unwrap(),
        whole
    );
    // Another search's log is refused, naming the file and line.
    let err = TrialLog::open(&path, "other").err().unwrap().to_string();
    assert!(
        err.contains("trials.jsonl line 1") && err.contains("belongs to search test"),
        "{err}"
    );
}

#[test]
fn shards_split_the_budget_and_merge() {
    let dir = tempfile::tempdir().unwrap();
    let mut all = Vec::new();
    for i in 0..3 {
        let shard = Shard { index: i, count: 3 };
        all.extend(
            run(&plan(EVOLUTION, 20, shard), dir.path(), &|p| {
                Ok(synthetic(p))
            })
            .unwrap(),
        );
    }
    assert_eq!(all.iter().filter(|t| t.shard == 0).count(), 7);
    assert_eq!(all.iter().filter(|t| t.shard == 2).count(), 6);
    let merged = merge(dir.path(), "test").unwrap();
    assert_eq!(merged.len(), 20);
    assert_eq!(merged, all);
    assert_eq!(Shard::parse("2/3").unwrap(), Shard { index: 1, count: 3 });
    assert!(Shard::parse("0/3").is_err() && Shard::parse("4/3").is_err());
}

/// Accuracy grows with the genes shared with one hidden architecture (a landscape where
/// better candidates neighbour better ones); latency is the same for all.
fn needle(p: &Proposal) -> Evaluation {
    let a = &p.architecture;
    let mut matching = usize::from(a.time_steps == 96);
    for s in &a.stages {
        matching += usize::from(s.block == BlockKind::InvertedResidual)
            + usize::from(s.kernel == 5)
            + usize::from(s.expansion == 4)
            + usize::from(s.width == 24)
            + usize::from(s.depth == 2)
            + usize::from(s.groups == 2);
    }
    Evaluation {
        score: Ok(Score {
            accuracy: 0.5 + 0.5 * matching as f64 / 13.0,
            loss: 1.0,
        }),
        ..synthetic(p)
    }
}

#[test]
fn evolution_climbs_where_random_search_samples() {
    // Mean over seeds of the best accuracy after 60 trials.
    let best = |strategy| {
        (0..5)
            .map(|seed| {
                let mut p = plan(strategy, 60, Shard::ALL);
                p.seed = seed;
                p.target_ms = 1e9; // the synthetic latency must not rank candidates
                p.reward = Reward::Hard;
                let dir = tempfile::tempdir().unwrap();
                let trials = run(&p, dir.path(), &|p| Ok(needle(p))).unwrap();
                tinyfit_nas::best(&trials).unwrap().reward
            })
            .sum::<f64>()
            / 5.0
    };
    let (evolution, random) = (best(EVOLUTION), best(Strategy::Random));
    eprintln!("best accuracy after 60 trials: evolution {evolution:.3}, random {random:.3}");
    assert!(evolution > random, "evolution {evolution}, random {random}");
}
