//! The m classifiers as the training phases run them: one grouped network ([`crate::grouped`])
//! where the classifier graph has a grouped form — one forward and one backward pass for all m
//! — else the m networks one after another.

use std::sync::Arc;

use burn::module::Module;
use burn::tensor::Tensor;
use tinyfit_graph::Weights;
use tinyfit_train::{GraphModel, Value};

use crate::grouped::Grouping;

/// The m classifiers, run together.
#[derive(Module, Debug)]
pub enum Classifiers {
    /// One network holding all m.
    Grouped(GroupedModel),
    /// The m networks, run one after another (a classifier graph without a grouped form).
    Separate(Vec<GraphModel>),
}

/// The grouped network and how its weights map to the classifiers'.
#[derive(Module, Debug)]
pub struct GroupedModel {
    model: GraphModel,
    #[module(skip)]
    grouping: Arc<Grouping>,
}

impl GroupedModel {
    /// The gradients in `grads` of each classifier's parameters, as
    /// [`GraphModel::gradients`] gives a classifier's own.
    pub fn gradients(&self, grads: &burn::optim::GradientsParams) -> Vec<Weights> {
        self.grouping.unstack(&self.model.gradients(grads))
    }
}

impl Classifiers {
    /// `classifiers` (m instances of one graph) run together, on their device: grouped where
    /// the graph allows it, else one by one (`why` the graph has no grouped form is returned
    /// for the report).
    pub fn new(classifiers: &[GraphModel]) -> (Classifiers, Option<String>) {
        let graph = classifiers[0].graph();
        let grouping = match Grouping::new(graph, classifiers.len()) {
            Ok(g) => g,
            Err(e) => {
                return (
                    Classifiers::Separate(classifiers.to_vec()),
                    Some(e.to_string()),
                );
            }
        };
        let weights: Vec<Weights> = classifiers.iter().map(GraphModel::weights).collect();
        let device = &classifiers[0].devices()[0];
        let model = GraphModel::new(&grouping.graph, &grouping.stack(&weights), device)
            .expect("the grouped graph and its stacked weights agree by construction");
        (
            Classifiers::Grouped(GroupedModel {
                model,
                grouping: Arc::new(grouping),
            }),
            None,
        )
    }

    /// Every classifier's logits `[N, classes]` on a batch and the selector's features for it.
    pub fn logits(&self, x: Value, features: &[Value]) -> Vec<Tensor<2>> {
        let mut inputs = Vec::with_capacity(1 + features.len());
        inputs.push(x);
        inputs.extend(features.iter().cloned());
        match self {
            Classifiers::Separate(models) => models
                .iter()
                .map(|c| c.forward(inputs.clone()).remove(0).into_r2())
                .collect(),
            Classifiers::Grouped(g) => {
                let (m, classes) = (g.grouping.m(), g.grouping.classes());
                let all = g.model.forward(inputs).remove(0).into_r2();
                let n = all.dims()[0];
                let all: Tensor<3> = all.reshape([n, m, classes]);
                (0..m)
                    .map(|k| all.clone().narrow(1, k, 1).reshape([n, classes]))
                    .collect()
            }
        }
    }

    /// The m classifier networks, with the weights and running statistics trained here.
    pub fn into_models(self) -> Vec<GraphModel> {
        match self {
            Classifiers::Separate(models) => models,
            Classifiers::Grouped(g) => {
                let device = &g.model.devices()[0];
                let graph = g.grouping.source();
                g.grouping
                    .unstack(&g.model.weights())
                    .iter()
                    .map(|w| {
                        GraphModel::new(graph, w, device)
                            .expect("unstacked weights fit the classifier graph")
                    })
                    .collect()
            }
        }
    }
}
