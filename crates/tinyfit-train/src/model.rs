//! A trainable burn module built from any [`Graph`].

use std::sync::Arc;

use burn::module::{Module, Param, RunningState};
use burn::nn::DropoutConfig;
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor, activation, module as f};
use tinyfit_graph::shape::resolve_padding;
use tinyfit_graph::{Analysis, Conv, Graph, GraphError, Op, Pool, ValueRef, Weights};

use crate::layers::{self, BatchNorm, ConvWeights, Layer, Linear, Stateless};
use crate::masks::{DeviceMask, DeviceMasks};
use crate::value::{Value, each_rank};
use crate::weight_quant::{Precision, WeightBits};

/// A graph executed with burn: one [`Layer`] per node, run in the graph's order.
#[derive(Module, Debug)]
pub struct GraphModel {
    layers: Vec<Layer>,
    #[module(skip)]
    plan: Arc<Plan>,
}

/// What the executor needs to know about the graph, resolved once.
#[derive(Debug, Clone)]
struct Plan {
    graph: Graph,
    analysis: Analysis,
    steps: Vec<Step>,
    /// Per node, the weight grid the forward pass quantises to (QAT); `None` for float.
    weight_bits: Vec<Option<WeightBits>>,
}

/// A node's op with its window geometry resolved against the input shape.
#[derive(Debug, Clone)]
enum Step {
    Conv1d(ConvOptions<1>),
    Conv2d(ConvOptions<2>),
    MaxPool1d(MaxPoolOptions<1>),
    MaxPool2d(MaxPoolOptions<2>),
    AvgPool1d(AvgPoolOptions<1>),
    AvgPool2d(AvgPoolOptions<2>),
    Other,
}

impl GraphModel {
    /// Builds the module for `graph` with `weights` (checked against the graph) on `device`.
    pub fn new(graph: &Graph, weights: &Weights, device: &Device) -> Result<Self, GraphError> {
        let analysis = graph.analyze()?;
        weights.check(graph, &analysis, std::path::Path::new("(in memory)"))?;
        let mut layers = Vec::with_capacity(graph.nodes.len());
        let mut steps = Vec::with_capacity(graph.nodes.len());
        for (node, info) in graph.nodes.iter().zip(&analysis.nodes) {
            let w = |name: &str| &weights.tensors[&format!("{}.{name}", node.name)];
            let opt = |name: &str| weights.tensors.get(&format!("{}.{name}", node.name));
            let spatial = &info.input_shapes[0][1..];
            let layer = match &node.op {
                Op::Conv1d(_) => Layer::Conv1d(ConvWeights::new(w("weight"), opt("bias"), device)),
                Op::Conv2d(_) => Layer::Conv2d(ConvWeights::new(w("weight"), opt("bias"), device)),
                Op::BatchNorm(bn) => Layer::BatchNorm(BatchNorm {
                    gamma: layers::param(w("weight"), device),
                    beta: layers::param(w("bias"), device),
                    running_mean: RunningState::new(layers::tensor(w("running_mean"), device)),
                    running_var: RunningState::new(layers::tensor(w("running_var"), device)),
                    eps: bn.eps,
                    momentum: bn.momentum,
                    frozen: false,
                }),
                Op::Linear(_) => {
                    let pytorch = layers::tensor::<2>(w("weight"), device);
                    Layer::Linear(Linear {
                        weight: burn::module::Param::from_tensor(pytorch.transpose()),
                        bias: opt("bias").map(|b| layers::param(b, device)),
                    })
                }
                Op::Dropout(d) => Layer::Dropout(DropoutConfig::new(d.p).init()),
                _ => Layer::Stateless(Stateless),
            };
            let step = match &node.op {
                Op::Conv1d(c) => Step::Conv1d(conv_options(c, spatial)),
                Op::Conv2d(c) => Step::Conv2d(conv_options(c, spatial)),
                Op::MaxPool1d(p) => Step::MaxPool1d(max_pool_options(p, spatial)),
                Op::MaxPool2d(p) => Step::MaxPool2d(max_pool_options(p, spatial)),
                Op::AvgPool1d(p) => Step::AvgPool1d(avg_pool_options(p, spatial)),
                Op::AvgPool2d(p) => Step::AvgPool2d(avg_pool_options(p, spatial)),
                _ => Step::Other,
            };
            layers.push(layer);
            steps.push(step);
        }
        Ok(GraphModel {
            layers,
            plan: Arc::new(Plan {
                graph: graph.clone(),
                analysis,
                steps,
                weight_bits: vec![None; graph.nodes.len()],
            }),
        })
    }

