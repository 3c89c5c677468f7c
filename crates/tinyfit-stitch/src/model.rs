//! One SN-Net: the anchors and every stitching layer as one trainable module, which runs any
//! route of the stitching space (`snnet.md` §A5).

use std::collections::BTreeMap;
use std::sync::Arc;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use tinyfit_graph::Weights;
use tinyfit_train::channel_map::ChannelMap;
use tinyfit_train::layers::to_host;
use tinyfit_train::{GraphModel, Value};

use crate::anchor::Anchor;
use crate::least_squares::{self, Affine, LeastSquaresError};
use crate::space::{Route, Space};

/// Anchors joined by stitching layers.
#[derive(Module, Debug)]
pub struct SnNet {
    /// The anchors, from the smallest.
    pub anchors: Vec<GraphModel>,
    /// Every stitching layer.
    pub layers: Vec<ChannelMap>,
    #[module(skip)]
    plan: Arc<Plan>,
}

/// The routes this SN-Net runs and the layer each stitch uses.
#[derive(Debug, Clone)]
struct Plan {
    anchors: Vec<Anchor>,
    routes: Vec<Route>,
    /// Per route, its stitching layer (`None` for an anchor).
    layer_of: Vec<Option<usize>>,
    /// Stitches of the space left out: their front and end activations differ in spatial
    /// shape, or the end block reads the graph input.
    dropped: usize,
}

impl SnNet {
    /// The SN-Net of `anchors` (with `weights`) over the routes of `space` that can be
    /// stitched. The stitches of one window share a stitching layer where their channel
    /// counts agree (each distinct pair of counts gets its own); layers start from PyTorch's
    /// default initialisation (seeded by `seed`).
    pub fn new(
        anchors: Vec<Anchor>,
        weights: &[Weights],
        space: &Space,
        seed: u64,
        device: &Device,
    ) -> Result<Self, tinyfit_graph::GraphError> {
        let models = anchors
            .iter()
            .zip(weights)
            .map(|(a, w)| GraphModel::new(&a.graph, w, device))
            .collect::<Result<Vec<_>, _>>()?;
        let mut routes = Vec::new();
        let mut layer_of = Vec::new();
        // Layer index by (pair, window layer, channel counts); the counts by layer index.
        let mut keys: BTreeMap<(usize, usize, usize, usize), usize> = BTreeMap::new();
        let mut dims: Vec<(usize, usize)> = Vec::new();
        let mut dropped = 0;
        for &route in &space.routes {
            let layer = match route {
                Route::Anchor(_) => None,
                Route::Stitched {
                    pair,
                    front,
                    end,
                    stitch,
                } => {
                    let Some((c_in, c_out)) =
                        stitch_channels(&anchors[front], &anchors[end], stitch.front, stitch.end)
                    else {
                        dropped += 1;
                        continue;
                    };
                    let index = *keys
                        .entry((pair, stitch.layer, c_in, c_out))
                        .or_insert_with(|| {
                            dims.push((c_in, c_out));
                            dims.len() - 1
                        });
                    Some(index)
                }
            };
            routes.push(route);
            layer_of.push(layer);
        }
        let layers = dims
            .iter()
            .enumerate()
            .map(|(i, &(c_in, c_out))| {
                ChannelMap::pytorch_default(c_out, c_in, seed.wrapping_add(i as u64), device)
            })
            .collect();
        Ok(SnNet {
            anchors: models,
            layers,
            plan: Arc::new(Plan {
                anchors,
                routes,
                layer_of,
                dropped,
            }),
        })
    }

    /// This SN-Net with the anchors' batch-norm statistics frozen for joint training
    /// ([`GraphModel::with_frozen_batch_norms`]): every route normalises with the statistics
    /// the anchors were trained with, and stitched routes cannot shift them away from what the
    /// anchors alone need (the reference's ViTs have layer norms and no such statistics).
    pub fn with_frozen_batch_norms(mut self) -> Self {
        self.anchors = self
            .anchors
            .into_iter()
            .map(GraphModel::with_frozen_batch_norms)
            .collect();
        self
    }

    /// The routes, anchors first.
    pub fn routes(&self) -> &[Route] {
        &self.plan.routes
    }

    /// The stitching layer route `route` uses (`None` for an anchor).
    pub fn layer_of(&self, route: usize) -> Option<usize> {
        self.plan.layer_of[route]
    }

    /// Stitches of the space that could not be stitched (spatial shapes differ, or the end
    /// block reads the graph input).
    pub fn dropped(&self) -> usize {
        self.plan.dropped
    }

    /// The anchors' block structure.
    pub fn anchor_blocks(&self) -> &[Anchor] {
        &self.plan.anchors
    }

    /// Class logits `[N, classes]` of route `route` on a batch.
    pub fn forward(&self, route: usize, x: Value) -> Tensor<2> {
        match self.plan.routes[route] {
            Route::Anchor(a) => self.anchors[a].logits(x),
            Route::Stitched {
                front, end, stitch, ..
            } => {
                let layer = self.plan.layer_of[route].expect("stitched routes have a layer");
                let h = self.front_value(front, stitch.front, x);
                self.back(end, stitch.end, self.layers[layer].forward(h))
            }
        }
    }

    /// Anchor `a`'s value at the output of block `j`.
    fn front_value(&self, a: usize, j: usize, x: Value) -> Value {
        let last = self.plan.anchors[a].block_output(j);
        self.anchors[a]
            .forward_span(&[x], Vec::new(), last + 1)
            .swap_remove(last)
    }

