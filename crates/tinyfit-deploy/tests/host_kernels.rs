//! The host kernels (AVX-512 VNNI matrix products, depthwise and add) give the same integers
//! as tinyfit-micro's portable kernels, which the LiteRT parity tests pin to LiteRT.
//!
//! The graphs (`common::edge_case_graphs`) aim at the kernels' edge cases. On a CPU without the
//! host kernels both runs are portable and the test says so.

use tinyfit_deploy::{host_kernels, lower};

mod common;
use common::{Rng, WEIGHT_SCALES, edge_case_graphs, quantised_plain};

#[test]
fn host_kernels_match_portable_kernels() {
    let mut rng = Rng(0x5eed_0f40_57ca_fe00);
    if host_kernels().is_none() {
        eprintln!("host kernels do not run on this CPU: both runs below are portable");
    }
    // Small weight scales give multipliers below one; large ones push some above one (the
    // 2-D graph only: the 1-D one then saturates nearly every output).
    for (weight_scales, graphs) in [
        (WEIGHT_SCALES, edge_case_graphs()),
        ((0.01, 0.6), edge_case_graphs()[..1].to_vec()),
    ] {
        for (graph, host) in graphs {
            let q = quantised_plain(graph, &mut rng, weight_scales);
            let program = lower(&q).expect("lowers");
            if host_kernels().is_some() {
                assert_eq!(
                    program.host_operations(),
                    host,
                    "operations on host kernels"
                );
            }
            let portable = program.portable();
            assert_eq!(portable.host_operations(), 0);
            let n = program.input(0).expect("input").shape.len();
            let mut distinct = std::collections::BTreeSet::new();
            for _ in 0..30 {
                let x: Vec<i8> = (0..n).map(|_| rng.i8()).collect();
                let fast = program.run(&[&x]).expect("runs");
                let reference = portable.run(&[&x]).expect("runs");
                assert_eq!(fast, reference);
                distinct.extend(fast[0].iter().copied());
            }
            assert!(distinct.len() > 10, "degenerate outputs: {distinct:?}");
        }
    }
}
