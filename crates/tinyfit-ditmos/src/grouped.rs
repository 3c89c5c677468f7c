//! The m classifiers as one grouped network, so that training runs one forward and one
//! backward pass for all of them instead of m (the method's training cost, `ditmos.md` §4).
//!
//! Every value private to the classifiers is held m times side by side on its channel (or
//! feature) axis, classifier-major: a convolution on it becomes one with m times the groups, a
//! batch norm one over m times the channels, a linear layer a grouped 1×1 convolution, and
//! pooling, activations and dropout act on it unchanged. Values the classifiers only read —
//! the input and the selector's feature maps — are computed once; a convolution or linear layer
//! reading them stacks the m classifiers' kernels on its output axis. A concatenation of
//! private and shared channels (feature aggregation) cannot be laid out classifier-major
//! without a slicing op, so it is left unmaterialised and the layer reading it is split into
//! one convolution per part, summed: `conv(cat(a, b)) = conv_a(a) + conv_b(b)`.
//!
//! The grouped graph is an ordinary [`Graph`]: [`tinyfit_train::GraphModel`] trains it, and
//! [`Grouping::stack`] / [`Grouping::unstack`] move weights between it and the m classifiers.

use tinyfit_graph::{
    Concat, Conv, Extent, Graph, GraphError, Node, Op, PadMode, Padding, Reshape,
    Tensor as HostTensor, ValueRef, Weights,
};

/// Why a classifier graph has no grouped form (its classifiers are then run one by one).
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// The graph does not check.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// A node the grouping cannot express.
    #[error("node '{node}' ({op}): {why}")]
    Unsupported {
        /// The node.
        node: String,
        /// Its op kind.
        op: &'static str,
        /// What stands in the way.
        why: &'static str,
    },
}

/// Where a value of the classifier graph lives in the grouped graph.
#[derive(Debug, Clone)]
enum Place {
    /// Computed once for every classifier, under this name.
    Shared(String),
    /// The m classifiers' copies side by side on the first axis, under this name.
    Grouped(String),
    /// A channel concatenation left unmaterialised: its parts and their channel counts.
    Parts(Vec<(Place, usize)>),
}

/// One parameter tensor of the grouped graph: the m classifiers' tensor `source`, restricted
/// to `columns` of its axis 1 where given, stacked along axis 0.
#[derive(Debug, Clone)]
struct Stacked {
    target: String,
    target_shape: Vec<usize>,
    source: String,
    source_shape: Vec<usize>,
    columns: Option<(usize, usize)>,
}

/// A classifier graph's grouped form for m classifiers.
#[derive(Debug, Clone)]
pub struct Grouping {
    /// The grouped network: the classifier's inputs, one output of `m × classes` logits.
    pub graph: Graph,
    source: Graph,
    m: usize,
    classes: usize,
    params: Vec<Stacked>,
}

impl Grouping {
    /// The grouped form of `classifier` (inputs `[x, shared features...]`, one vector of class
    /// logits out) for `m` classifiers.
    pub fn new(classifier: &Graph, m: usize) -> Result<Grouping, GroupError> {
        let analysis = classifier.analyze()?;
        let mut builder = Builder {
            m,
            nodes: Vec::new(),
            params: Vec::new(),
        };
        let mut places: Vec<Place> = Vec::with_capacity(classifier.nodes.len());
        let place_of = |places: &[Place], r: ValueRef| match r {
            ValueRef::Input(i) => Place::Shared(classifier.inputs[i].name.clone()),
            ValueRef::Node(i) => places[i].clone(),
        };
        for (node, info) in classifier.nodes.iter().zip(&analysis.nodes) {
            let inputs: Vec<(Place, usize)> = info
                .inputs
                .iter()
                .zip(&info.input_shapes)
                .map(|(&r, shape)| (place_of(&places, r), shape[0]))
                .collect();
            let place = builder.node(node, info, inputs)?;
            places.push(place);
        }
        let output = analysis.outputs[0];
        let classes = classifier.value_shape(&analysis, output)[0];
        let name = match place_of(&places, output) {
            Place::Grouped(name) => name,
            _ => {
                return Err(GroupError::Unsupported {
                    node: classifier.name.clone(),
                    op: "output",
                    why: "the logits do not depend on the classifier's weights",
                });
            }
        };
        let graph = Graph {
            name: format!("{} (x{m}, grouped)", classifier.name),
            inputs: classifier.inputs.clone(),
            nodes: builder.nodes,
            outputs: vec![name],
        };
        graph.analyze()?;
        Ok(Grouping {
            graph,
            source: classifier.clone(),
            m,
            classes,
            params: builder.params,
        })
    }

