//! Joint training on real HAPT windows (a subset, untrained anchors, three short epochs): the
//! loss falls and every route, stitched or not, classifies the validation windows better than
//! chance; route costs add up the parts a route runs.

use std::path::Path;

use burn::module::Module;
use tinyfit_data::DataConfig;
use tinyfit_graph::{Graph, Weights};
use tinyfit_stitch::anchor::Anchor;
use tinyfit_stitch::model::SnNet;
use tinyfit_stitch::space::{Direction, Route, Space, Window};
use tinyfit_stitch::train::{JointConfig, evaluate, route_costs, train_epoch};
use tinyfit_train::{OptimizerConfig, batch, cpu, init};

fn anchors() -> Vec<Anchor> {
    let blocks: Vec<String> = ["relu1", "pool2", "pool3", "relu4"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    ["s", "m", "l"]
        .iter()
        .map(|size| {
            let graph = Graph::load(
                &Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../../examples/graphs")
                    .join(format!("hapt_anchor_{size}.json")),
            )
            .unwrap();
            Anchor::new(graph, None, &blocks).unwrap()
        })
        .collect()
}

fn snnet() -> SnNet {
    let anchors = anchors();
    let weights: Vec<Weights> = anchors
        .iter()
        .enumerate()
        .map(|(i, a)| init::pytorch_default(&a.graph, a.analysis(), i as u64))
        .collect();
    let space = Space::new(&[4, 4, 4], Direction::FastToSlow, Window::default());
    SnNet::new(anchors, &weights, &space, 3, &cpu().autodiff()).unwrap()
}

#[test]
fn joint_training_teaches_every_route() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let config: DataConfig = toml::from_str(&format!(
        "kind = \"hapt\"\npath = {:?}\n",
        root.join("../shared/data/hapt")
    ))
    .unwrap();
    let splits = config.load(None).unwrap();
    let every = |n: usize, step: usize| (0..n).step_by(step).collect::<Vec<_>>();
    let train = splits.train.select(&every(splits.train.len(), 4));
    let val = splits.val.select(&every(splits.val.len(), 2));

    let first: Vec<usize> = (0..100).collect();
    let net = snnet()
        .init_least_squares(batch::inputs(&train, &first, &cpu()))
        .unwrap();
    let config = JointConfig {
        batch_size: 32,
        optimizer: OptimizerConfig::AdamW {
            lr: 0.003,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.01,
        },
        epochs: 3,
        distill_alpha: 0.0,
        seed: 1,
    };
    let (net, first_loss) = train_epoch(net, &train, &config, 0, None);
    let (net, _) = train_epoch(net, &train, &config, 1, None);
    let (net, last_loss) = train_epoch(net, &train, &config, 2, None);
    assert!(
        last_loss < first_loss,
        "mean loss {first_loss} in the first epoch, {last_loss} in the last"
    );
    let accuracy = evaluate(&net.valid(), &val, 256);
    assert_eq!(accuracy.len(), net.routes().len());
    for (route, score) in net.routes().iter().zip(&accuracy) {
        let a = score.accuracy;
        eprintln!("{route:?}: validation accuracy {a:.3}");
        assert!(a > 0.3, "{route:?}: validation accuracy {a} (chance 1/6)");
    }
}

#[test]
fn route_costs_add_up_the_parts_a_route_runs() {
    let net = snnet();
    let costs = route_costs(&net);
    let anchors = net.anchor_blocks();
    for a in 0..3 {
        assert_eq!(costs[a].macs, anchors[a].analysis().macs());
        assert_eq!(costs[a].params, anchors[a].analysis().params());
    }
    // S through block 3 (its relu4, node 13), a 16 → 32 channel map over 32 positions, then M
    // from block 3 (conv4, node 11) on.
    let r = net
        .routes()
        .iter()
        .position(|r| {
            matches!(r, Route::Stitched { pair: 0, stitch, .. } if (stitch.front, stitch.end) == (3, 3))
        })
        .unwrap();
    let nodes = |a: usize, range: std::ops::Range<usize>| -> u64 {
        anchors[a].analysis().nodes[range]
            .iter()
            .map(|n| n.shape.macs)
            .sum()
    };
    assert_eq!(
        costs[r].macs,
        nodes(0, 0..14) + 16 * 32 * 32 + nodes(1, 11..17)
    );
}
