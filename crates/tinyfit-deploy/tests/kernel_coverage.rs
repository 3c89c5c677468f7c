//! Kernels and options the MLPerf models do not exercise, checked against LiteRT: a synthetic
//! int8 graph (random weights, chosen scales) with strided and dilated SAME convolutions, a
//! depthwise convolution with channel multiplier 2, relu6, SAME max and average pooling (the
//! divisor counts only in-bounds taps), a sum of differently scaled inputs, a concatenation,
//! global average pooling, a linear layer and softmax; exported by tinyfit, run by LiteRT's
//! reference kernels and by tinyfit on the same random inputs.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use tinyfit_deploy::{lower, tflite};

mod common;
use common::{Rng, WEIGHT_SCALES, quantised_plain};
use tinyfit_graph::Graph;
use tinyfit_graph::quant::{Affine, QuantGraph, QuantTensor};

fn graph() -> Graph {
    let json = serde_json::json!({
        "inputs": [{"name": "x", "shape": [4, 15, 13]}],
        "nodes": [
            {"name": "c1", "op": "conv2d", "out_channels": 6, "kernel": 3, "stride": 2, "padding": "same"},
            {"name": "r1", "op": "relu6"},
            {"name": "dw", "op": "conv2d", "out_channels": 12, "kernel": 3, "groups": 6, "dilation": 2, "padding": "same"},
            {"name": "r2", "op": "relu"},
            {"name": "mp", "op": "max_pool2d", "kernel": 3, "stride": 2, "padding": "same"},
            {"name": "ap", "op": "avg_pool2d", "kernel": [2, 3], "stride": 1, "padding": "same", "count_include_pad": false},
            {"name": "c2", "op": "conv2d", "out_channels": 12, "kernel": [1, 2], "padding": "same", "inputs": ["mp"]},
            {"name": "sum", "op": "add", "inputs": ["ap", "c2"]},
            {"name": "r3", "op": "relu"},
            {"name": "cat", "op": "concat", "inputs": ["r3", "mp"]},
            {"name": "gap", "op": "global_avg_pool"},
            {"name": "fc", "op": "linear", "out_features": 5},
            {"name": "prob", "op": "softmax"}
        ]
    });
    Graph::from_value(json).expect("valid graph")
}

/// Random int8 weights and int32 biases; scales chosen so values use the int8 range.
fn quantised(graph: Graph, rng: &mut Rng) -> QuantGraph {
    let analysis = graph.analyze().expect("checks");
    let mut activations = BTreeMap::new();
    let affine = |rng: &mut Rng| Affine {
        scale: rng.f32(0.02, 0.08),
        zero_point: (rng.next() % 60) as i32 - 30,
    };
    activations.insert("x".to_string(), affine(rng));
    let (mut weights, mut biases) = (BTreeMap::new(), BTreeMap::new());
    for (node, a) in graph.nodes.iter().zip(&analysis.nodes) {
        let name = node.name.clone();
        let input = match a.inputs[0] {
            tinyfit_graph::ValueRef::Input(_) => "x".to_string(),
            tinyfit_graph::ValueRef::Node(j) => graph.nodes[j].name.clone(),
        };
        let a_in = activations[&input];
        let own = match node.name.as_str() {
            // Fused activations share their producer's parameters; pools, concat and the
            // global pool keep their input's; softmax has TFLite's fixed ones.
            "r1" | "r2" | "r3" => activations[&input],
            "mp" | "ap" | "gap" | "cat" => a_in,
            "prob" => Affine {
                scale: 1.0 / 256.0,
                zero_point: -128,
            },
            _ => affine(rng),
        };
        activations.insert(name.clone(), own);
        if let Some(w) = a.shape.tensors.iter().find(|t| t.name == "weight") {
            let n: usize = w.shape.iter().product();
            let channels = w.shape[0];
            let scales: Vec<f32> = (0..channels).map(|_| rng.f32(0.002, 0.01)).collect();
            let data = (0..n).map(|_| rng.i8()).collect();
            let bias = (0..channels)
                .map(|_| (rng.next() % 2001) as i32 - 1000)
                .collect();
            weights.insert(
                name.clone(),
                QuantTensor {
                    shape: w.shape.clone(),
                    data,
                    scales,
                },
            );
            biases.insert(name, bias);
        }
    }
    // The relus are fused: their producers write the relus' values, so both need one set of
    // parameters, and the concat's inputs must share the output's.
    for (relu, producer) in [("r1", "c1"), ("r2", "dw"), ("r3", "sum")] {
        let a = activations[producer];
        activations.insert(relu.to_string(), a);
    }
    let mp = activations["mp"];
    activations.insert("r3".into(), mp);
    activations.insert("sum".into(), mp);
    activations.insert("cat".into(), mp);
    activations.insert("gap".into(), mp);
    QuantGraph {
        graph,
        activations,
        weights,
        biases,
        interface: Default::default(),
    }
}