    /// This module with fake-quantised weights ([`crate::weight_quant`]): the forward pass,
    /// and [`GraphModel::weights`], use each named layer's weights on its grid.
    pub fn with_weight_bits(mut self, precision: &Precision) -> Result<Self, String> {
        let mut plan = (*self.plan).clone();
        for (name, &bits) in precision {
            let i = plan
                .graph
                .nodes
                .iter()
                .position(|n| &n.name == name)
                .ok_or_else(|| {
                    format!("weight precision names '{name}', which is no node of the graph")
                })?;
            if !matches!(
                self.layers[i],
                Layer::Conv1d(_) | Layer::Conv2d(_) | Layer::Linear(_)
            ) {
                return Err(format!(
                    "weight precision for '{name}', which is not a convolution or linear layer"
                ));
            }
            plan.weight_bits[i] = Some(bits);
        }
        self.plan = Arc::new(plan);
        Ok(self)
    }

    /// Layer `i`'s weight `[out, ...]` as the forward pass uses it.
    fn effective<const D: usize>(&self, i: usize, w: Tensor<D>) -> Tensor<D> {
        match self.plan.weight_bits[i] {
            Some(bits) => {
                let dims = w.dims();
                let rows: Tensor<2> = w.reshape([dims[0] as i32, -1]);
                bits.fake_quantize(rows).reshape(dims)
            }
            None => w,
        }
    }

    /// Layer `i`'s linear weight in burn's `[in, out]` as the forward pass uses it.
    fn effective_linear(&self, i: usize, w: Tensor<2>) -> Tensor<2> {
        self.effective(i, w.transpose()).transpose()
    }

    /// The graph this module executes.
    pub fn graph(&self) -> &Graph {
        &self.plan.graph
    }

    /// Runs the graph on one batch per graph input; returns one batch per graph output.
    ///
    /// # Shapes
    /// - inputs: `[N, shape...]` for each graph input, in order
    /// - outputs: `[N, shape...]` for each graph output, in order
    pub fn forward(&self, inputs: Vec<Value>) -> Vec<Value> {
        let plan = &*self.plan;
        let (inputs, values) = self.forward_all(inputs);
        plan.analysis
            .outputs
            .iter()
            .map(|&r| match r {
                ValueRef::Input(i) => inputs[i].clone(),
                ValueRef::Node(i) => values[i].clone(),
            })
            .collect()
    }

    /// Runs the graph and keeps every value: returns the inputs and each node's output, in
    /// node order (what calibration for quantisation observes).
    pub fn forward_all(&self, inputs: Vec<Value>) -> (Vec<Value>, Vec<Value>) {
        let plan = &*self.plan;
        assert_eq!(
            inputs.len(),
            plan.graph.inputs.len(),
            "the graph takes {} inputs",
            plan.graph.inputs.len()
        );
        let values = self.forward_span(&inputs, Vec::new(), plan.graph.nodes.len());
        (inputs, values)
    }

    /// Runs the nodes from `earlier.len()` up to (not including) `end`, reading the graph
    /// `inputs` and `earlier[i]` for node i's value: a model cut in two (model stitching runs
    /// the front of one model and the back of another). Returns the values of the nodes run.
    ///
    /// # Panics
    /// When a node in the span reads a node before it whose value is `None`.
    pub fn forward_span(
        &self,
        inputs: &[Value],
        earlier: Vec<Option<Value>>,
        end: usize,
    ) -> Vec<Value> {
        let plan = &*self.plan;
        let start = earlier.len();
        let mut values = earlier;
        for i in start..end {
            let node = &plan.graph.nodes[i];
            let info = &plan.analysis.nodes[i];
            let args: Vec<Value> = info
                .inputs
                .iter()
                .map(|&r| match r {
                    ValueRef::Input(k) => inputs[k].clone(),
                    ValueRef::Node(k) => values[k].clone().unwrap_or_else(|| {
                        panic!("node '{}' reads node {k}, which was not given", node.name)
                    }),
                })
                .collect();
            let out = self.run(i, &node.op, args, &info.shape.output);
            values.push(Some(out));
        }
        values
            .into_iter()
            .skip(start)
            .map(|v| v.expect("computed"))
            .collect()
    }

    /// Logits `[N, classes]` of a single-input graph whose first output is a vector.
    pub fn logits(&self, x: Value) -> Tensor<2> {
        self.forward(vec![x]).swap_remove(0).into_r2()
    }

