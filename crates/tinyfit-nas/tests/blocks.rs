//! Every block family end to end: a network of it trained on real HAPT windows (a subset,
//! resampled to 64 steps, two short epochs), quantised to int8, generated as C, built for a
//! Cortex-M4 and run in QEMU, where every output byte equals tinyfit's int8 runtime's; and
//! the 2-D builders on MFCC-shaped inputs (untrained: a test of the arithmetic).

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use tinyfit_compress::{PtqConfig, quantize};
use tinyfit_data::{DataConfig, Dataset, Splits};
use tinyfit_deploy::emulator::{self, Core};
use tinyfit_deploy::{Program, codegen, lower};
use tinyfit_graph::{Graph, Weights};
use tinyfit_nas::{Architecture, BlockKind, Stage, Stem};
use tinyfit_train::{Observer, TrainConfig, TrainOptions, init};

struct Quiet;
impl Observer for Quiet {}

/// A quarter of HAPT's training windows and half its validation windows, at 64 steps.
fn hapt() -> &'static Splits {
    static SPLITS: OnceLock<Splits> = OnceLock::new();
    SPLITS.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let config: DataConfig = hapt_config(&root.join("../shared/data/hapt"));
        let splits = config.load(None).unwrap().resampled(64).unwrap();
        let every =
            |d: &Dataset, step: usize| d.select(&(0..d.len()).step_by(step).collect::<Vec<_>>());
        Splits {
            train: every(&splits.train, 4),
            val: every(&splits.val, 2),
            test: every(&splits.test, 8),
            norm: splits.norm.clone(),
        }
    })
}

fn hapt_config(path: &Path) -> DataConfig {
    serde_json::from_value(serde_json::json!({"kind": "hapt", "path": path})).unwrap()
}

/// A stem and two stages of `block`, the second downsampling.
fn network(block: BlockKind) -> Architecture {
    let stage = |width, stride| Stage {
        block,
        depth: 2,
        width,
        kernel: 3,
        expansion: 2,
        stride,
        groups: 2,
    };
    Architecture {
        time_steps: 64,
        stem: Stem {
            width: 8,
            kernel: vec![5],
            stride: 2,
        },
        stages: vec![stage(16, 1), stage(24, 2)],
    }
}

/// Runs `inputs` through `program` built as C for a Cortex-M4 in QEMU; asserts every output
/// byte equals the runtime's.
fn runs_bit_exactly_in_qemu(program: &Program, inputs: &[Vec<i8>]) {
    let dir = tempfile::tempdir().unwrap();
    codegen::generate(program).write(dir.path()).unwrap();
    let elf = emulator::build(dir.path(), Core::M4).unwrap_or_else(|e| panic!("{e}"));
    let stream: Vec<u8> = inputs.iter().flatten().map(|&v| v as u8).collect();
    let expected: Vec<u8> = inputs
        .iter()
        .flat_map(|x| program.run(&[x]).unwrap().concat())
        .map(|v| v as u8)
        .collect();
    let got = emulator::run(&elf, Core::M4, &stream, Duration::from_secs(300))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.len(), expected.len());
    let differing = got.iter().zip(&expected).filter(|(a, b)| a != b).count();
    assert_eq!(
        differing,
        0,
        "{differing} of {} output bytes differ",
        got.len()
    );
}

fn quantised_inputs(program: &Program, data: &Dataset, n: usize) -> Vec<Vec<i8>> {
    (0..n.min(data.len()))
        .map(|i| {
            program
                .quantize_input(0, data.sample(i), &data.sample_shape)
                .unwrap()
        })
        .collect()
}

fn end_to_end(block: BlockKind) {
    let splits = hapt();
    let classes = splits.train.class_names.len();
    let graph = network(block)
        .graph(block.name(), 6, None, classes)
        .unwrap();
    let config: TrainConfig =
        toml::from_str("epochs = 2\nbatch_size = 32\n[optimizer]\nkind = \"adam_w\"\nlr = 0.003\n")
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let outcome = tinyfit_train::train(
        &graph,
        splits,
        &config,
        dir.path(),
        false,
        TrainOptions::default(),
        &mut Quiet,
    )
    .unwrap();
    let accuracy = outcome.history[outcome.best_epoch].val_accuracy;
    eprintln!(
        "{}: validation accuracy {accuracy:.3} after 2 epochs",
        block.name()
    );
    assert!(
        accuracy > 0.7,
        "{}: validation accuracy {accuracy} (chance about 1/{classes})",
        block.name()
    );

    let q = quantize(&graph, &outcome.best, &splits.train, PtqConfig::default()).unwrap();
    let program = lower(&q).unwrap_or_else(|e| panic!("{}: {e}", block.name()));
    let inputs = quantised_inputs(&program, &splits.val, 400);
    let labels = &splits.val.y[..inputs.len()];
    let correct = inputs
        .iter()
        .zip(labels)
        .filter(|&(x, &y)| {
            let out = program.run(&[x]).unwrap().remove(0);
            let best = (0..out.len())
                .max_by_key(|&c| (out[c], std::cmp::Reverse(c)))
                .unwrap();
            best as u32 == y
        })
        .count();
    let int8 = correct as f64 / inputs.len() as f64;
    eprintln!(
        "{}: int8 accuracy {int8:.3} on {} validation windows",
        block.name(),
        inputs.len()
    );
    assert!(int8 > 0.7, "{}: int8 accuracy {int8}", block.name());
    runs_bit_exactly_in_qemu(&program, &inputs[..50]);
}