/// LiteRT's output bytes for the model file `model` on the input bytes `inputs` (the raw
/// samples back to back, in the model's input type).
fn litert_outputs(model: &[u8], inputs: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let (m, inp, lit, reference) = (
        dir.path().join("m.tflite"),
        dir.path().join("in.bin"),
        dir.path().join("litert.bin"),
        dir.path().join("ref.bin"),
    );
    std::fs::write(&m, model).unwrap();
    std::fs::write(&inp, inputs).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/litert_reference.py");
    let status = Command::new("python3")
        .arg(&script)
        .args([&m, &inp, &lit, &reference])
        .status()
        .expect("python3 runs");
    assert!(status.success(), "LiteRT reference failed");
    std::fs::read(&lit).unwrap()
}

/// Runs `q` in tinyfit and, exported, in LiteRT on `samples` random inputs; returns
/// (outputs, outputs that differ, distinct output values).
fn compare_with_litert(q: &QuantGraph, rng: &mut Rng, samples: usize) -> (usize, usize, usize) {
    let program = lower(q).expect("lowers");
    let bytes = tflite::export(q).expect("exports");
    let n = program.input(0).unwrap().shape.len();
    let xs: Vec<i8> = (0..n * samples).map(|_| rng.i8()).collect();
    let mut ours = Vec::new();
    for x in xs.chunks_exact(n) {
        ours.extend(program.run(&[x]).unwrap().remove(0));
    }
    let bytes_in: Vec<u8> = xs.iter().map(|&v| v as u8).collect();
    let lit: Vec<i8> = litert_outputs(&bytes, &bytes_in)
        .into_iter()
        .map(|b| b as i8)
        .collect();
    assert_eq!(ours.len(), lit.len());
    let differ = ours.iter().zip(&lit).filter(|(a, b)| a != b).count();
    let distinct: std::collections::BTreeSet<i8> = ours.iter().copied().collect();
    (ours.len(), differ, distinct.len())
}

#[test]
fn synthetic_graph_matches_litert() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let q = quantised(graph(), &mut rng);
    let (outputs, differ, distinct) = compare_with_litert(&q, &mut rng, 50);
    println!("{outputs} outputs, {distinct} distinct values: {differ} differ from LiteRT");
    // The outputs are softmax probabilities: make sure they are not all saturated.
    assert!(distinct > 10, "degenerate outputs");
    assert_eq!(differ, 0);
}

/// PyTorch-style padding (symmetric under a stride, which TFLite's SAME is not) is exported as
/// PAD + VALID; an explicit pad op, 1-D convolutions and max pooling go through too.
#[test]
fn pytorch_padding_and_1d_layers_match_litert() {
    let graphs = [
        serde_json::json!({
            "inputs": [{"name": "x", "shape": [3, 16, 16]}],
            "nodes": [
                {"name": "c1", "op": "conv2d", "out_channels": 8, "kernel": 3, "stride": 2, "padding": 1},
                {"name": "r1", "op": "relu"},
                {"name": "pd", "op": "pad", "padding": [[1, 2], [0, 1]]},
                {"name": "c2", "op": "conv2d", "out_channels": 8, "kernel": 2},
                {"name": "gap", "op": "global_avg_pool"},
                {"name": "fc", "op": "linear", "out_features": 7}
            ]
        }),
        serde_json::json!({
            "inputs": [{"name": "x", "shape": [4, 30]}],
            "nodes": [
                {"name": "c1", "op": "conv1d", "out_channels": 8, "kernel": 5, "stride": 2, "padding": 2},
                {"name": "r1", "op": "relu6"},
                {"name": "mp", "op": "max_pool1d", "kernel": 2},
                {"name": "dw", "op": "conv1d", "out_channels": 8, "kernel": 3, "groups": 8, "padding": 1},
                {"name": "flat", "op": "flatten"},
                {"name": "fc", "op": "linear", "out_features": 5}
            ]
        }),
    ];
    let mut rng = Rng(0x0bad_cafe_f00d_1234);
    for json in graphs {
        let g = Graph::from_value(json).expect("valid graph");
        let q = quantised_plain(g, &mut rng, WEIGHT_SCALES);
        let (outputs, differ, distinct) = compare_with_litert(&q, &mut rng, 40);
        println!("{outputs} outputs, {distinct} distinct values: {differ} differ from LiteRT");
        assert!(distinct > 10, "degenerate outputs");
        assert_eq!(differ, 0);
    }
}

