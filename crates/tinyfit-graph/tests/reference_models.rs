//! The bundled graph files reproduce the published parameter and MAC counts.

use std::path::PathBuf;

use tinyfit_graph::{Graph, Summary};

fn summary(file: &str) -> Summary {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/graphs")
        .join(file);
    let graph = Graph::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let analysis = graph.analyze().unwrap();
    Summary::new(&graph, &analysis)
}

/// ditmos.md §3.1: 117,031 parameters, 9.02 M MACs, 176 features before fc1.
#[test]
fn ditmos_strong_model() {
    let s = summary("ditmos_strong.json");
    assert_eq!(s.params, 117_031);
    assert_eq!(s.macs, 9_021_504);
    let flatten = s.rows.iter().find(|r| r.name == "flatten").unwrap();
    assert_eq!(flatten.output, vec![176]);
}

/// ditmos.md §3.2: 4,944 parameters, 91,752 MACs, features F1 = 8×68 and F2 = 8×30.
#[test]
fn ditmos_selector() {
    let s = summary("ditmos_selector.json");
    assert_eq!(s.params, 4_944);
    assert_eq!(s.macs, 91_752);
    let shape = |n: &str| s.rows.iter().find(|r| r.name == n).unwrap().output.clone();
    assert_eq!(shape("f1"), vec![8, 68]);
    assert_eq!(shape("f2"), vec![8, 30]);
}

/// ditmos.md §3.3: 6,395 parameters, 131,176 MACs per classifier.
#[test]
fn ditmos_classifier() {
    let s = summary("ditmos_classifier.json");
    assert_eq!(s.params, 6_395);
    assert_eq!(s.macs, 131_176);
}

#[test]
fn ds_cnn_matches_mlperf_shapes() {
    let s = summary("ds_cnn.json");
    assert_eq!(s.rows[0].output, vec![64, 25, 5]);
    assert_eq!(s.rows.last().unwrap().output, vec![12]);
}

#[test]
fn har_cnn_fits_the_parameter_budget() {
    assert!(summary("har_cnn.json").params <= 100_000);
}
