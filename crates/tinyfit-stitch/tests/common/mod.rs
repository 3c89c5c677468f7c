//! The SN-Net the tests share: HAPT anchors S, M and L (`examples/graphs/hapt_anchor_*.json`)
//! with PyTorch's default initialisation, blocks ending at relu1, pool2, pool3 and relu4.

#![allow(dead_code)] // each test file uses its own part

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use tinyfit_data::Dataset;
use tinyfit_graph::{Graph, Weights};
use tinyfit_stitch::anchor::Anchor;
use tinyfit_stitch::model::SnNet;
use tinyfit_stitch::space::{Direction, Space, Window};
use tinyfit_train::{Value, cpu, init};

pub const BLOCKS: [&str; 4] = ["relu1", "pool2", "pool3", "relu4"];

/// Anchor `size` (`s`, `m` or `l`).
pub fn anchor(size: &str) -> Anchor {
    let graph = Graph::load(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/graphs")
            .join(format!("hapt_anchor_{size}.json")),
    )
    .unwrap();
    let blocks: Vec<String> = BLOCKS.iter().map(|s| s.to_string()).collect();
    Anchor::new(graph, None, &blocks).unwrap()
}

/// S, M and L joined Fast-to-Slow with the default window, stitching layers seeded by `seed`.
pub fn snnet(seed: u64, device: &Device) -> SnNet {
    let anchors: Vec<Anchor> = ["s", "m", "l"].iter().map(|s| anchor(s)).collect();
    let weights: Vec<Weights> = anchors
        .iter()
        .enumerate()
        .map(|(i, a)| init::pytorch_default(&a.graph, a.analysis(), i as u64))
        .collect();
    let space = Space::new(&[4, 4, 4], Direction::FastToSlow, Window::default());
    SnNet::new(anchors, &weights, &space, seed, device).unwrap()
}

/// `n` deterministic pseudo-random values in [−1, 1).
fn values(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919) % 1009) as f32 / 504.5) - 1.0)
        .collect()
}

/// A batch of `n` deterministic pseudo-random 6 × 128 windows.
pub fn windows(n: usize) -> Value {
    Value::R2(Tensor::<2>::from_data(
        TensorData::new(values(n * 6 * 128), [n, 6 * 128]),
        &cpu(),
    ))
    .reshape(&[6, 128])
}

/// The same windows as a dataset (every label 0), for calibration.
pub fn window_dataset(n: usize) -> Dataset {
    Dataset {
        sample_shape: vec![6, 128],
        x: values(n * 6 * 128),
        y: vec![0; n],
        groups: vec![0; n],
        class_names: (0..6).map(|c| c.to_string()).collect(),
    }
}