    /// The classifier graph grouped.
    pub fn source(&self) -> &Graph {
        &self.source
    }

    /// Number of classifiers.
    pub fn m(&self) -> usize {
        self.m
    }

    /// Class logits per classifier.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The grouped network's weights from the m classifiers' (each as the classifier graph
    /// names them).
    pub fn stack(&self, classifiers: &[Weights]) -> Weights {
        assert_eq!(classifiers.len(), self.m, "one weight set per classifier");
        let mut out = Weights::default();
        for p in &self.params {
            let data = classifiers
                .iter()
                .flat_map(|w| columns(&w.tensors[&p.source], p.columns))
                .collect();
            out.tensors.insert(
                p.target.clone(),
                HostTensor {
                    shape: p.target_shape.clone(),
                    data,
                },
            );
        }
        out
    }

    /// The m classifiers' weights from the grouped network's (tensors `grouped` lacks — a
    /// parameter without gradient — are left out).
    pub fn unstack(&self, grouped: &Weights) -> Vec<Weights> {
        (0..self.m)
            .map(|k| {
                let mut out = Weights::default();
                for p in &self.params {
                    let Some(t) = grouped.tensors.get(&p.target) else {
                        continue;
                    };
                    let len = t.data.len() / self.m;
                    let part = &t.data[k * len..(k + 1) * len];
                    let dest = out
                        .tensors
                        .entry(p.source.clone())
                        .or_insert_with(|| HostTensor {
                            shape: p.source_shape.clone(),
                            data: vec![0.0; p.source_shape.iter().product()],
                        });
                    put_columns(dest, p.columns, part);
                }
                out
            })
            .collect()
    }
}

/// The values of `t` in the columns `range` of its axis 1 (all of it for `None`), row-major.
fn columns(t: &HostTensor, range: Option<(usize, usize)>) -> Vec<f32> {
    let Some((a, b)) = range else {
        return t.data.clone();
    };
    let inner: usize = t.shape[2..].iter().product();
    let row = t.shape[1] * inner;
    t.data
        .chunks(row)
        .flat_map(|r| r[a * inner..b * inner].iter().copied())
        .collect()
}

/// Writes `values` into the columns `range` of `t`'s axis 1 (all of it for `None`).
fn put_columns(t: &mut HostTensor, range: Option<(usize, usize)>, values: &[f32]) {
    let Some((a, b)) = range else {
        t.data.copy_from_slice(values);
        return;
    };
    let inner: usize = t.shape[2..].iter().product();
    let row = t.shape[1] * inner;
    let width = (b - a) * inner;
    for (dest, src) in t.data.chunks_mut(row).zip(values.chunks(width)) {
        dest[a * inner..b * inner].copy_from_slice(src);
    }
}

/// Why a concatenation of shared and per-classifier channels can only feed a dense layer.
const MIXED_CONCAT: &str = "it reads a concatenation of shared and per-classifier channels; only \
     a convolution or linear layer can";

/// Emits the grouped graph node by node.
struct Builder {
    m: usize,
    nodes: Vec<Node>,
    params: Vec<Stacked>,
}

