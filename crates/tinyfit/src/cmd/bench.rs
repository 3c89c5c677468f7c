//! `tinyfit bench train`: milliseconds per training step on reference shapes.
//!
//! Each step is a full SGD step (forward, cross-entropy, backward, optimiser update) on a
//! random batch: the time depends on shapes, not on values. Steps are timed one by one after
//! warm-up; the median is the headline, the spread is printed beside it. DiTMoS's classifier
//! step is timed for m classifiers run one by one and as one grouped network, with the ratio.

use std::time::Instant;

use anyhow::Result;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Int, Tensor};
use tinyfit_ditmos::classifiers::Classifiers;
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

/// The classifier whose m copies DiTMoS trains together: HAPT's, as `examples/hapt` trains it.
const DITMOS_CLASSIFIER: (&str, &str) = (
    "HAPT DiTMoS classifier",
    include_str!("../../../../examples/graphs/hapt_ditmos_classifier.json"),
);

/// Times `steps` training steps of batch `batch` for each reference shape, then the DiTMoS
/// classifiers' step with the m classifiers one by one and as one grouped network.
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
    let row = |name: &str, params: u64, macs: u64, times: &[f64]| {
        let (median, min, max) = spread(times);
        println!(
            "{:<48} {:>8} {:>11} {:>6} {:>11.2} {:>9.2} {:>9.2}",
            name,
            thousands(params),
            thousands(macs),
            batch,
            median,
            min,
            max
        );
        median
    };
    let device = cpu().autodiff();
    for (name, json) in SHAPES {
        let graph = Graph::from_value(serde_json::from_str(json)?)?;
        let analysis = graph.analyze()?;
        let model = classifiers(&graph, 1, &device)?.remove(0);
        let x = random_inputs(&graph, batch, &device);
        let labels = labels(&graph, batch, &device)?;
        let times = time_steps(
            model,
            steps,
            warmup,
            |model| cross_entropy(model.forward(x.clone()).swap_remove(0).into_r2(), &labels),
            |model| drop(model.weights()),
        );
        row(name, analysis.params(), analysis.macs(), &times);
    }

    // DiTMoS trains m classifiers on every batch: one by one, or as one grouped network.
    let (name, json) = DITMOS_CLASSIFIER;
    let graph = Graph::from_value(serde_json::from_str(json)?)?;
    let analysis = graph.analyze()?;
    let x = random_inputs(&graph, batch, &device);
    let labels = labels(&graph, batch, &device)?;
    for m in [4, 8] {
        let mut medians = Vec::new();
        for grouped in [false, true] {
            let models = classifiers(&graph, m, &device)?;
            let bank = if grouped {
                Classifiers::new(&models).0
            } else {
                Classifiers::Separate(models)
            };
            let times = time_steps(
                bank,
                steps,
                warmup,
                |bank| {
                    bank.logits(x[0].clone(), &x[1..])
                        .into_iter()
                        .map(|l| cross_entropy(l, &labels))
                        .reduce(|a, b| a + b)
                        .expect("m > 0")
                },
                |bank| drop(bank.clone().into_models()),
            );
            let how = if grouped { "grouped" } else { "one by one" };
            let label = format!("{m} x {name}, {how}");
            medians.push(row(
                &label,
                m as u64 * analysis.params(),
                m as u64 * analysis.macs(),
                &times,
            ));
        }
        println!(
            "  {m} classifiers: grouped {:.2}x the speed of one by one (median step)",
            medians[0] / medians[1]
        );
    }
    Ok(())
}

/// `m` differently initialised instances of `graph` on `device`.
fn classifiers(graph: &Graph, m: usize, device: &Device) -> Result<Vec<GraphModel>> {
    let analysis = graph.analyze()?;
    (0..m)
        .map(|k| {
            let w = init::pytorch_default(graph, &analysis, k as u64);
            Ok(GraphModel::new(graph, &w, device)?)
        })
        .collect()
}

/// A standard-normal batch for each of `graph`'s inputs.
fn random_inputs(graph: &Graph, batch: usize, device: &Device) -> Vec<Value> {
    device.seed(0);
    graph
        .inputs
        .iter()
        .map(|input| {
            let n: usize = input.shape.iter().product();
            let flat = Tensor::<2>::random([batch, n], Distribution::Normal(0.0, 1.0), device);
            Value::R2(flat).reshape(&input.shape)
        })
        .collect()
}

/// Labels cycling through `graph`'s classes.
fn labels(graph: &Graph, batch: usize, device: &Device) -> Result<Tensor<1, Int>> {
    let analysis = graph.analyze()?;
    let classes = graph.value_shape(&analysis, analysis.outputs[0])[0];
    Ok(Tensor::<1, Int>::from_data(
        burn::tensor::TensorData::new(
            (0..batch).map(|i| (i % classes) as i64).collect::<Vec<_>>(),
            [batch],
        ),
        device,
    ))
}

fn cross_entropy(logits: Tensor<2>, labels: &Tensor<1, Int>) -> Tensor<1> {
    CrossEntropyLossConfig::new()
        .init(&logits.device())
        .forward(logits, labels.clone())
}

/// Median, minimum and maximum.
fn spread(times: &[f64]) -> (f64, f64, f64) {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    (
        sorted[sorted.len() / 2],
        sorted[0],
        sorted[sorted.len() - 1],
    )
}

/// Milliseconds of each of `steps` SGD steps (after `warmup`) of `model` on the loss `loss`
/// gives; `sync` reads the parameters back, so deferred work finishes before the clock stops.
fn time_steps<M: Module>(
    mut model: M,
    steps: usize,
    warmup: usize,
    loss: impl Fn(&M) -> Tensor<1>,
    sync: impl Fn(&M),
) -> Vec<f64> {
    let mut optim = optimizer(&OptimizerConfig::Sgd {
        lr: 0.01,
        momentum: 0.9,
        nesterov: false,
        weight_decay: 0.0,
    });
    let mut times = Vec::with_capacity(steps);
    for step in 0..warmup + steps {
        let started = Instant::now();
        let grads = GradientsParams::from_grads(loss(&model).backward(), &model);
        model = optim.step(0.01, model, grads);
        sync(&model);
        if step >= warmup {
            times.push(started.elapsed().as_secs_f64() * 1e3);
        }
    }
    times
}
