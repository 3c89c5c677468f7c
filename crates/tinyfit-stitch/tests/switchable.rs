//! The routes of an SN-Net, quantised together and linked into one switchable int8 program:
//! every layer is stored once, each route runs exactly as it runs alone — in tinyfit's runtime
//! and, generated as C, on an emulated Cortex-M4 after `tinyfit_set_route` — and routes
//! quantised apart are refused; the packaged run-time policy picks, for each budget, the route
//! it promises (synthetic windows, untrained anchors: a test of the linking, not of accuracy).

use std::collections::BTreeMap;
use std::time::Duration;

use tinyfit_compress::ptq::quantize_together;
use tinyfit_compress::{PtqConfig, quantize};
use tinyfit_deploy::emulator::{self, Core};
use tinyfit_deploy::{Budget, Policy, Program, RouteCost, SwitchError, codegen, lower};
use tinyfit_stitch::route_model::RouteModel;
use tinyfit_train::cpu;

mod common;

use common::{window_dataset, windows};

/// Every route of the test SN-Net and its int8 program, quantised together.
fn routes() -> (Vec<RouteModel>, Vec<Program>) {
    let net = common::snnet(5, &cpu())
        .init_least_squares(windows(100))
        .unwrap();
    let models = net.route_models();
    let pairs: Vec<_> = models.iter().map(|m| (&m.graph, &m.weights)).collect();
    let quantized = quantize_together(&pairs, &window_dataset(64), &PtqConfig::default()).unwrap();
    let programs = quantized.iter().map(|q| lower(q).unwrap()).collect();
    (models, programs)
}

/// Channels-last int8 inputs of `n` windows, quantised for `program`.
fn inputs(program: &Program, n: usize) -> Vec<Vec<i8>> {
    let data = window_dataset(n);
    (0..n)
        .map(|i| {
            program
                .quantize_input(0, data.sample(i), &data.sample_shape)
                .unwrap()
        })
        .collect()
}

#[test]
fn a_switchable_program_stores_each_layer_once_and_runs_each_route_as_alone() {
    let (_, programs) = routes();
    let switchable = Program::switchable(&programs).unwrap();
    let mut layers: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &programs {
        for op in p.report() {
            layers.insert(&op.node, op.const_bytes);
        }
    }
    let separate: usize = programs.iter().map(Program::const_bytes).sum();
    assert_eq!(switchable.const_bytes(), layers.values().sum::<usize>());
    assert!(switchable.const_bytes() < separate / 2);
    // Routes share the arena: it holds the largest route, not their sum.
    let largest = programs
        .iter()
        .map(|p| p.memory().arena_bytes)
        .max()
        .unwrap();
    let arena = switchable.memory().arena_bytes;
    assert!(
        arena >= largest && arena <= largest + largest / 10,
        "arena {arena} B for routes of at most {largest} B"
    );

    let xs = inputs(&programs[0], 4);
    let mut arena = vec![0i8; switchable.memory().arena_bytes];
    for (r, p) in programs.iter().enumerate() {
        for x in &xs {
            let alone = p.run(&[x]).unwrap();
            let switched = switchable.run_route(&mut arena, r, &[x]).unwrap();
            assert_eq!(alone, switched, "route {r}");
        }
    }
    assert!(
        switchable
            .run_route(&mut arena, programs.len(), &[&xs[0]])
            .is_err()
    );
}

#[test]
fn the_switchable_package_runs_every_route_bit_exactly_on_a_cortex_m4() {
    let (_, programs) = routes();
    let switchable = Program::switchable(&programs).unwrap();
    let dir = tempfile::tempdir().unwrap();
    codegen::generate(&switchable).write(dir.path()).unwrap();
    let header = std::fs::read_to_string(dir.path().join("model.h")).unwrap();
    assert!(header.contains(&format!("#define TINYFIT_ROUTES {}", programs.len())));
    assert!(header.contains("int32_t tinyfit_set_route(int32_t r);"));
    let elf = emulator::build(dir.path(), Core::M4).unwrap_or_else(|e| panic!("{e}"));
    // Every route on the same windows, switching before each sample, in an order that moves
    // between anchors and stitches.
    let xs = inputs(&programs[0], 3);
    let mut stream = Vec::new();
    let mut expected = Vec::new();
    for x in &xs {
        for r in (0..programs.len()).rev() {
            stream.push(r as u8);
            stream.extend(x.iter().map(|&v| v as u8));
            expected.extend(programs[r].run(&[x]).unwrap().concat());
        }
    }
    let got = emulator::run(&elf, Core::M4, &stream, Duration::from_secs(300))
        .unwrap_or_else(|e| panic!("{e}"));
    let expected: Vec<u8> = expected.iter().map(|&v| v as u8).collect();
    assert_eq!(got, expected);
}

#[test]
fn the_packaged_policy_picks_the_route_it_promises_for_each_budget() {
    let (_, programs) = routes();
    let switchable = Program::switchable(&programs).unwrap();
    // Synthetic costs (accuracy falls with the route index, latency grows with its MACs).
    let costs: Vec<RouteCost> = programs
        .iter()
        .enumerate()
        .map(|(r, p)| RouteCost {
            route: r,
            accuracy: 1.0 - r as f64 / 100.0,
            latency_us: (p.report().iter().map(|op| op.macs).sum::<u64>() / 100) as u32,
            sram_bytes: switchable.route_arena_bytes(r).unwrap() as u32,
        })
        .collect();
    let policy = Policy::new(&costs);
    let dir = tempfile::tempdir().unwrap();
    let options = codegen::Options {
        policy: Some(policy.clone()),
        ..Default::default()
    };
    codegen::generate_with(&switchable, &options)
        .write(dir.path())
        .unwrap();
    let elf = emulator::build(dir.path(), Core::M4).unwrap_or_else(|e| panic!("{e}"));
    let x = &inputs(&programs[0], 1)[0];
    let mut budgets: Vec<Budget> = costs
        .iter()
        .map(|c| Budget {
            latency_us: c.latency_us,
            sram_bytes: c.sram_bytes,
        })
        .collect();
    budgets.push(Budget {
        latency_us: 0,
        sram_bytes: u32::MAX,
    });
    let mut stream = Vec::new();
    let mut expected = Vec::new();
    for b in &budgets {
        stream.push(0xff);
        stream.extend(b.latency_us.to_le_bytes());
        stream.extend(b.sram_bytes.to_le_bytes());
        stream.extend(x.iter().map(|&v| v as u8));
        match policy.choose(*b) {
            Some(r) => {
                expected.push(r as u8);
                expected.extend(
                    programs[r]
                        .run(&[x])
                        .unwrap()
                        .concat()
                        .iter()
                        .map(|&v| v as u8),
                );
            }
            None => expected.push(0xff),
        }
    }
    let got = emulator::run(&elf, Core::M4, &stream, Duration::from_secs(300))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got, expected);
}

#[test]
fn routes_quantised_apart_are_refused() {
    let (models, mut programs) = routes();
    // The last route (a stitch into anchor L) quantised alone: its calibration differs, so the
    // layers it shares with anchor L get other constants.
    let last = models.last().unwrap();
    let alone = quantize(
        &last.graph,
        &last.weights,
        &window_dataset(8),
        PtqConfig::default(),
    )
    .unwrap();
    *programs.last_mut().unwrap() = lower(&alone).unwrap();
    match Program::switchable(&programs) {
        Err(e @ SwitchError::Layer { .. }) => {
            let message = e.to_string();
            assert!(
                message.contains("quantise the routes together"),
                "{message}"
            );
        }
        other => panic!("expected a layer mismatch, got {other:?}"),
    }
}
