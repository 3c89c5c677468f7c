//! Post-training int8 quantisation by TFLite's rules.
//!
//! 1. Batch norms are folded into their convolutions ([`crate::fold`]).
//! 2. The float model runs on calibration samples; every value's min and max are recorded.
//! 3. Activations get an asymmetric int8 scale and zero point covering `[min(0, lo), max(0, hi)]`.
//!    Values the int8 runtime cannot rescale share their source's quantisation: a fused relu and
//!    its producer, pooling, flatten and identity outputs and their inputs. Softmax outputs use
//!    TFLite's fixed 1/256 and −128. A concatenation of differently quantised values covers
//!    their union (the lowering rescales each input to it).
//! 4. Convolution weights are symmetric int8 per output channel, fully connected weights per
//!    tensor (`max |w| / 127`); biases are int32 with scale `s_in · s_w`. Layers given a
//!    lower precision ([`WeightBits`]: 4-bit, ternary, binary) take its grid per output
//!    channel: int8 codes within the grid's range, which the code generator packs.

use std::collections::BTreeMap;

use tinyfit_data::Dataset;
use tinyfit_graph::quant::{Affine, QuantGraph, QuantTensor};
use tinyfit_graph::{Graph, GraphError, Op, ValueRef, Weights};
use tinyfit_train::{GraphModel, Precision, WeightBits, batch, cpu};

/// How to calibrate, and each layer's weight precision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtqConfig {
    /// Calibration samples, spread evenly over the given data (all when fewer).
    pub calibration_samples: usize,
    /// Samples per forward pass.
    pub batch_size: usize,
    /// Layers whose weights take a grid other than int8.
    pub weight_bits: Precision,
}

impl Default for PtqConfig {
    fn default() -> Self {
        PtqConfig {
            calibration_samples: 1024,
            batch_size: 256,
            weight_bits: Precision::new(),
        }
    }
}

/// Why a model cannot be quantised, naming the node.
#[derive(Debug, thiserror::Error)]
pub enum PtqError {
    /// The graph or its weights do not check.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// A node PTQ cannot handle as it stands.
    #[error("node '{node}': {message}")]
    Node {
        /// Node name.
        node: String,
        /// What is wrong.
        message: String,
    },
    /// The calibration data does not fit the model.
    #[error("calibration data: {0}")]
    Calibration(String),
}

/// Quantises a float model, calibrating activations on `calibration` (normalised as in training).
pub fn quantize(
    graph: &Graph,
    weights: &Weights,
    calibration: &Dataset,
    config: PtqConfig,
) -> Result<QuantGraph, PtqError> {
    let mut out = quantize_together(&[(graph, weights)], calibration, &config)?;
    Ok(out.pop().expect("one model in, one out"))
}

/// Quantises models that share layers — the routes of one SN-Net — so that each shared layer
/// is the same int8 constants in every model, and the models can be deployed as one.
///
/// Values and layers are matched by name. A value's range is the union of its calibrated
/// ranges over the models; and where a layer reads different values in different models (an
/// anchor's layer after a stitch reads the stitching layer's output, alone it reads the anchor's
/// own), those values share one quantisation, the union of their ranges, because the layer's
/// int32 bias and requantisation depend on its input's scale.
pub fn quantize_together(
    models: &[(&Graph, &Weights)],
    calibration: &Dataset,
    config: &PtqConfig,
) -> Result<Vec<QuantGraph>, PtqError> {
    let folded = models
        .iter()
        .map(|&(graph, weights)| {
            let (graph, weights) = crate::fold::fold_batch_norms(graph, weights)?;
            let analysis = graph.analyze()?;
            weights.check(&graph, &analysis, std::path::Path::new("(folded weights)"))?;
            check_calibration(&graph, calibration)?;
            Ok((graph, weights, analysis))
        })
        .collect::<Result<Vec<_>, PtqError>>()?;
    let mut ranges: BTreeMap<String, (f32, f32)> = BTreeMap::new();
    for (graph, weights, _) in &folded {
        let calibrated = calibrate(graph, weights, calibration, config)?;
        for (name, r) in slot_names(graph).zip(calibrated) {
            let e = ranges.entry(name).or_insert(r);
            *e = union(*e, r);
        }
    }
    tie_shared_inputs(&folded, &mut ranges);
    folded
        .into_iter()
        .map(|(graph, weights, analysis)| {
            let r: Vec<(f32, f32)> = slot_names(&graph).map(|n| ranges[&n]).collect();
            let activations = assign_activations(&graph, &analysis, &r)?;
            let (qweights, biases) = quantize_weights(
                &graph,
                &analysis,
                &weights,
                &activations,
                &config.weight_bits,
            )?;
            Ok(QuantGraph {
                graph,
                activations,
                weights: qweights,
                biases,
                interface: Default::default(),
            })
        })
        .collect()
}

