//! Knowledge distillation (Hinton, Vinyals and Dean, 2015): the student also learns the
//! teacher's softened class probabilities.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use tinyfit_data::Dataset;

use crate::model::GraphModel;
use crate::trainer::for_each_batch_logits;

/// How much of the soft targets, and how soft.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DistillConfig {
    /// Softmax temperature T (> 0; Hinton et al. use 2–20; 4 is common).
    pub temperature: f64,
    /// Weight α of the soft-target term, in [0, 1]; the label term gets 1 − α.
    pub alpha: f64,
}

impl Default for DistillConfig {
    /// T = 4, α = 0.9.
    fn default() -> Self {
        DistillConfig {
            temperature: 4.0,
            alpha: 0.9,
        }
    }
}

impl DistillConfig {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(format!(
                "distill.temperature must be positive, got {}",
                self.temperature
            ));
        }
        if !(0.0..=1.0).contains(&self.alpha) {
            return Err(format!(
                "distill.alpha must be in [0, 1], got {}",
                self.alpha
            ));
        }
        Ok(())
    }
}

/// A trained teacher and the distillation settings.
pub struct Distillation<'a> {
    /// The teacher, on the plain (not differentiated) device.
    pub teacher: &'a GraphModel,
    /// T and α.
    pub config: DistillConfig,
}

/// The teacher's logits for every sample of a dataset, row-major.
pub struct SoftTargets {
    logits: Vec<f32>,
    classes: usize,
}

impl SoftTargets {
    /// The rows of `indices`, as a constant `[N, classes]` on `device` (the student's).
    pub fn batch(&self, indices: &[usize], device: &Device) -> Tensor<2> {
        let c = self.classes;
        let rows: Vec<f32> = indices
            .iter()
            .flat_map(|&i| self.logits[i * c..(i + 1) * c].iter().copied())
            .collect();
        Tensor::from_data(TensorData::new(rows, [indices.len(), c]), device)
    }
}

impl Distillation<'_> {
    /// The teacher's logits for all of `data`, in inference mode on `device` (plain).
    pub fn soft_targets(&self, data: &Dataset, batch_size: usize, device: &Device) -> SoftTargets {
        let mut logits = Vec::with_capacity(data.len() * data.class_names.len());
        for_each_batch_logits(self.teacher, data, batch_size, device, |_, batch| {
            logits.extend_from_slice(batch);
        });
        SoftTargets {
            classes: logits.len() / data.len().max(1),
            logits,
        }
    }

    /// (1 − α)·`hard` + α·T²·KL(softmax(t/T) ‖ softmax(s/T)), the KL term averaged over the
    /// batch; the T² keeps its gradients on the scale of the label term's as T grows.
    pub fn loss(&self, hard: Tensor<1>, student: Tensor<2>, teacher: Tensor<2>) -> Tensor<1> {
        let t = self.config.temperature;
        let log_p_teacher = log_softmax(teacher / t, 1);
        let log_p_student = log_softmax(student / t, 1);
        let kl = (log_p_teacher.clone().exp() * (log_p_teacher - log_p_student))
            .sum_dim(1)
            .mean();
        hard * (1.0 - self.config.alpha) + kl * (self.config.alpha * t * t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits(values: &[f32], device: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(values.to_vec(), [2, 3]), device)
    }

    /// KL(p ‖ q) over rows, by hand.
    fn kl(t: &[f32], s: &[f32], temperature: f32) -> f32 {
        let soft = |row: &[f32]| {
            let m = row.iter().cloned().fold(f32::MIN, f32::max);
            let e: Vec<f32> = row.iter().map(|v| ((v - m) / temperature).exp()).collect();
            let z: f32 = e.iter().sum();
            e.into_iter().map(|v| v / z).collect::<Vec<f32>>()
        };
        let rows: Vec<f32> = t
            .chunks(3)
            .zip(s.chunks(3))
            .map(|(a, b)| {
                let (p, q) = (soft(a), soft(b));
                p.iter().zip(&q).map(|(p, q)| p * (p / q).ln()).sum()
            })
            .collect();
        rows.iter().sum::<f32>() / rows.len() as f32
    }

    #[test]
    fn loss_is_hinton_mix_of_hard_and_soft_terms() {
        let device = crate::cpu();
        let (t, s) = (
            [2.0, 0.5, -1.0, 0.0, 3.0, 1.0],
            [1.0, 1.5, -0.5, 0.2, 2.0, 2.5],
        );
        let hard = Tensor::<1>::from_data(TensorData::new(vec![0.7f32], [1]), &device);
        let d = |alpha: f64| {
            Distillation {
                teacher: &dummy_teacher(),
                config: DistillConfig {
                    temperature: 4.0,
                    alpha,
                },
            }
            .loss(hard.clone(), logits(&s, &device), logits(&t, &device))
            .into_scalar::<f32>()
        };
        let expected = 0.25 * 0.7 + 0.75 * 16.0 * kl(&t, &s, 4.0);
        assert!(
            (d(0.75) - expected).abs() < 1e-5,
            "{} vs {expected}",
            d(0.75)
        );
        assert!((d(0.0) - 0.7).abs() < 1e-6);
        // A student that matches the teacher pays nothing for the soft targets.
        let same = Distillation {
            teacher: &dummy_teacher(),
            config: DistillConfig::default(),
        }
        .loss(hard, logits(&t, &device), logits(&t, &device))
        .into_scalar::<f32>();
        assert!((same - 0.1 * 0.7).abs() < 1e-6, "{same}");
    }

    fn dummy_teacher() -> GraphModel {
        let graph = tinyfit_graph::Graph::from_value(serde_json::json!({
            "inputs": [{"name": "x", "shape": [3]}],
            "nodes": [{"name": "fc", "op": "linear", "out_features": 3}]
        }))
        .unwrap();
        let weights = crate::init::pytorch_default(&graph, &graph.analyze().unwrap(), 0);
        GraphModel::new(&graph, &weights, &crate::cpu()).unwrap()
    }

    #[test]
    fn soft_targets_hand_out_the_rows_of_a_batch() {
        let targets = SoftTargets {
            logits: (0..12).map(|v| v as f32).collect(),
            classes: 3,
        };
        let batch = targets.batch(&[3, 1], &crate::cpu()).into_data();
        assert_eq!(
            batch.as_slice::<f32>().unwrap(),
            &[9.0, 10.0, 11.0, 3.0, 4.0, 5.0]
        );
    }

    #[test]
    fn settings_out_of_range_are_refused() {
        let bad = |temperature, alpha| DistillConfig { temperature, alpha }.validate();
        assert!(bad(0.0, 0.5).unwrap_err().contains("temperature"));
        assert!(bad(4.0, 1.5).unwrap_err().contains("alpha"));
        assert!(bad(4.0, 1.0).is_ok());
    }
}
