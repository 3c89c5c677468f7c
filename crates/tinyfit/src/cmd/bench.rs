//! `tinyfit bench train`: milliseconds per training step on reference shapes.
//!
//! Each step is a full SGD step (forward, cross-entropy, backward, optimiser update) on a
//! random batch: the time depends on shapes, not on values. Steps are timed one by one after
//! warm-up; the median is the headline, the spread is printed beside it.

use std::time::Instant;

use anyhow::Result;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::tensor::{Distribution, Int, Tensor};
use tinyfit_graph::Graph;
use tinyfit_train::{GraphModel, OptimizerConfig, Value, cpu, init, optimizer};

use crate::report::thousands;

/// The reference shapes, bundled so the bench runs from any folder.
const SHAPES: [(&str, &str); 2] = [
    (
        "DiTMoS classifier (3x151, feature aggregation)",
        include_str!("../../../../examples/graphs/ditmos_classifier.json"),
    ),
    (
        "DS-CNN (49x10, 4 DS blocks x 64)",
        include_str!("../../../../examples/graphs/ds_cnn.json"),
    ),
];

/// Times `steps` training steps of batch `batch` for each reference shape.
pub fn run(batch: usize, steps: usize, warmup: usize) -> Result<()> {
    anyhow::ensure!(
        batch > 0 && steps > 0,
        "--batch and --steps must be positive"
    );
    println!(
        "training step = forward + cross-entropy + backward + SGD(momentum 0.9) on burn Flex (CPU), {} threads",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:<48} {:>8} {:>11} {:>6} {:>11} {:>9} {:>9}",
        "model", "params", "MACs", "batch", "median ms", "min ms", "max ms"
    );
    for (name, json) in SHAPES {
        let graph = Graph::from_value(serde_json::from_str(json)?)?;
        let times = time_steps(&graph, batch, steps, warmup)?;
        let analysis = graph.analyze()?;
        let mut sorted = times.clone();
        sorted.sort_by(f64::total_cmp);
        println!(
            "{:<48} {:>8} {:>11} {:>6} {:>11.2} {:>9.2} {:>9.2}",
            name,
            thousands(analysis.params()),
            thousands(analysis.macs()),
            batch,
            sorted[sorted.len() / 2],
            sorted[0],
            sorted[sorted.len() - 1]
        );
    }
    Ok(())
}

fn time_steps(graph: &Graph, batch: usize, steps: usize, warmup: usize) -> Result<Vec<f64>> {
    let analysis = graph.analyze()?;
    let device = cpu().autodiff();
    device.seed(0);
    let mut model = GraphModel::new(graph, &init::pytorch_default(graph, &analysis, 0), &device)?;
    let classes = graph.value_shape(&analysis, analysis.outputs[0])[0];
    let mut optim = optimizer(&OptimizerConfig::Sgd {
        lr: 0.01,
        momentum: 0.9,
        nesterov: false,
        weight_decay: 0.0,
    });
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let inputs: Vec<Value> = graph
        .inputs
        .iter()
        .map(|input| {
            let n: usize = input.shape.iter().product();
            let flat = Tensor::<2>::random([batch, n], Distribution::Normal(0.0, 1.0), &device);
            Value::R2(flat).reshape(&input.shape)
        })
        .collect();
    let labels = Tensor::<1, Int>::from_data(
        burn::tensor::TensorData::new(
            (0..batch).map(|i| (i % classes) as i64).collect::<Vec<_>>(),
            [batch],
        ),
        &device,
    );
    let mut times = Vec::with_capacity(steps);
    for step in 0..warmup + steps {
        let started = Instant::now();
        let logits = model.forward(inputs.clone()).swap_remove(0).into_r2();
        let loss = loss_fn.forward(logits, labels.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(0.01, model, grads);
        // Reading a parameter back forces any deferred work to finish before the clock stops.
        let _ = model.weights();
        if step >= warmup {
            times.push(started.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok(times)
}
