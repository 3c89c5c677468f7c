//! The DiTMoS system as one trainable module: a selector graph (routing logits first, then the
//! feature maps it shares) and m classifier graphs (the input first, then those feature maps:
//! heterogeneous feature aggregation, `ditmos.md` §3.3).

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use tinyfit_graph::{Graph, Weights};
use tinyfit_train::{GraphModel, Value, init};

/// Why a selector and classifiers do not fit together.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A graph or its weights do not check.
    #[error(transparent)]
    Graph(#[from] tinyfit_graph::GraphError),
    /// The graphs' interfaces do not match.
    #[error("{0}")]
    Interface(String),
}

/// A selector and its classifiers.
#[derive(Module, Debug)]
pub struct Ditmos {
    /// Routes each input: outputs `[logits (m), shared features...]`.
    pub selector: GraphModel,
    /// Inputs `[x, shared features...]`, output class logits.
    pub classifiers: Vec<GraphModel>,
}

/// What the selector computes for a batch.
pub struct Selection {
    /// Routing logits `[N, m]`.
    pub logits: Tensor<2>,
    /// The feature maps the classifiers read.
    pub features: Vec<Value>,
}

impl Ditmos {
    /// Checks that `selector` feeds `classifier` (same input, its outputs after the first
    /// shaped as the classifier's inputs after the first, m routing logits) and builds the
    /// system with weights from `selector_weights` and `classifier_weights` (PyTorch's
    /// initialisation from `seed` where `None`).
    pub fn new(
        selector: &Graph,
        classifier: &Graph,
        m: usize,
        weights: (Option<&Weights>, &[Option<&Weights>]),
        seed: u64,
        device: &Device,
    ) -> Result<Self, ModelError> {
        check_interface(selector, classifier, m)?;
        let init =
            |graph: &Graph, given: Option<&Weights>, seed: u64| -> Result<GraphModel, ModelError> {
                let w = match given {
                    Some(w) => w.clone(),
                    None => init::pytorch_default(graph, &graph.analyze()?, seed),
                };
                Ok(GraphModel::new(graph, &w, device)?)
            };
        let classifiers = (0..m)
            .map(|i| {
                let given = weights.1.get(i).copied().flatten();
                init(classifier, given, seed.wrapping_add(1 + i as u64))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Ditmos {
            selector: init(selector, weights.0, seed)?,
            classifiers,
        })
    }

    /// Number of classifiers.
    pub fn m(&self) -> usize {
        self.classifiers.len()
    }

    /// The selector on a batch.
    pub fn select(&self, x: Value) -> Selection {
        let mut outputs = self.selector.forward(vec![x]);
        let logits = outputs.remove(0).into_r2();
        Selection {
            logits,
            features: outputs,
        }
    }

    /// Classifier `i`'s logits `[N, classes]` on a batch and the selector's features for it.
    pub fn classify(&self, i: usize, x: Value, features: &[Value]) -> Tensor<2> {
        let mut inputs = Vec::with_capacity(1 + features.len());
        inputs.push(x);
        inputs.extend(features.iter().cloned());
        self.classifiers[i].forward(inputs).remove(0).into_r2()
    }
}

/// The selector's first output must be m logits and the rest the classifier's inputs after x.
pub(crate) fn check_interface(
    selector: &Graph,
    classifier: &Graph,
    m: usize,
) -> Result<(), ModelError> {
    let fail = |why: String| Err(ModelError::Interface(why));
    let (s, c) = (selector.analyze()?, classifier.analyze()?);
    let s_out: Vec<&[usize]> = s
        .outputs
        .iter()
        .map(|&v| selector.value_shape(&s, v))
        .collect();
    if s_out.first() != Some(&&[m][..]) {
        return fail(format!(
            "the selector '{}' must output {m} routing logits first, it outputs {:?}",
            selector.name, s_out
        ));
    }
    if selector.inputs.len() != 1
        || classifier.inputs.first().map(|i| &i.shape) != Some(&selector.inputs[0].shape)
    {
        return fail(format!(
            "the selector and the classifier must read the same single input first; {:?} and {:?}",
            selector.inputs.iter().map(|i| &i.shape).collect::<Vec<_>>(),
            classifier
                .inputs
                .iter()
                .map(|i| &i.shape)
                .collect::<Vec<_>>()
        ));
    }
    let shared: Vec<&[usize]> = classifier.inputs[1..]
        .iter()
        .map(|i| &i.shape[..])
        .collect();
    if shared != s_out[1..] {
        return fail(format!(
            "the classifier '{}' reads features {:?} but the selector shares {:?}",
            classifier.name,
            shared,
            &s_out[1..]
        ));
    }
    if c.outputs.len() != 1 || classifier.value_shape(&c, c.outputs[0]).len() != 1 {
        return fail(format!(
            "the classifier '{}' must output one vector of class logits",
            classifier.name
        ));
    }
    Ok(())
}