/// Refuses calibration samples that do not fit `graph`'s one input.
fn check_calibration(graph: &Graph, calibration: &Dataset) -> Result<(), PtqError> {
    if graph.inputs.len() != 1 || graph.inputs[0].shape != calibration.sample_shape {
        return Err(PtqError::Calibration(format!(
            "samples of shape {:?} for a model with inputs {:?}",
            calibration.sample_shape,
            graph.inputs.iter().map(|i| &i.shape).collect::<Vec<_>>()
        )));
    }
    if calibration.is_empty() {
        return Err(PtqError::Calibration("no samples".into()));
    }
    Ok(())
}

/// The smallest range covering `a` and `b`.
fn union(a: (f32, f32), b: (f32, f32)) -> (f32, f32) {
    (a.0.min(b.0), a.1.max(b.1))
}

/// The names of a graph's slots: its input, then every node.
fn slot_names(graph: &Graph) -> impl Iterator<Item = String> + '_ {
    std::iter::once(graph.inputs[0].name.clone()).chain(graph.nodes.iter().map(|n| n.name.clone()))
}

/// Widens `ranges` until every layer that reads different values in different models reads
/// values of one quantisation: the ranges that decide them (see [`range_source`]) take their
/// union, repeated until nothing changes (a value may be tied through several layers).
fn tie_shared_inputs(
    models: &[(Graph, Weights, tinyfit_graph::Analysis)],
    ranges: &mut BTreeMap<String, (f32, f32)>,
) {
    // Per layer name and input position, the names of the ranges deciding what it reads.
    let mut reads: BTreeMap<(&str, usize), Vec<String>> = BTreeMap::new();
    for (graph, _, analysis) in models {
        let names: Vec<String> = slot_names(graph).collect();
        let fused = analysis.fused_activations(graph);
        for (node, info) in graph.nodes.iter().zip(&analysis.nodes) {
            for (k, &v) in info.inputs.iter().enumerate() {
                let source = names[range_source(graph, analysis, &fused, slot(v))].clone();
                let tied = reads.entry((node.name.as_str(), k)).or_default();
                if !tied.contains(&source) {
                    tied.push(source);
                }
            }
        }
    }
    let groups: Vec<&Vec<String>> = reads.values().filter(|g| g.len() > 1).collect();
    let mut changed = true;
    while changed {
        changed = false;
        for group in &groups {
            let all = group
                .iter()
                .map(|n| ranges[n])
                .reduce(union)
                .expect("groups of two or more");
            for n in group.iter() {
                changed |= ranges[n] != all;
                ranges.insert(n.clone(), all);
            }
        }
    }
}

/// A value's slot: 0 for the graph input, `1 + i` for node `i`.
fn slot(v: ValueRef) -> usize {
    match v {
        ValueRef::Input(_) => 0,
        ValueRef::Node(i) => i + 1,
    }
}

