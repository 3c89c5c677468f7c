//! What the selector learns from, and how routing is judged: per-classifier correctness, the
//! released code's single routing label, the paper's multi-label targets, and DiTMoS's metrics.
//!
//! Logits come as one row-major `[N, classes]` slice per classifier.

use serde::{Deserialize, Serialize};

/// `correct[i][n]`: whether classifier i's arg-max for sample n is its label.
pub fn correctness(logits: &[Vec<f32>], labels: &[u32]) -> Vec<Vec<bool>> {
    let classes = classes(logits, labels);
    logits
        .iter()
        .map(|l| {
            l.chunks(classes)
                .zip(labels)
                .map(|(row, &y)| argmax(row) == y as usize)
                .collect()
        })
        .collect()
}

/// The released code's routing label (`selector_train`): with `p_i` classifier i's top softmax
/// probability, score `+p_i` if i is right and `−p_i` if wrong, and take the arg-max (the first
/// classifier on ties). The most confident right classifier when one is right, otherwise the
/// least confidently wrong.
pub fn single_labels(logits: &[Vec<f32>], labels: &[u32]) -> Vec<usize> {
    let classes = classes(logits, labels);
    (0..labels.len())
        .map(|n| {
            let scores = logits.iter().map(|l| {
                let row = &l[n * classes..(n + 1) * classes];
                let top = top_probability(row);
                if argmax(row) == labels[n] as usize {
                    top
                } else {
                    -top
                }
            });
            let mut best = (0, f32::NEG_INFINITY);
            for (i, s) in scores.enumerate() {
                if s > best.1 {
                    best = (i, s);
                }
            }
            best.0
        })
        .collect()
}

/// The paper's multi-label targets, `[N, m]` row-major: 1 where classifier i is right on
/// sample n, for a binary cross-entropy on the selector's logits.
pub fn multi_label_targets(logits: &[Vec<f32>], labels: &[u32]) -> Vec<f32> {
    let correct = correctness(logits, labels);
    (0..labels.len())
        .flat_map(|n| correct.iter().map(move |c| f32::from(u8::from(c[n]))))
        .collect()
}

/// DiTMoS's figures on one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectionMetrics {
    /// Accuracy of the routed prediction (what the deployed system outputs).
    pub accuracy: f64,
    /// Fraction of samples some classifier gets right: the oracle upper bound.
    pub union_accuracy: f64,
    /// Of the samples some classifier gets right, the fraction routed to one that is.
    pub routing_accuracy: f64,
    /// `histogram[k]`: samples that exactly k classifiers get right.
    pub correct_histogram: Vec<usize>,
    /// Each classifier's accuracy on all samples.
    pub classifier_accuracy: Vec<f64>,
    /// Fraction of samples routed to each classifier.
    pub routed_share: Vec<f64>,
}

impl SelectionMetrics {
    /// The figures for classifier logits, the selector's routes and the labels.
    pub fn new(logits: &[Vec<f32>], routes: &[usize], labels: &[u32]) -> Self {
        let m = logits.len();
        let n = labels.len().max(1) as f64;
        let correct = correctness(logits, labels);
        let mut histogram = vec![0; m + 1];
        let (mut right, mut union, mut routed_right) = (0usize, 0usize, 0usize);
        let mut routed = vec![0usize; m];
        for s in 0..labels.len() {
            let k = correct.iter().filter(|c| c[s]).count();
            histogram[k] += 1;
            let hit = correct[routes[s]][s];
            right += usize::from(hit);
            union += usize::from(k > 0);
            routed_right += usize::from(k > 0 && hit);
            routed[routes[s]] += 1;
        }
        SelectionMetrics {
            accuracy: right as f64 / n,
            union_accuracy: union as f64 / n,
            routing_accuracy: routed_right as f64 / union.max(1) as f64,
            correct_histogram: histogram,
            classifier_accuracy: correct
                .iter()
                .map(|c| c.iter().filter(|&&b| b).count() as f64 / n)
                .collect(),
            routed_share: routed.iter().map(|&r| r as f64 / n).collect(),
        }
    }
}

fn classes(logits: &[Vec<f32>], labels: &[u32]) -> usize {
    logits.first().map_or(1, |l| l.len() / labels.len().max(1))
}

/// Index of the largest value (the first on ties).
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// The largest softmax probability of a row of logits.
fn top_probability(row: &[f32]) -> f32 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = row.iter().map(|v| (v - max).exp()).sum();
    1.0 / sum
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three classifiers, three samples of two classes (labels 0, 1, 1).
    fn case() -> (Vec<Vec<f32>>, Vec<u32>) {
        let logits = vec![
            // right (confident), wrong, wrong (confident)
            vec![3.0, 0.0, 0.5, 0.0, 4.0, 0.0],
            // right (less confident), right, wrong (less confident)
            vec![1.0, 0.0, 0.0, 2.0, 1.0, 0.0],
            // wrong, right (confident), wrong (least confident)
            vec![0.0, 1.0, 0.0, 5.0, 0.2, 0.0],
        ];
        (logits, vec![0, 1, 1])
    }

    #[test]
    fn single_label_is_the_most_confident_right_else_least_confident_wrong() {
        let (logits, labels) = case();
        assert_eq!(
            correctness(&logits, &labels),
            vec![
                vec![true, false, false],
                vec![true, true, false],
                vec![false, true, false]
            ]
        );
        // Sample 2: all wrong; classifier 2 (logits 0.2 vs 0) is the least confident.
        assert_eq!(single_labels(&logits, &labels), vec![0, 2, 2]);
        assert_eq!(
            multi_label_targets(&logits, &labels),
            vec![1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0]
        );
    }

    #[test]
    fn metrics_count_routed_union_and_histogram() {
        let (logits, labels) = case();
        let m = SelectionMetrics::new(&logits, &[1, 0, 2], &labels);
        assert!((m.accuracy - 1.0 / 3.0).abs() < 1e-12);
        assert!((m.union_accuracy - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.routing_accuracy - 0.5).abs() < 1e-12);
        assert_eq!(m.correct_histogram, vec![1, 0, 2, 0]);
        assert_eq!(m.routed_share, vec![1.0 / 3.0; 3]);
        assert!((m.classifier_accuracy[1] - 2.0 / 3.0).abs() < 1e-12);
    }
}
