//! Classification metrics computed on the host from logits.

use serde::{Deserialize, Serialize};

/// Loss, accuracy, macro-F1 and confusion matrix of one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Samples evaluated.
    pub samples: usize,
    /// Mean cross-entropy.
    pub loss: f64,
    /// Fraction of samples whose arg-max logit is the label.
    pub accuracy: f64,
    /// Unweighted mean of per-class F1 over the classes that occur in labels or predictions.
    pub macro_f1: f64,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
}

/// Accumulates predictions batch by batch.
#[derive(Debug, Clone)]
pub struct MetricsBuilder {
    loss_sum: f64,
    confusion: Vec<Vec<usize>>,
}

impl MetricsBuilder {
    /// An empty accumulator for `classes` classes.
    pub fn new(classes: usize) -> Self {
        MetricsBuilder {
            loss_sum: 0.0,
            confusion: vec![vec![0; classes]; classes],
        }
    }

    /// Adds a batch of row-major logits `[labels.len(), classes]`.
    pub fn add(&mut self, logits: &[f32], labels: &[u32]) {
        let classes = self.confusion.len();
        for (row, &label) in logits.chunks_exact(classes).zip(labels) {
            let (pred, max) =
                row.iter()
                    .enumerate()
                    .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
                        if v > bv { (i, v) } else { (bi, bv) }
                    });
            let log_sum_exp = max as f64
                + row
                    .iter()
                    .map(|&v| ((v - max) as f64).exp())
                    .sum::<f64>()
                    .ln();
            self.loss_sum += log_sum_exp - row[label as usize] as f64;
            self.confusion[label as usize][pred] += 1;
        }
    }

    /// The metrics of everything added.
    pub fn finish(self) -> Metrics {
        let classes = self.confusion.len();
        let samples: usize = self.confusion.iter().flatten().sum();
        let correct: usize = (0..classes).map(|c| self.confusion[c][c]).sum();
        let mut f1_sum = 0.0;
        let mut f1_count = 0;
        for c in 0..classes {
            let tp = self.confusion[c][c] as f64;
            let actual: usize = self.confusion[c].iter().sum();
            let predicted: usize = self.confusion.iter().map(|r| r[c]).sum();
            if actual + predicted == 0 {
                continue;
            }
            f1_sum += 2.0 * tp / (actual + predicted) as f64;
            f1_count += 1;
        }
        let denom = samples.max(1) as f64;
        Metrics {
            samples,
            loss: self.loss_sum / denom,
            accuracy: correct as f64 / denom,
            macro_f1: if f1_count == 0 {
                0.0
            } else {
                f1_sum / f1_count as f64
            },
            confusion: self.confusion,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_f1_and_loss() {
        let mut m = MetricsBuilder::new(2);
        // Predictions: 0, 0, 1, 1 for labels 0, 1, 1, 1.
        m.add(&[2.0, 0.0, 1.0, 0.0, 0.0, 3.0, 0.0, 1.0], &[0, 1, 1, 1]);
        let r = m.finish();
        assert_eq!(r.confusion, vec![vec![1, 0], vec![1, 2]]);
        assert_eq!(r.accuracy, 0.75);
        // F1: class 0 = 2/3, class 1 = 4/5.
        assert!((r.macro_f1 - (2.0 / 3.0 + 0.8) / 2.0).abs() < 1e-12);
        let ce = |z: [f64; 2], y: usize| (z[0].exp() + z[1].exp()).ln() - z[y];
        let want =
            (ce([2.0, 0.0], 0) + ce([1.0, 0.0], 1) + ce([0.0, 3.0], 1) + ce([0.0, 1.0], 1)) / 4.0;
        assert!((r.loss - want).abs() < 1e-9);
    }
}
