//! A route as a standalone model: the graph and weights that compute what [`SnNet::forward`]
//! computes for it, so that everything that takes a model — analysis, post-training
//! quantisation, deployment — takes a route.
//!
//! Node names keep the prefixes of [`SnNet::state`] (`anchor{a}/{node}`, `layer{i}`): routes
//! that share a part share its node names and weights, which is what lets the routes of one
//! SN-Net be quantised alike and deployed as one package.

use tinyfit_graph::{Conv, Extent, Graph, Linear, Node, Op, Padding, Tensor, Weights};

use crate::anchor::Anchor;
use crate::model::SnNet;
use crate::space::Route;

/// One route of an SN-Net as a model.
#[derive(Debug, Clone)]
pub struct RouteModel {
    /// The route's graph: the front anchor's nodes up to the stitch, the stitching layer (a
    /// 1×1 convolution, or a linear layer on flat features), the end anchor's nodes after it.
    pub graph: Graph,
    /// Its weights, named as in the graph.
    pub weights: Weights,
    /// For a stitched route, the stitching layer's node and the node of the end anchor whose
    /// value it stands in for (what the end anchor's remaining nodes read in the anchor alone).
    pub stands_in_for: Option<(String, String)>,
}

impl SnNet {
    /// Every route as a model, in the order of [`SnNet::routes`].
    pub fn route_models(&self) -> Vec<RouteModel> {
        let state = self.state();
        (0..self.routes().len())
            .map(|r| self.route_model(r, &state))
            .collect()
    }

    /// Route `route` as a model, with the weights of `state` (this net's [`SnNet::state`]).
    fn route_model(&self, route: usize, state: &Weights) -> RouteModel {
        let anchors = self.anchor_blocks();
        let mut nodes = Vec::new();
        let (output, stands_in_for, name) = match self.routes()[route] {
            Route::Anchor(a) => {
                let anchor = &anchors[a];
                nodes.extend(prefixed(anchor, a, 0..=anchor.output(), None));
                (
                    node_name(anchor, a, anchor.output()),
                    None,
                    anchor.graph.name.clone(),
                )
            }
            Route::Stitched {
                front, end, stitch, ..
            } => {
                let (f, e) = (&anchors[front], &anchors[end]);
                let last = f.block_output(stitch.front);
                let cut = e
                    .block_input(stitch.end)
                    .expect("stitched end blocks follow a node");
                let layer = self.layer_of(route).expect("stitched routes have a layer");
                let layer_name = format!("layer{layer}");
                nodes.extend(prefixed(f, front, 0..=last, None));
                let [c_out, _] = self.layers[layer].weight.dims();
                nodes.push(Node::with_inputs(
                    layer_name.clone(),
                    stitching_op(f.shape(last).len(), c_out),
                    &[&node_name(f, front, last)],
                ));
                let renamed = (e.graph.nodes[cut].name.as_str(), layer_name.as_str());
                nodes.extend(prefixed(e, end, cut + 1..=e.output(), Some(renamed)));
                (
                    node_name(e, end, e.output()),
                    Some((layer_name, node_name(e, end, cut))),
                    format!(
                        "{} blocks 0-{} stitched to {} blocks {}-",
                        f.graph.name, stitch.front, e.graph.name, stitch.end
                    ),
                )
            }
        };
        let graph = Graph {
            name,
            inputs: anchors[0].graph.inputs.clone(),
            nodes,
            outputs: vec![output],
        };
        let weights = route_weights(&graph, state);
        RouteModel {
            graph,
            weights,
            stands_in_for,
        }
    }
}

/// Node `i` of anchor `a` as the route graphs name it.
fn node_name(anchor: &Anchor, a: usize, i: usize) -> String {
    format!("anchor{a}/{}", anchor.graph.nodes[i].name)
}

/// Anchor `a`'s nodes `range`, prefixed; reads of `renamed.0` (a node of the anchor) read
/// `renamed.1` (a route node) instead. Reads of the graph input stay as they are.
fn prefixed(
    anchor: &Anchor,
    a: usize,
    range: std::ops::RangeInclusive<usize>,
    renamed: Option<(&str, &str)>,
) -> impl Iterator<Item = Node> {
    let inputs: Vec<String> = anchor.graph.inputs.iter().map(|i| i.name.clone()).collect();
    anchor.graph.nodes[range].iter().map(move |node| {
        let read = |v: &String| match renamed {
            Some((from, to)) if v == from => to.to_string(),
            _ if inputs.contains(v) => v.clone(),
            _ => format!("anchor{a}/{v}"),
        };
        Node {
            name: format!("anchor{a}/{}", node.name),
            inputs: node.inputs.iter().map(read).collect(),
            op: node.op.clone(),
        }
    })
}

/// The stitching layer as a graph op on a value of per-sample rank `rank` (`[C]`, `[C, L]`
/// or `[C, H, W]`).
fn stitching_op(rank: usize, out_channels: usize) -> Op {
    let conv = Conv {
        out_channels,
        kernel: Extent::Uniform(1),
        stride: Extent::Uniform(1),
        padding: Padding::default(),
        dilation: Extent::Uniform(1),
        groups: 1,
        bias: true,
    };
    match rank {
        1 => Op::Linear(Linear {
            out_features: out_channels,
            bias: true,
        }),
        2 => Op::Conv1d(conv),
        _ => Op::Conv2d(conv),
    }
}

/// The tensors of `graph`'s nodes from `state`; stitching layers' `[out, in]` matrices take
/// the kernel axes of the convolution they become.
fn route_weights(graph: &Graph, state: &Weights) -> Weights {
    let mut out = Weights::default();
    for node in &graph.nodes {
        let prefix = format!("{}.", node.name);
        for (key, t) in state.tensors.range(prefix.clone()..) {
            if !key.starts_with(&prefix) {
                break;
            }
            let mut t: Tensor = t.clone();
            if key.ends_with(".weight") {
                match node.op {
                    Op::Conv1d(_) if t.shape.len() == 2 => t.shape.push(1),
                    Op::Conv2d(_) if t.shape.len() == 2 => t.shape.extend([1, 1]),
                    _ => {}
                }
            }
            out.tensors.insert(key.clone(), t);
        }
    }
    out
}
