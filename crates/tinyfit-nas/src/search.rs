//! The search loop: proposals from a strategy, evaluated a batch at a time in parallel, each
//! trial logged as it finishes; a rerun replays the log and evaluates only what is missing.
//!
//! Every proposal is a pure function of the seed, its index and the trials before its batch,
//! so a resumed search proposes exactly what the uninterrupted one would have.

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use crate::architecture::Architecture;
use crate::error::NasError;
use crate::reward::Reward;
use crate::space::SearchSpace;
use crate::trials::{Cost, Shard, Trial, TrialLog};

/// How candidates are proposed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Strategy {
    /// Regularized evolution (Real et al., AAAI 2019): `population` random candidates, then
    /// each new one mutates the best of `sample` drawn from the `population` most recent, and
    /// the oldest leaves (aging).
    Evolution {
        /// Candidates alive at once.
        population: usize,
        /// Tournament size.
        sample: usize,
    },
    /// Every candidate drawn uniformly from the space (the baseline).
    Random,
}

impl Strategy {
    /// The name printed in reports.
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Evolution { .. } => "regularized evolution",
            Strategy::Random => "random search",
        }
    }
}

/// A candidate to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    /// Index within the shard's search.
    pub index: usize,
    /// The candidate.
    pub architecture: Architecture,
    /// The trial it mutates, if any.
    pub parent: Option<usize>,
}

/// A trained candidate's validation figures after the proxy schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// Validation accuracy (0–1), the reward's ACC.
    pub accuracy: f64,
    /// Validation loss: ranks candidates of equal reward (a saturated validation split gives
    /// many the same accuracy).
    pub loss: f64,
}

/// What evaluating a candidate measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Its cost on the board.
    pub cost: Cost,
    /// Validation figures after the proxy schedule, or why it was not trained.
    pub score: Result<Score, String>,
    /// Wall time.
    pub seconds: f64,
}

/// Everything that decides which candidates a search proposes and how it ranks them.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The search's fingerprint, stamped on every trial.
    pub search: String,
    /// The choices.
    pub space: SearchSpace,
    /// The strategy.
    pub strategy: Strategy,
    /// Trials in the whole search (all shards).
    pub trials: usize,
    /// Candidates proposed together and evaluated in parallel.
    pub batch: usize,
    /// The search's seed.
    pub seed: u64,
    /// This machine's shard.
    pub shard: Shard,
    /// The reward.
    pub reward: Reward,
    /// The latency target of the reward, ms.
    pub target_ms: f64,
}

/// Checks a candidate against the hard limits without training it (flash and SRAM of its
/// int8 program); mutations and samples that fail are redrawn.
pub type Fits<'a> = dyn Fn(&Architecture) -> bool + Sync + 'a;

/// Evaluates one candidate: cost, then (within the limits) proxy training.
pub type Evaluate<'a> = dyn Fn(&Proposal) -> Result<Evaluation, String> + Sync + 'a;

/// Draws before giving up on finding a candidate within the limits.
const MAX_DRAWS: usize = 1000;

impl Plan {
    /// Checks the numbers a config gives.
    pub fn validate(&self) -> Result<(), NasError> {
        self.space.validate().map_err(NasError::Config)?;
        if self.trials == 0 || self.batch == 0 {
            return Err(NasError::Config(
                "search.trials and search.parallel must be at least 1".into(),
            ));
        }
        if let Strategy::Evolution { population, sample } = self.strategy
            && (sample == 0 || sample > population)
        {
            return Err(NasError::Config(format!(
                "search.strategy: a tournament of {sample} from a population of {population}; expected 1 ≤ sample ≤ population"
            )));
        }
        if self.target_ms.is_nan() || self.target_ms <= 0.0 {
            return Err(NasError::Config(format!(
                "search.latency_target_ms = {}; expected a positive latency",
                self.target_ms
            )));
        }
        Ok(())
    }

    /// The proposal for trial `index`, given the trials before its batch (`history`, in
    /// index order) and the architectures proposed before it in its batch (`batch`).
    ///
    /// Proposals are new — their graphs differ from every earlier one's
    /// ([`Architecture::canonical`]): training is seeded, so evaluating an architecture again
    /// would repeat its figures and waste a trial. A mutation that repeats one is redrawn; after
    /// `MAX_DRAWS / 2` such draws the proposal is drawn from the whole space instead. `None`
    /// when no new candidate within the limits was found in `MAX_DRAWS` draws.
    pub fn propose(
        &self,
        index: usize,
        history: &[Trial],
        batch: &[Architecture],
        fits: &Fits,
    ) -> Option<Proposal> {
        let seed = self.shard.seed(self.seed) ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut rng = StdRng::seed_from_u64(seed);
        let parent = match self.strategy {
            Strategy::Evolution { population, sample } if index >= population => {
                let alive = &history[history.len().saturating_sub(population)..];
                let drawn =
                    rand::seq::index::sample(&mut rng, alive.len(), sample.min(alive.len()));
                drawn
                    .into_iter()
                    .map(|i| &alive[i])
                    .max_by(|a, b| ranking(a, b))
            }
            _ => None,
        };
        let seen = |a: &Architecture| {
            let a = a.canonical();
            batch.iter().any(|b| b.canonical() == a)
                || history.iter().any(|t| t.architecture.canonical() == a)
        };
        (0..MAX_DRAWS).find_map(|draw| {
            let (architecture, parent) = match parent {
                Some(p) if draw < MAX_DRAWS / 2 => {
                    (self.space.mutate(&p.architecture, &mut rng), Some(p.index))
                }
                _ => (self.space.sample(&mut rng), None),
            };
            (!seen(&architecture) && fits(&architecture)).then_some(Proposal {
                index,
                architecture,
                parent,
            })
        })
    }

