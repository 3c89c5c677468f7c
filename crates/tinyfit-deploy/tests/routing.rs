//! Routed programs (DiTMoS deployment): only the routed branch runs and it computes what the
//! whole program computes for that branch, in an arena planned along the paths; slicing
//! recomputes the shared feature map inside each branch, computing the same bytes in a
//! smaller arena still.

use tinyfit_deploy::routing::route_of;
use tinyfit_deploy::{Program, Routing, lower};

mod common;
use common::{Rng, WEIGHT_SCALES, quantised_plain, routed_graph, seeded_inputs};

fn whole() -> Program {
    let mut rng = Rng(0x0d17_305e_1ec7_0001);
    lower(&quantised_plain(routed_graph(), &mut rng, WEIGHT_SCALES)).expect("lowers")
}

#[test]
fn routing_splits_the_selector_from_each_branch() {
    let program = whole();
    let routing = Routing::of(&program).expect("routed");
    let nodes: Vec<&str> = program.report().iter().map(|r| r.node.as_str()).collect();
    assert!(
        nodes[..routing.common]
            .iter()
            .all(|n| n.starts_with('s') || *n == "f1" || *n == "route")
    );
    assert_eq!(routing.branches(), 2);
    for (k, range) in routing.branches.iter().enumerate() {
        assert!(
            nodes[range.clone()]
                .iter()
                .all(|n| n.starts_with(&format!("c{k}_"))),
            "branch {k}: {:?}",
            &nodes[range.clone()]
        );
    }
    // A program whose output 0 is not one score per branch is refused.
    let mut rng = Rng(1);
    let plain = lower(&quantised_plain(
        common::concat_graph(),
        &mut rng,
        WEIGHT_SCALES,
    ))
    .unwrap();
    assert!(Routing::of(&plain).is_err());
}

#[test]
fn the_routed_branch_computes_what_the_whole_program_does() {
    let program = whole();
    let routed = program.clone().routed().unwrap();
    let n = program.input(0).unwrap().shape.len();
    let mut routes = [0usize; 2];
    for x in seeded_inputs(n * 200, 7).chunks(n) {
        let all = program.run(&[x]).unwrap();
        let got = routed.run(&[x]).unwrap();
        let route = route_of(&all[0]);
        routes[route] += 1;
        assert_eq!(got, vec![all[0].clone(), all[1 + route].clone()]);
    }
    assert!(
        routes.iter().all(|&r| r > 0),
        "both branches taken: {routes:?}"
    );
    // Planned along its paths, the branches share bytes: a smaller arena than running both.
    let (whole, one) = (program.memory().arena_bytes, routed.memory().arena_bytes);
    println!("arena: {whole} B running every branch, {one} B running the routed one");
    assert!(one < whole);
}

#[test]
fn a_sliced_program_computes_the_same_bytes_in_a_smaller_arena() {
    let routed = whole().routed().unwrap();
    let sliced = routed.sliced().unwrap();
    let n = routed.input(0).unwrap().shape.len();
    for x in seeded_inputs(n * 200, 11).chunks(n) {
        assert_eq!(sliced.run(&[x]).unwrap(), routed.run(&[x]).unwrap());
    }
    let (kept, recomputed) = (routed.memory().arena_bytes, sliced.memory().arena_bytes);
    println!("arena: {kept} B keeping the feature map, {recomputed} B recomputing it");
    assert!(recomputed < kept);
    // Recomputation adds operations, never constants.
    assert!(sliced.report().len() > routed.report().len());
    assert_eq!(sliced.const_bytes(), routed.const_bytes());
}