    fn run(&self, i: usize, op: &Op, mut args: Vec<Value>, out_shape: &[usize]) -> Value {
        let layer = &self.layers[i];
        let step = &self.plan.steps[i];
        let x = args.swap_remove(0);
        match (op, layer, step, x) {
            (_, Layer::Conv1d(w), Step::Conv1d(o), Value::R3(x)) => Value::R3(f::conv1d(
                x,
                self.effective(i, w.weight.val()),
                w.bias.as_ref().map(|b| b.val()),
                o.clone(),
            )),
            (_, Layer::Conv2d(w), Step::Conv2d(o), Value::R4(x)) => Value::R4(f::conv2d(
                x,
                self.effective(i, w.weight.val()),
                w.bias.as_ref().map(|b| b.val()),
                o.clone(),
            )),
            (_, _, Step::MaxPool1d(o), Value::R3(x)) => Value::R3(f::max_pool1d(x, o.clone())),
            (_, _, Step::MaxPool2d(o), Value::R4(x)) => Value::R4(f::max_pool2d(x, o.clone())),
            (_, _, Step::AvgPool1d(o), Value::R3(x)) => Value::R3(f::avg_pool1d(x, o.clone())),
            (_, _, Step::AvgPool2d(o), Value::R4(x)) => Value::R4(f::avg_pool2d(x, o.clone())),
            (_, Layer::BatchNorm(bn), _, x) => each_rank!(x, t => bn.forward(t)),
            (_, Layer::Linear(l), _, Value::R2(x)) => Value::R2(f::linear(
                x,
                self.effective_linear(i, l.weight.val()),
                l.bias.as_ref().map(|b| b.val()),
            )),
            (_, Layer::Dropout(d), _, x) => each_rank!(x, t => d.forward(t)),
            (Op::Relu, _, _, x) => each_rank!(x, t => activation::relu(t)),
            (Op::Relu6, _, _, x) => each_rank!(x, t => activation::relu6(t)),
            (Op::Identity, _, _, x) => x,
            (Op::Softmax, _, _, x) => each_rank!(x, t => activation::softmax(t, 1)),
            (Op::GlobalAvgPool | Op::Mean(_), _, _, x) => {
                let dims = x.dims();
                let (n, c) = (dims[0], dims[1]);
                let positions: usize = dims[2..].iter().product();
                let per_channel: Tensor<3> = x.into_flat().reshape([n, c, positions]);
                Value::R2(per_channel.mean_dim(2).reshape([n, c])).reshape(out_shape)
            }
            (Op::Flatten, _, _, x) => Value::R2(x.into_flat()),
            (Op::Reshape(r), _, _, x) => x.reshape(&r.shape),
            (Op::ChannelShuffle(s), _, _, x) => {
                // [N, C, P] -> [N, g, C/g, P] -> [N, C/g, g, P] -> [N, C, P], as ShuffleNet.
                let dims = x.dims();
                let (n, c) = (dims[0], dims[1]);
                let positions: usize = dims[2..].iter().product();
                let grid: Tensor<4> = x
                    .into_flat()
                    .reshape([n, s.groups, c / s.groups, positions]);
                let shuffled: Tensor<2> = grid.swap_dims(1, 2).flatten(1, 3);
                Value::R2(shuffled).reshape(out_shape)
            }
            (Op::Pad(p), _, _, x) => {
                let pairs: Vec<(usize, usize)> = p.padding.iter().map(|&[b, a]| (b, a)).collect();
                each_rank!(x, t => t.pad(pairs.clone(), burn::tensor::ops::PadMode::Constant(0.0)))
            }
            (Op::Concat(c), _, _, x) => {
                let axis = c.axis + 1;
                args.insert(0, x);
                match args[0] {
                    Value::R2(_) => Value::R2(Tensor::cat(
                        args.into_iter().map(Value::into_r2).collect(),
                        axis,
                    )),
                    Value::R3(_) => {
                        Value::R3(Tensor::cat(args.into_iter().map(into_r3).collect(), axis))
                    }
                    Value::R4(_) => {
                        Value::R4(Tensor::cat(args.into_iter().map(into_r4).collect(), axis))
                    }
                }
            }
            (Op::Add, _, _, x) => args.into_iter().fold(x, |acc, y| match (acc, y) {
                (Value::R2(a), Value::R2(b)) => Value::R2(a + b),
                (Value::R3(a), Value::R3(b)) => Value::R3(a + b),
                (Value::R4(a), Value::R4(b)) => Value::R4(a + b),
                _ => unreachable!("shape inference checks equal shapes"),
            }),
            (op, _, _, x) => unreachable!(
                "shape inference admits {} on {:?} (expected output {out_shape:?})",
                op.kind(),
                x.dims()
            ),
        }
    }