/// The earlier slot whose quantisation slot `s` takes, or `s` where it has its own: values the
/// int8 runtime cannot rescale (pooling, flatten, pad, reshape, shuffle, identity and dropout
/// outputs)
/// take their input's, an activation takes its producer's.
fn copied_from(graph: &Graph, analysis: &tinyfit_graph::Analysis, s: usize) -> usize {
    let Some(i) = s.checked_sub(1) else {
        return s;
    };
    let inputs = &analysis.nodes[i].inputs;
    match (&graph.nodes[i].op, &inputs[..]) {
        (
            Op::MaxPool1d(_)
            | Op::MaxPool2d(_)
            | Op::AvgPool1d(_)
            | Op::AvgPool2d(_)
            | Op::GlobalAvgPool
            | Op::Flatten
            | Op::Pad(_)
            | Op::Reshape(_)
            | Op::ChannelShuffle(_)
            | Op::Identity
            | Op::Dropout(_),
            [input, ..],
        ) => slot(*input),
        (Op::Relu | Op::Relu6, [ValueRef::Node(p)]) => p + 1,
        _ => s,
    }
}

/// The slot whose calibrated range decides slot `s`'s quantisation: the value it copies its
/// quantisation from, or the activation fused into that value's producer (`fused`: the
/// analysis's [`fused_activations`](tinyfit_graph::Analysis::fused_activations)).
fn range_source(
    graph: &Graph,
    analysis: &tinyfit_graph::Analysis,
    fused: &[Option<usize>],
    s: usize,
) -> usize {
    let mut s = s;
    loop {
        let from = copied_from(graph, analysis, s);
        if from == s {
            break;
        }
        s = from;
    }
    match s.checked_sub(1) {
        Some(i) => fused[i].map_or(s, |j| j + 1),
        None => s,
    }
}

/// `(min, max)` of the graph input and of every node output over the calibration samples.
fn calibrate(
    graph: &Graph,
    weights: &Weights,
    data: &Dataset,
    config: &PtqConfig,
) -> Result<Vec<(f32, f32)>, PtqError> {
    let device = cpu();
    let model = GraphModel::new(graph, weights, &device)?;
    let n = data.len().min(config.calibration_samples.max(1));
    let indices: Vec<usize> = (0..n).map(|k| k * data.len() / n).collect();
    // Slot 0 is the input; slot 1 + i is node i.
    let mut ranges = vec![(f32::INFINITY, f32::NEG_INFINITY); graph.nodes.len() + 1];
    let mut widen = |slot: usize, values: &[f32]| {
        let r = &mut ranges[slot];
        for &v in values {
            r.0 = r.0.min(v);
            r.1 = r.1.max(v);
        }
    };
    for chunk in indices.chunks(config.batch_size.max(1)) {
        let x = batch::inputs(data, chunk, &device);
        let (inputs, values) = model.forward_all(vec![x]);
        widen(0, &inputs[0].to_vec());
        for (i, v) in values.iter().enumerate() {
            widen(i + 1, &v.to_vec());
        }
    }
    Ok(ranges)
}

/// TFLite's asymmetric int8 parameters for a real range (widened to include zero).
pub fn affine_for_range(lo: f32, hi: f32) -> Affine {
    let (lo, hi) = (lo.min(0.0) as f64, hi.max(0.0) as f64);
    if hi - lo < 1e-12 {
        return Affine {
            scale: 1.0,
            zero_point: 0,
        };
    }
    let scale = (hi - lo) / 255.0;
    let zero_point = (-128.0 - lo / scale).round().clamp(-128.0, 127.0) as i32;
    Affine {
        scale: scale as f32,
        zero_point,
    }
}