impl Builder {
    /// Emits `node` (reading `inputs`: places and channel counts) and says where its output
    /// lives.
    fn node(
        &mut self,
        node: &Node,
        info: &tinyfit_graph::NodeAnalysis,
        inputs: Vec<(Place, usize)>,
    ) -> Result<Place, GroupError> {
        let unsupported = |why| GroupError::Unsupported {
            node: node.name.clone(),
            op: node.op.kind(),
            why,
        };
        let (first, _) = inputs[0].clone();
        let all_grouped = inputs.iter().all(|(p, _)| matches!(p, Place::Grouped(_)));
        let all_shared = inputs.iter().all(|(p, _)| matches!(p, Place::Shared(_)));
        match &node.op {
            Op::Conv1d(c) | Op::Conv2d(c) => {
                let spatial = info.input_shapes[0].len() - 1;
                let kernel = c.kernel.expand(spatial).expect("checked by analyze");
                self.dense(node, c, &kernel, first, inputs[0].1)
                    .map_err(unsupported)
            }
            Op::Linear(l) => {
                let conv = Conv {
                    out_channels: l.out_features,
                    kernel: Extent::Uniform(1),
                    stride: Extent::Uniform(1),
                    padding: Padding::Mode(PadMode::Valid),
                    dilation: Extent::Uniform(1),
                    groups: 1,
                    bias: l.bias,
                };
                self.linear(node, &conv, first, inputs[0].1)
                    .map_err(unsupported)
            }
            // A batch norm holds weights per classifier and each classifier draws its own
            // dropout mask: on a shared value, both act on m copies of it.
            Op::BatchNorm(_) | Op::Dropout(_) => {
                let v = self.replicated(node, first).map_err(unsupported)?;
                for t in &info.shape.tensors {
                    self.param(
                        &node.name,
                        t.name,
                        &node.name,
                        &t.shape,
                        t.shape.clone(),
                        None,
                    );
                }
                Ok(self.emit(&node.name, node.op.clone(), &[&v], Place::Grouped))
            }
            Op::Concat(Concat { axis: 0 }) if !all_shared => {
                let mut parts = Vec::new();
                for (p, channels) in inputs {
                    match p {
                        Place::Parts(inner) => parts.extend(inner),
                        other => parts.push((other, channels)),
                    }
                }
                Ok(Place::Parts(parts))
            }
            Op::Concat(_) | Op::Add if !(all_grouped || all_shared) => Err(unsupported(
                "it joins shared and per-classifier values other than on the channel axis",
            )),
            Op::Softmax | Op::Reshape(_) if all_grouped => {
                Err(unsupported("it would mix the classifiers' channels"))
            }
            _ if inputs.iter().any(|(p, _)| matches!(p, Place::Parts(_))) => {
                Err(unsupported(MIXED_CONCAT))
            }
            op => {
                let names: Vec<String> = inputs
                    .iter()
                    .map(|(p, _)| match p {
                        Place::Shared(v) | Place::Grouped(v) => v.clone(),
                        Place::Parts(_) => unreachable!("refused above"),
                    })
                    .collect();
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                let wrap = if all_grouped {
                    Place::Grouped
                } else {
                    Place::Shared
                };
                Ok(self.emit(&node.name, op.clone(), &names, wrap))
            }
        }
    }