    /// Multiplies each masked layer's weight by its mask, keeping the parameter (its id, so the
    /// optimiser's state, and whether it is trained).
    pub(crate) fn apply_masks(mut self, masks: &DeviceMasks) -> Self {
        fn masked<const D: usize>(p: Param<Tensor<D>>, mask: &Tensor<D>) -> Param<Tensor<D>> {
            p.map(|t| {
                let trained = t.is_require_grad();
                t.mul(mask.clone()).detach().set_require_grad(trained)
            })
        }
        self.layers = std::mem::take(&mut self.layers)
            .into_iter()
            .zip(&masks.layers)
            .map(|(layer, mask)| match (layer, mask) {
                (Layer::Conv1d(mut c), Some(DeviceMask::Rank3(m))) => {
                    c.weight = masked(c.weight, m);
                    Layer::Conv1d(c)
                }
                (Layer::Conv2d(mut c), Some(DeviceMask::Rank4(m))) => {
                    c.weight = masked(c.weight, m);
                    Layer::Conv2d(c)
                }
                (Layer::Linear(mut l), Some(DeviceMask::Rank2(m))) => {
                    l.weight = masked(l.weight, m);
                    Layer::Linear(l)
                }
                (other, _) => other,
            })
            .collect();
        self
    }

    /// Σ|γ| over every batch norm's scale (`None` for a graph without batch norms): network
    /// slimming's sparsity penalty.
    pub fn bn_gamma_l1(&self) -> Option<Tensor<1>> {
        self.layers
            .iter()
            .filter_map(|layer| match layer {
                Layer::BatchNorm(bn) => Some(bn.gamma.val().abs().sum()),
                _ => None,
            })
            .reduce(|a, b| a + b)
    }

    /// The gradients in `grads` of this module's parameters, on the host under the names and
    /// in the PyTorch layouts of [`GraphModel::weights`] (parameters without a gradient left
    /// out).
    pub fn gradients(&self, grads: &burn::optim::GradientsParams) -> Weights {
        let mut out = Weights::default();
        let mut put = |node: &str, name: &str, t: Option<tinyfit_graph::Tensor>| {
            if let Some(t) = t {
                out.tensors.insert(format!("{node}.{name}"), t);
            }
        };
        fn grad<const D: usize>(
            grads: &burn::optim::GradientsParams,
            p: &Param<Tensor<D>>,
        ) -> Option<tinyfit_graph::Tensor> {
            grads.get::<D>(p.id).map(|g| layers::to_host(&g))
        }
        for (node, layer) in self.plan.graph.nodes.iter().zip(&self.layers) {
            let n = node.name.as_str();
            match layer {
                Layer::Conv1d(c) => {
                    put(n, "weight", grad(grads, &c.weight));
                    put(n, "bias", c.bias.as_ref().and_then(|b| grad(grads, b)));
                }
                Layer::Conv2d(c) => {
                    put(n, "weight", grad(grads, &c.weight));
                    put(n, "bias", c.bias.as_ref().and_then(|b| grad(grads, b)));
                }
                Layer::BatchNorm(bn) => {
                    put(n, "weight", grad(grads, &bn.gamma));
                    put(n, "bias", grad(grads, &bn.beta));
                }
                Layer::Linear(l) => {
                    let w = grads
                        .get::<2>(l.weight.id)
                        .map(|g| layers::to_host(&g.transpose()));
                    put(n, "weight", w);
                    put(n, "bias", l.bias.as_ref().and_then(|b| grad(grads, b)));
                }
                Layer::Dropout(_) | Layer::Stateless(_) => {}
            }
        }
        out
    }

    /// This model with every batch norm's statistics frozen ([`BatchNorm::frozen`]).
    pub fn with_frozen_batch_norms(mut self) -> Self {
        for layer in &mut self.layers {
            if let Layer::BatchNorm(bn) = layer {
                bn.frozen = true;
            }
        }
        self
    }