    /// Anchor `a`'s value at the input of block `k` (which is a node: see [`stitch_channels`]).
    fn end_target(&self, a: usize, k: usize, x: Value) -> Value {
        let cut = self.plan.anchors[a]
            .block_input(k)
            .expect("stitched end blocks start after a node");
        self.anchors[a]
            .forward_span(&[x], Vec::new(), cut + 1)
            .swap_remove(cut)
    }

    /// Anchor `a` from block `k` on, given the value entering it; its logits.
    fn back(&self, a: usize, k: usize, h: Value) -> Tensor<2> {
        let anchor = &self.plan.anchors[a];
        let cut = anchor.block_input(k).expect("checked when planned");
        let mut earlier = vec![None; cut + 1];
        earlier[cut] = Some(h);
        self.anchors[a]
            .forward_span(&[], earlier, anchor.output() + 1)
            .pop()
            .expect("the span ends at the output")
            .into_r2()
    }

    /// Every weight: anchor `a`'s as `anchor{a}/{name}`, stitching layer `i`'s as
    /// `layer{i}.weight` (`[out, in]`) and `layer{i}.bias` (a checkpoint).
    pub fn state(&self) -> Weights {
        let mut out = Weights::default();
        for (a, model) in self.anchors.iter().enumerate() {
            for (name, t) in model.weights().tensors {
                out.tensors.insert(format!("anchor{a}/{name}"), t);
            }
        }
        for (i, layer) in self.layers.iter().enumerate() {
            out.tensors
                .insert(format!("layer{i}.weight"), to_host(&layer.weight.val()));
            out.tensors
                .insert(format!("layer{i}.bias"), to_host(&layer.bias.val()));
        }
        out
    }

    /// This SN-Net with the weights of `state` (as [`SnNet::state`] writes them).
    pub fn with_state(self, state: &Weights) -> Result<Self, tinyfit_graph::GraphError> {
        let device = self.anchors[0].devices()[0].clone();
        let anchors = self
            .plan
            .anchors
            .iter()
            .enumerate()
            .map(|(a, anchor)| {
                let prefix = format!("anchor{a}/");
                let w = Weights {
                    tensors: state
                        .tensors
                        .iter()
                        .filter_map(|(k, t)| {
                            k.strip_prefix(&prefix).map(|k| (k.to_string(), t.clone()))
                        })
                        .collect(),
                };
                GraphModel::new(&anchor.graph, &w, &device)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let layers = self
            .layers
            .iter()
            .enumerate()
            .map(|(i, old)| {
                let get = |name: &str| {
                    state
                        .tensors
                        .get(&format!("layer{i}.{name}"))
                        .ok_or_else(|| tinyfit_graph::GraphError::Weights {
                            path: "(SN-Net state)".into(),
                            message: format!("missing tensor 'layer{i}.{name}'"),
                        })
                };
                let (w, b) = (get("weight")?, get("bias")?);
                if w.shape != old.weight.dims() {
                    return Err(tinyfit_graph::GraphError::Weights {
                        path: "(SN-Net state)".into(),
                        message: format!(
                            "stitching layer {i} is {:?} in the state, {:?} in the SN-Net",
                            w.shape,
                            old.weight.dims()
                        ),
                    });
                }
                Ok(ChannelMap::from_host(
                    w.data.clone(),
                    b.data.clone(),
                    &device,
                ))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SnNet {
            anchors,
            layers,
            plan: self.plan,
        })
    }

    /// Every stitching layer set by least squares from the activations of the batch `x`
    /// (the reference's one batch of ~100 training samples, on the plain device; the anchors
    /// in inference mode): each stitch's fit, averaged over the stitches that share the layer.
    pub fn init_least_squares(self, x: Value) -> Result<Self, LeastSquaresError> {
        let device = self.anchors[0].devices()[0].clone();
        let plain = self.valid();
        let mut fits: Vec<Vec<Affine>> = vec![Vec::new(); plain.layers.len()];
        for (r, route) in plain.plan.routes.iter().enumerate() {
            let (
                Route::Stitched {
                    front, end, stitch, ..
                },
                Some(layer),
            ) = (*route, plain.plan.layer_of[r])
            else {
                continue;
            };
            let a = plain.front_value(front, stitch.front, x.clone());
            let b = plain.end_target(end, stitch.end, x.clone());
            let (a_dims, b_dims) = (a.dims(), b.dims());
            fits[layer].push(least_squares::fit(
                &least_squares::rows(&a.to_vec(), &a_dims),
                &least_squares::rows(&b.to_vec(), &b_dims),
            )?);
        }
        let mut this = self;
        this.layers = fits
            .iter()
            .zip(this.layers)
            .map(|(f, old)| match least_squares::average(f) {
                Some(mean) => ChannelMap::from_host(
                    mean.weight.iter().map(|&v| v as f32).collect(),
                    mean.bias.iter().map(|&v| v as f32).collect(),
                    &device,
                ),
                None => old,
            })
            .collect();
        Ok(this)
    }
}

/// The channel counts a stitching layer maps between for the stitch `(j, k)` of `front` to
/// `end`, or `None` where it cannot be stitched: the end block reads the graph input, or the
/// two activations differ in spatial shape.
fn stitch_channels(front: &Anchor, end: &Anchor, j: usize, k: usize) -> Option<(usize, usize)> {
    let cut = end.block_input(k)?;
    let a = front.shape(front.block_output(j));
    let b = end.shape(cut);
    (a[1..] == b[1..]).then_some((a[0], b[0]))
}