    /// Runs this shard's search to its budget: `finished` are the trials already in `log`;
    /// the rest are proposed a batch at a time, evaluated in parallel (one thread per
    /// candidate), and appended to `log` as each finishes; `done` sees every new trial.
    /// Returns all the shard's trials in index order.
    pub fn run(
        &self,
        log: &mut TrialLog,
        finished: Vec<Trial>,
        fits: &Fits,
        evaluate: &Evaluate,
        done: &mut dyn FnMut(&Trial),
    ) -> Result<Vec<Trial>, NasError> {
        self.validate()?;
        let budget = self.shard.budget(self.trials);
        let mut by_index: Vec<Option<Trial>> = vec![None; budget];
        for t in finished {
            if t.shard != self.shard.index || t.index >= budget {
                return Err(NasError::Config(format!(
                    "the log holds trial {} of shard {}, outside shard {}'s {budget} trials; resume with the same --shard and trial count",
                    t.index,
                    t.shard + 1,
                    self.shard
                )));
            }
            let slot = t.index;
            by_index[slot] = Some(t);
        }
        let mut start = 0;
        while start < budget {
            let end = (start + self.batch).min(budget);
            let history: Vec<Trial> = by_index[..start].iter().flatten().cloned().collect();
            // The batch's proposals in index order; a finished trial's is its logged one.
            let mut batch: Vec<Architecture> = Vec::new();
            let mut missing: Vec<Proposal> = Vec::new();
            for (i, finished) in by_index.iter().enumerate().take(end).skip(start) {
                let architecture = match finished {
                    Some(t) => t.architecture.clone(),
                    None => {
                        let p = self.propose(i, &history, &batch, fits).ok_or_else(|| {
                            NasError::Config(format!(
                                "no new candidate within the flash and SRAM limits in {MAX_DRAWS} draws from the space; widen the space or raise the limits"
                            ))
                        })?;
                        let a = p.architecture.clone();
                        missing.push(p);
                        a
                    }
                };
                batch.push(architecture);
            }
            // Trials are logged on this thread as their evaluations arrive.
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::scope(|scope| -> Result<(), NasError> {
                for p in &missing {
                    let tx = tx.clone();
                    scope.spawn(move || {
                        let _ = tx.send((p, evaluate(p)));
                    });
                }
                drop(tx);
                for (p, outcome) in rx {
                    let e = outcome.map_err(|message| NasError::Evaluation {
                        index: p.index,
                        architecture: p.architecture.describe(),
                        message,
                    })?;
                    let trial = self.trial(p, e);
                    log.append(&trial)?;
                    done(&trial);
                    by_index[p.index] = Some(trial);
                }
                Ok(())
            })?;
            start = end;
        }
        Ok(by_index.into_iter().flatten().collect())
    }

    fn trial(&self, p: &Proposal, e: Evaluation) -> Trial {
        let (score, over_limits) = match e.score {
            Ok(s) => (Some(s), None),
            Err(why) => (None, Some(why)),
        };
        let val_accuracy = score.map(|s| s.accuracy);
        Trial {
            search: self.search.clone(),
            shard: self.shard.index,
            index: p.index,
            architecture: p.architecture.clone(),
            parent: p.parent,
            cost: e.cost,
            val_accuracy,
            val_loss: score.map(|s| s.loss),
            over_limits,
            reward: val_accuracy.map_or(0.0, |a| {
                self.reward.value(a, e.cost.latency_ms, self.target_ms)
            }),
            seconds: e.seconds,
        }
    }
}

/// The trained trials no other beats on both validation accuracy and latency, by latency.
pub fn pareto(trials: &[Trial]) -> Vec<&Trial> {
    let mut trained: Vec<&Trial> = trials.iter().filter(|t| t.val_accuracy.is_some()).collect();
    trained.sort_by(|a, b| {
        a.cost.latency_ms.total_cmp(&b.cost.latency_ms).then(
            b.val_accuracy
                .unwrap_or(0.0)
                .total_cmp(&a.val_accuracy.unwrap_or(0.0)),
        )
    });
    let mut best = f64::NEG_INFINITY;
    trained
        .into_iter()
        .filter(|t| {
            let a = t.val_accuracy.unwrap_or(0.0);
            let keep = a > best;
            best = best.max(a);
            keep
        })
        .collect()
}

/// The trial with the highest reward (ties: the lower validation loss, then the earlier shard
/// and index).
pub fn best(trials: &[Trial]) -> Option<&Trial> {
    trials
        .iter()
        .filter(|t| t.val_accuracy.is_some())
        .max_by(|a, b| ranking(a, b))
}

/// Orders trials from worst to best: reward, then lower validation loss, then earlier shard
/// and index.
fn ranking(a: &Trial, b: &Trial) -> std::cmp::Ordering {
    let loss = |t: &Trial| t.val_loss.unwrap_or(f64::INFINITY);
    a.reward
        .total_cmp(&b.reward)
        .then(loss(b).total_cmp(&loss(a)))
        .then((b.shard, b.index).cmp(&(a.shard, a.index)))
}
