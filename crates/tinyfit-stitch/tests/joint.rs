//! Joint training on real HAPT windows (a subset, untrained anchors, three short epochs): the
//! loss falls and every route, stitched or not, classifies the validation windows better than
//! chance.

use std::path::Path;

use burn::module::Module;
use tinyfit_data::DataConfig;
use tinyfit_stitch::model::SnNet;
use tinyfit_stitch::train::{JointConfig, evaluate, train_epoch};
use tinyfit_train::{OptimizerConfig, batch, cpu};

mod common;

fn snnet() -> SnNet {
    common::snnet(3, &cpu().autodiff())
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
