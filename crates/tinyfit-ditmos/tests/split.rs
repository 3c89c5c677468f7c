//! Splitting real HAPT windows by a strong model's features: every training window lands in
//! one of m clusters, held-out windows are assigned too, and the split is reproducible.

use std::path::Path;

use tinyfit_data::DataConfig;
use tinyfit_ditmos::split::{SplitConfig, SplitError, cluster, features};
use tinyfit_graph::Graph;
use tinyfit_train::{GraphModel, cpu, init};

#[test]
fn hapt_windows_split_into_clusters_of_strong_model_features() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let data: DataConfig = toml::from_str(&format!(
        "kind = \"hapt\"\npath = {:?}\n",
        root.join("../shared/data/hapt")
    ))
    .unwrap();
    let splits = data.load(None).unwrap();
    let graph = Graph::load(&root.join("examples/graphs/har_cnn.json")).unwrap();
    // Untrained weights: this checks the plumbing on real windows, not the method.
    let weights = init::pytorch_default(&graph, &graph.analyze().unwrap(), 0);
    let strong = GraphModel::new(&graph, &weights, &cpu()).unwrap();
    let train = features(&strong, "relu4", &splits.train, 512).unwrap();
    let val = features(&strong, "relu4", &splits.val, 512).unwrap();
    assert_eq!(train.nrows(), splits.train.len());
    assert_eq!(
        train.ncols(),
        64 * 32,
        "relu4 is 64 channels × 32 positions"
    );
    let config = SplitConfig {
        clusters: 4,
        feature_layer: "relu4".into(),
        restarts: 3,
        seed: 0,
    };
    let split = cluster(&train, &val, &config).unwrap();
    assert_eq!(split.sizes.iter().sum::<usize>(), splits.train.len());
    assert!(split.sizes.iter().all(|&s| s > 0), "{:?}", split.sizes);
    assert_eq!(split.held_out.len(), splits.val.len());
    assert!(split.held_out.iter().all(|&c| c < 4));
    assert_eq!(cluster(&train, &val, &config).unwrap(), split);
    assert!(matches!(
        features(&strong, "nope", &splits.val, 512),
        Err(SplitError::NoSuchLayer { .. })
    ));
}