    /// A linear layer as a grouped 1×1 convolution over the features viewed as `[F, 1]`.
    fn linear(
        &mut self,
        node: &Node,
        conv: &Conv,
        input: Place,
        features: usize,
    ) -> Result<Place, &'static str> {
        let as_column = |b: &mut Self, place: Place, width: usize, j: usize| -> Place {
            let name = format!("{}__in{j}", node.name);
            let shape = vec![width, 1];
            match place {
                Place::Shared(v) => b.emit(&name, reshape(shape), &[&v], Place::Shared),
                Place::Grouped(v) => {
                    let shape = vec![width * b.m, 1];
                    b.emit(&name, reshape(shape), &[&v], Place::Grouped)
                }
                Place::Parts(_) => unreachable!("parts are split first"),
            }
        };
        let columns = match input {
            Place::Parts(parts) => Place::Parts(
                parts
                    .into_iter()
                    .enumerate()
                    .map(|(j, (p, w))| (as_column(self, p, w, j), w))
                    .collect(),
            ),
            other => as_column(self, other, features, 0),
        };
        let Place::Grouped(out) = self.dense(node, conv, &[], columns, features)? else {
            unreachable!("a dense layer's output is per classifier")
        };
        let flat = vec![self.m * conv.out_channels];
        Ok(self.emit(
            &format!("{}__out", node.name),
            reshape(flat),
            &[&out],
            Place::Grouped,
        ))
    }

    /// A convolution with kernel `kernel` (or a linear layer as a 1×1 one: `kernel` empty,
    /// as its weight has no kernel axes) reading `input` of `channels` channels: one grouped
    /// convolution, or one per part of a concatenation, summed.
    fn dense(
        &mut self,
        node: &Node,
        conv: &Conv,
        kernel: &[usize],
        input: Place,
        channels: usize,
    ) -> Result<Place, &'static str> {
        let parts = match input {
            Place::Parts(parts) => parts,
            other => vec![(other, channels)],
        };
        let split = parts.len() > 1;
        if conv.groups > 1 && split {
            return Err("a grouped convolution must not read shared and per-classifier channels");
        }
        let parts = if conv.groups > 1 {
            // Grouping a shared input's channels per classifier needs one copy per classifier.
            let copies = self.replicated(node, parts[0].0.clone())?;
            vec![(Place::Grouped(copies), channels)]
        } else {
            parts
        };
        let op = |c: Conv| {
            if kernel.len() == 2 {
                Op::Conv2d(c)
            } else {
                Op::Conv1d(c)
            }
        };
        // The grouped layer's kernel: a linear layer's is 1×1.
        let grouped_kernel = if kernel.is_empty() { &[1][..] } else { kernel };
        let mut names = Vec::with_capacity(parts.len());
        let mut offset = 0;
        for (j, (place, width)) in parts.into_iter().enumerate() {
            let name = if split {
                format!("{}__part{j}", node.name)
            } else {
                node.name.clone()
            };
            let (source, groups) = match place {
                Place::Grouped(v) => (v, conv.groups * self.m),
                Place::Shared(v) => (v, 1),
                Place::Parts(_) => unreachable!("nested concatenations are flattened"),
            };
            let bias = conv.bias && j == 0;
            let part = Conv {
                out_channels: conv.out_channels * self.m,
                groups,
                bias,
                ..conv.clone()
            };
            let per_group = width / conv.groups;
            let mut weight = vec![conv.out_channels, per_group];
            weight.extend(grouped_kernel);
            let mut source_shape = vec![conv.out_channels, channels / conv.groups];
            source_shape.extend(kernel);
            self.param(
                &name,
                "weight",
                &node.name,
                &weight,
                source_shape,
                split.then_some((offset, offset + width)),
            );
            if bias {
                let shape = vec![conv.out_channels];
                self.param(&name, "bias", &node.name, &shape, shape.clone(), None);
            }
            names.push(self.emit(&name, op(part), &[&source], |n| n));
            offset += width;
        }
        if !split {
            return Ok(Place::Grouped(names.swap_remove(0)));
        }
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        Ok(self.emit(&node.name, Op::Add, &names, Place::Grouped))
    }

    /// The name of `place` per classifier: a shared value as m copies side by side (a
    /// concatenation of it with itself, named after `node`).
    fn replicated(&mut self, node: &Node, place: Place) -> Result<String, &'static str> {
        match place {
            Place::Shared(v) => {
                let copies = vec![v.as_str(); self.m];
                let name = format!("{}__copies", node.name);
                Ok(self.emit(&name, Op::Concat(Concat { axis: 0 }), &copies, |n| n))
            }
            Place::Grouped(v) => Ok(v),
            Place::Parts(_) => Err(MIXED_CONCAT),
        }
    }

    /// Records the grouped tensor `{target}.{name}`: the classifiers' `{source}.{name}` (of
    /// `source_shape`) restricted to `columns`, each `shape`, stacked.
    fn param(
        &mut self,
        target: &str,
        name: &str,
        source: &str,
        shape: &[usize],
        source_shape: Vec<usize>,
        columns: Option<(usize, usize)>,
    ) {
        let mut target_shape = shape.to_vec();
        target_shape[0] *= self.m;
        self.params.push(Stacked {
            target: format!("{target}.{name}"),
            target_shape,
            source: format!("{source}.{name}"),
            source_shape,
            columns,
        });
    }

    /// Appends a node reading `inputs`; its output's place is `wrap(name)`.
    fn emit<T>(&mut self, name: &str, op: Op, inputs: &[&str], wrap: impl Fn(String) -> T) -> T {
        self.nodes.push(Node::with_inputs(name, op, inputs));
        wrap(name.to_string())
    }
}

fn reshape(shape: Vec<usize>) -> Op {
    Op::Reshape(Reshape { shape })
}