/// A float interface (QUANTIZE in, DEQUANTIZE out) round-trips through export and import, and
/// quantising inputs and dequantising outputs give LiteRT's floats exactly.
#[test]
fn float_interface_matches_litert() {
    let g = Graph::from_value(serde_json::json!({
        "inputs": [{"name": "x", "shape": [2, 9, 9]}],
        "nodes": [
            {"name": "c1", "op": "conv2d", "out_channels": 4, "kernel": 3, "padding": "same"},
            {"name": "r1", "op": "relu"},
            {"name": "gap", "op": "global_avg_pool"},
            {"name": "fc", "op": "linear", "out_features": 3}
        ]
    }))
    .unwrap();
    let mut rng = Rng(0xfeed_5eed_1234_abcd);
    let mut q = quantised_plain(g, &mut rng, WEIGHT_SCALES);
    q.interface.float_inputs = true;
    q.interface.float_outputs = true;
    let bytes = tflite::export(&q).expect("exports");
    let back = tflite::import(&bytes).expect("imports");
    assert_eq!(
        back.interface, q.interface,
        "the interface survives export and import"
    );
    let program = lower(&back).expect("lowers");
    let shape = back.graph.inputs[0].shape.clone();
    let n: usize = shape.iter().product();
    let samples = 30;
    let xs: Vec<f32> = (0..n * samples).map(|_| rng.f32(-3.0, 3.0)).collect();
    let out = *program.output(0).unwrap();
    let mut ours = Vec::new();
    for x in xs.chunks_exact(n) {
        // The exported input is channels-last; so are these samples (the file's layout).
        let mut q8 = vec![0i8; n];
        tinyfit_micro::kernels::quantize(
            x,
            program.input(0).unwrap().scale,
            program.input(0).unwrap().zero_point,
            &mut q8,
        );
        let y = program.run(&[&q8]).unwrap().remove(0);
        let mut f = vec![0f32; y.len()];
        tinyfit_micro::kernels::dequantize(&y, out.scale, out.zero_point, &mut f);
        ours.extend(f);
    }
    let bytes_in: Vec<u8> = xs.iter().flat_map(|v| v.to_le_bytes()).collect();
    let lit: Vec<f32> = litert_outputs(&bytes, &bytes_in)
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(ours.len(), lit.len());
    let differ = ours
        .iter()
        .zip(&lit)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count();
    println!("{} float outputs: {differ} differ from LiteRT", ours.len());
    assert_eq!(differ, 0);
}

/// MEAN over height and width with and without keep_dims, with the same and with another
/// quantisation at the output (LiteRT 2.3 computes all of them as one requantised integer sum).
#[test]
fn mean_paths_match_litert() {
    let mut rng = Rng(0x7777_1234_5678_9999);
    for (keep_dims, same_quant) in [(true, false), (false, true), (false, false)] {
        let g = Graph::from_value(serde_json::json!({
            "inputs": [{"name": "x", "shape": [6, 7, 5]}],
            "nodes": [
                {"name": "c1", "op": "conv2d", "out_channels": 8, "kernel": 3, "padding": "same"},
                {"name": "m", "op": "mean", "keep_dims": keep_dims},
                {"name": "flat", "op": "flatten"},
                {"name": "fc", "op": "linear", "out_features": 4}
            ]
        }))
        .unwrap();
        let mut q = quantised_plain(g, &mut rng, WEIGHT_SCALES);
        if same_quant {
            let c1 = q.activations["c1"];
            q.activations.insert("m".into(), c1);
            q.activations.insert("flat".into(), c1);
        } else {
            let m = q.activations["m"];
            q.activations.insert("flat".into(), m);
        }
        let (outputs, differ, distinct) = compare_with_litert(&q, &mut rng, 40);
        println!(
            "MEAN keep_dims={keep_dims} same quantisation={same_quant}: {outputs} outputs, {distinct} distinct: {differ} differ from LiteRT"
        );
        assert!(distinct > 10, "degenerate outputs");
        assert_eq!(differ, 0);
    }
}