/// Chooses every value's quantisation, tying values the runtime cannot rescale between.
fn assign_activations(
    graph: &Graph,
    analysis: &tinyfit_graph::Analysis,
    ranges: &[(f32, f32)],
) -> Result<BTreeMap<String, Affine>, PtqError> {
    // An activation fused into its producer gives the producer its range.
    let mut range: Vec<(f32, f32)> = ranges.to_vec();
    for (p, act) in analysis.fused_activations(graph).into_iter().enumerate() {
        if let Some(j) = act {
            range[p + 1] = range[j + 1];
        }
    }
    let mut affine: Vec<Affine> = range
        .iter()
        .map(|&(lo, hi)| affine_for_range(lo, hi))
        .collect();
    for (i, node) in graph.nodes.iter().enumerate() {
        let from = copied_from(graph, analysis, i + 1);
        if from != i + 1 {
            affine[i + 1] = affine[from];
            continue;
        }
        let input = analysis.nodes[i].inputs.first().map(|&v| affine[slot(v)]);
        match &node.op {
            Op::Softmax => {
                affine[i + 1] = Affine {
                    scale: 1.0 / 256.0,
                    zero_point: -128,
                }
            }
            Op::Concat(_) => {
                // Inputs quantised alike pass through; otherwise the output covers them all
                // and the lowering rescales each input to it.
                let inputs = &analysis.nodes[i].inputs;
                let first = input.expect("inputs");
                affine[i + 1] = if inputs.iter().all(|&v| affine[slot(v)] == first) {
                    first
                } else {
                    let (lo, hi) = inputs.iter().fold((0f32, 0f32), |(lo, hi), &v| {
                        let (l, h) = range[slot(v)];
                        (lo.min(l), hi.max(h))
                    });
                    affine_for_range(lo, hi)
                };
            }
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    out.insert(graph.inputs[0].name.clone(), affine[0]);
    for (i, node) in graph.nodes.iter().enumerate() {
        out.insert(node.name.clone(), affine[i + 1]);
    }
    Ok(out)
}

type QuantWeights = (BTreeMap<String, QuantTensor>, BTreeMap<String, Vec<i32>>);

/// Symmetric weights (int8, or the grid `precision` names) and int32 biases of every
/// convolution and linear layer.
fn quantize_weights(
    graph: &Graph,
    analysis: &tinyfit_graph::Analysis,
    weights: &Weights,
    activations: &BTreeMap<String, Affine>,
    precision: &Precision,
) -> Result<QuantWeights, PtqError> {
    let mut qweights = BTreeMap::new();
    let mut biases = BTreeMap::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        let (channels, per_channel) = match &node.op {
            Op::Conv1d(c) | Op::Conv2d(c) => (c.out_channels, true),
            Op::Linear(l) => (l.out_features, false),
            _ => continue,
        };
        let w = &weights.tensors[&format!("{}.weight", node.name)];
        let per = w.data.len() / channels;
        let bits = precision
            .get(&node.name)
            .copied()
            .unwrap_or(WeightBits::Int8);
        // Below eight bits every layer is per channel: the grids' scales are per filter.
        let per_channel = per_channel || bits != WeightBits::Int8;
        let rows: Vec<(Vec<i8>, f32)> = if per_channel {
            w.data
                .chunks_exact(per)
                .map(|row| bits.quantize_row(row))
                .collect()
        } else {
            vec![bits.quantize_row(&w.data)]
        };
        let scales: Vec<f32> = rows.iter().map(|r| r.1).collect();
        let data: Vec<i8> = rows.into_iter().flat_map(|r| r.0).collect();
        let input = match analysis.nodes[i].inputs[0] {
            ValueRef::Input(k) => &graph.inputs[k].name,
            ValueRef::Node(j) => &graph.nodes[j].name,
        };
        let s_in = activations[input].scale as f64;
        if let Some(b) = weights.tensors.get(&format!("{}.bias", node.name)) {
            let q: Vec<i32> = b
                .data
                .iter()
                .enumerate()
                .map(|(c, &v)| {
                    let s = s_in * scales[if per_channel { c } else { 0 }] as f64;
                    (v as f64 / s)
                        .round()
                        .clamp(i32::MIN as f64, i32::MAX as f64) as i32
                })
                .collect();
            biases.insert(node.name.clone(), q);
        }
        qweights.insert(
            node.name.clone(),
            QuantTensor {
                shape: w.shape.clone(),
                data,
                scales,
            },
        );
    }
    Ok((qweights, biases))
}