    /// Copies every weight and running statistic to the host, in PyTorch layouts; weights
    /// under fake quantisation as the forward pass uses them (on their grid).
    pub fn weights(&self) -> Weights {
        let mut out = Weights::default();
        let mut put = |node: &str, name: &str, t: tinyfit_graph::Tensor| {
            out.tensors.insert(format!("{node}.{name}"), t);
        };
        for (node, layer) in self.plan.graph.nodes.iter().zip(&self.layers) {
            let n = node.name.as_str();
            match layer {
                Layer::Conv1d(c) => c.export(|name, t| put(n, name, t)),
                Layer::Conv2d(c) => c.export(|name, t| put(n, name, t)),
                Layer::BatchNorm(bn) => {
                    put(n, "weight", layers::to_host(&bn.gamma.val()));
                    put(n, "bias", layers::to_host(&bn.beta.val()));
                    put(
                        n,
                        "running_mean",
                        layers::to_host(&bn.running_mean.value_sync()),
                    );
                    put(
                        n,
                        "running_var",
                        layers::to_host(&bn.running_var.value_sync()),
                    );
                }
                Layer::Linear(l) => {
                    put(n, "weight", layers::to_host(&l.weight.val().transpose()));
                    if let Some(b) = &l.bias {
                        put(n, "bias", layers::to_host(&b.val()));
                    }
                }
                Layer::Dropout(_) | Layer::Stateless(_) => {}
            }
        }
        for (node, bits) in self.plan.graph.nodes.iter().zip(&self.plan.weight_bits) {
            if let (Some(bits), Some(w)) =
                (bits, out.tensors.get_mut(&format!("{}.weight", node.name)))
            {
                let row = w.data.len() / w.shape[0].max(1);
                for values in w.data.chunks_mut(row.max(1)) {
                    let (codes, scale) = bits.quantize_row(values);
                    for (v, c) in values.iter_mut().zip(codes) {
                        *v = scale * f32::from(c);
                    }
                }
            }
        }
        out
    }
}

fn into_r3(v: Value) -> Tensor<3> {
    match v {
        Value::R3(t) => t,
        other => unreachable!("concat inputs share a rank, got {:?}", other.dims()),
    }
}

fn into_r4(v: Value) -> Tensor<4> {
    match v {
        Value::R4(t) => t,
        other => unreachable!("concat inputs share a rank, got {:?}", other.dims()),
    }
}

/// Kernel, stride and `(before, after)` padding of a pooling window over `N` spatial axes.
type PoolGeometry<const N: usize> = ([usize; N], [usize; N], [(usize, usize); N]);

fn pool_geometry<const N: usize>(p: &Pool, spatial: &[usize]) -> PoolGeometry<N> {
    let kernel = p.kernel.expand(N).expect("checked by analyze");
    let stride = p
        .stride
        .as_ref()
        .map(|s| s.expand(N).expect("checked by analyze"))
        .unwrap_or_else(|| kernel.clone());
    let pad = resolve_padding(&p.padding, spatial, &kernel, &stride).expect("checked by analyze");
    (array(kernel), array(stride), array(pad))
}

fn max_pool_options<const N: usize>(p: &Pool, spatial: &[usize]) -> MaxPoolOptions<N> {
    let (kernel_size, stride, padding) = pool_geometry::<N>(p, spatial);
    MaxPoolOptions {
        kernel_size,
        stride,
        padding,
        dilation: [1; N],
        ceil_mode: false,
    }
}

/// Average pooling counts padding in the divisor unless the graph says otherwise.
fn avg_pool_options<const N: usize>(p: &Pool, spatial: &[usize]) -> AvgPoolOptions<N> {
    let (kernel_size, stride, padding) = pool_geometry::<N>(p, spatial);
    AvgPoolOptions {
        kernel_size,
        stride,
        padding,
        count_include_pad: p.count_include_pad,
        ceil_mode: false,
    }
}

fn conv_options<const N: usize>(c: &Conv, spatial: &[usize]) -> ConvOptions<N> {
    let kernel = c.kernel.expand(N).expect("checked by analyze");
    let stride = c.stride.expand(N).expect("checked by analyze");
    let dilation = c.dilation.expand(N).expect("checked by analyze");
    let span: Vec<usize> = (0..N).map(|i| (kernel[i] - 1) * dilation[i] + 1).collect();
    let pad = resolve_padding(&c.padding, spatial, &span, &stride).expect("checked by analyze");
    ConvOptions {
        stride: array(stride),
        padding: array(pad),
        dilation: array(dilation),
        groups: c.groups,
    }
}

/// A per-axis list as an array; shape inference guarantees the length.
fn array<T: std::fmt::Debug, const N: usize>(v: Vec<T>) -> [T; N] {
    v.try_into().expect("one value per spatial axis")
}