#[test]
fn plain_blocks_end_to_end() {
    end_to_end(BlockKind::Plain);
}

#[test]
fn separable_blocks_end_to_end() {
    end_to_end(BlockKind::Separable);
}

#[test]
fn inverted_residuals_end_to_end() {
    end_to_end(BlockKind::InvertedResidual);
}

#[test]
fn fire_modules_end_to_end() {
    end_to_end(BlockKind::Fire);
}

#[test]
fn shuffle_units_end_to_end() {
    end_to_end(BlockKind::Shuffle);
}

/// `n` deterministic pseudo-random values in [−1, 1).
fn values(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919) % 1009) as f32 / 504.5) - 1.0)
        .collect()
}

#[test]
fn two_dimensional_blocks_run_bit_exactly_on_a_cortex_m4() {
    // Every family in one 2-D network on 49 × 10 MFCC-shaped inputs, a DS-CNN-like stem.
    let stage = |block, width, stride| Stage {
        block,
        depth: 1,
        width,
        kernel: 3,
        expansion: 2,
        stride,
        groups: 4,
    };
    let arch = Architecture {
        time_steps: 49,
        stem: Stem {
            width: 8,
            kernel: vec![10, 4],
            stride: 2,
        },
        stages: vec![
            stage(BlockKind::Separable, 16, 1),
            stage(BlockKind::InvertedResidual, 16, 1),
            stage(BlockKind::Shuffle, 24, 2),
            stage(BlockKind::Fire, 24, 2),
            stage(BlockKind::Plain, 32, 1),
        ],
    };
    let graph: Graph = arch.graph("2-D families", 1, Some(10), 12).unwrap();
    let analysis = graph.analyze().unwrap();
    let weights: Weights = init::pytorch_default(&graph, &analysis, 3);
    let n = 64;
    let data = Dataset {
        sample_shape: vec![1, 49, 10],
        x: values(n * 490),
        y: vec![0; n],
        groups: vec![0; n],
        class_names: (0..12).map(|c| c.to_string()).collect(),
    };
    let q = quantize(&graph, &weights, &data, PtqConfig::default()).unwrap();
    let program = lower(&q).unwrap();
    let kinds: Vec<&str> = program.report().iter().map(|r| r.kind).collect();
    let expected = [
        "conv",
        "grouped_conv",
        "depthwise_conv",
        "channel_shuffle",
        "concat",
        "add",
    ];
    for kind in expected.iter().chain(&["max_pool", "avg_pool"]) {
        assert!(kinds.contains(kind), "no {kind} operation in {kinds:?}");
    }
    let inputs = quantised_inputs(&program, &data, 8);
    runs_bit_exactly_in_qemu(&program, &inputs);
}

#[test]
fn the_trained_shuffle_and_the_int8_shuffle_permute_channels_alike() {
    use burn::tensor::{Tensor, TensorData};
    use tinyfit_graph::{ChannelShuffle, Input, Node, Op};
    use tinyfit_train::{GraphModel, Value, cpu};

    let shuffle = ChannelShuffle { groups: 3 };
    let (channels, length) = (6, 2);
    let graph = Graph {
        name: "shuffle".into(),
        inputs: vec![Input {
            name: "x".into(),
            shape: vec![channels, length],
        }],
        nodes: vec![Node::new("s", Op::ChannelShuffle(shuffle))],
        outputs: Vec::new(),
    };
    let x: Vec<f32> = (0..channels * length).map(|v| v as f32).collect();
    let model = GraphModel::new(&graph, &Weights::default(), &cpu()).unwrap();
    let input = Tensor::<3>::from_data(TensorData::new(x.clone(), [1, channels, length]), &cpu());
    let y = model.forward(vec![Value::R3(input)]).remove(0).to_vec();
    for c in 0..channels {
        let from = shuffle.source(c, channels);
        assert_eq!(
            y[c * length..][..length],
            x[from * length..][..length],
            "channel {c}"
        );
    }
    // The int8 kernel on channels-last pixels: the same permutation.
    let pixel: Vec<i8> = (0..channels as i8).collect();
    let mut out = vec![0i8; channels];
    tinyfit_micro::kernels::channel_shuffle(&pixel, channels, 3, &mut out);
    let expected: Vec<i8> = (0..channels)
        .map(|c| shuffle.source(c, channels) as i8)
        .collect();
    assert_eq!(out, expected);
    assert_eq!(expected, vec![0, 2, 4, 1, 3, 5]);
}
