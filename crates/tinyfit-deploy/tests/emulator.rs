//! The generated C, built for a Cortex-M4 and run in QEMU, gives the same integers as the
//! runtime on the four MLPerf Tiny models (20 seeded inputs each); built for the host with
//! sanitizers it runs clean.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tinyfit_deploy::emulator::{self, Core};
use tinyfit_deploy::{codegen, lower, tflite};

mod common;
use common::{
    Rng, WEIGHT_SCALES, concat_graph, edge_case_graphs, quantised_plain, routed_graph,
    seeded_inputs,
};

const SAMPLES: usize = 20;

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models/mlperf_tiny")
}

/// `SAMPLES` seeded inputs of `n` values each, back to back.
fn samples(n: usize, seed: u64) -> Vec<i8> {
    seeded_inputs(n * SAMPLES, seed)
}

/// The runtime's output bytes (every output, in order) for each input of `n` values.
fn expected(program: &tinyfit_deploy::Program, inputs: &[i8], n: usize) -> Vec<u8> {
    inputs
        .chunks_exact(n)
        .flat_map(|x| program.run(&[x]).unwrap().concat())
        .map(|v| v as u8)
        .collect()
}

/// Compiles C `sources` for the host into `exe` (C99, all warnings as errors, plus `flags`).
fn host_cc(flags: &[&str], sources: &[PathBuf], exe: &Path) {
    let build = std::process::Command::new("cc")
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror"])
        .args(flags)
        .args(sources)
        .arg("-o")
        .arg(exe)
        .output()
        .expect("cc runs");
    let stderr = String::from_utf8_lossy(&build.stderr);
    assert!(build.status.success(), "{stderr}");
}

/// Builds `program`'s package for the Cortex-M4 and returns how many of its outputs on
/// `SAMPLES` inputs (seeded by `seed`) differ from the runtime's.
fn differing_outputs(program: &tinyfit_deploy::Program, dir: &Path, seed: u64) -> (usize, usize) {
    let elf = emulator::build(dir, Core::M4).unwrap_or_else(|e| panic!("{e}"));
    let n = program.input(0).unwrap().shape.len();
    let inputs = samples(n, seed);
    let raw: Vec<u8> = inputs.iter().map(|&v| v as u8).collect();
    let got = emulator::run(&elf, Core::M4, &raw, Duration::from_secs(300))
        .unwrap_or_else(|e| panic!("{e}"));
    let expected = expected(program, &inputs, n);
    assert_eq!(got.len(), expected.len(), "output bytes");
    let differ = got.iter().zip(&expected).filter(|(a, b)| a != b).count();
    (differ, got.len())
}

/// How many of the package's layers with weights take the short requantisation on the DSP
/// kernels, and how many the general one.
fn requant_paths(dir: &Path) -> (usize, usize) {
    let source = std::fs::read_to_string(dir.join("model.c")).unwrap();
    let requants = source.lines().filter(|l| l.contains("tf_requant"));
    let short = requants
        .clone()
        .filter(|l| l.ends_with("_short_stages};"))
        .count();
    // A short layer's non-DSP build carries a general requantisation too.
    let general = requants.filter(|l| l.ends_with(", NULL};")).count() - short;
    (short, general)
}

fn check(model: &str, seed: u64) {
    let bytes = std::fs::read(shared().join(model)).expect("model file");
    let program = lower(&tflite::import(&bytes).expect("imports")).expect("lowers");
    let dir = tempfile::tempdir().unwrap();
    codegen::generate(&program).write(dir.path()).unwrap();
    let (short, general) = requant_paths(dir.path());
    let (differ, outputs) = differing_outputs(&program, dir.path(), seed);
    println!(
        "{model}: {differ} of {outputs} outputs differ on the emulated Cortex-M4 ({short} layers \
         on the short requantisation, {general} on the general one)"
    );
    assert_eq!(differ, 0);
}

/// The DSP kernels' edge cases (dilation along both axes, strides, padding on every side,
/// depths that are not whole words, channel counts that are not multiples of four, 1-D
/// layers, fully connected layers of few and many rows) give the runtime's integers too, on
/// the short requantisation and, with multipliers above one (left shifts), on the general one.
#[test]
fn edge_case_graphs_match_runtime_on_cortex_m4() {
    let mut rng = Rng(0x00c0_de0f_ed9e_ca5e);
    for (weight_scales, graphs) in [
        (WEIGHT_SCALES, edge_case_graphs()),
        ((0.01, 0.6), edge_case_graphs()[..1].to_vec()),
    ] {
        let mut general_layers = 0;
        for (i, (graph, _)) in graphs.into_iter().enumerate() {
            let program = lower(&quantised_plain(graph, &mut rng, weight_scales)).expect("lowers");
            let dir = tempfile::tempdir().unwrap();
            codegen::generate(&program).write(dir.path()).unwrap();
            let (short, general) = requant_paths(dir.path());
            let (differ, outputs) = differing_outputs(&program, dir.path(), 31 + i as u64);
            println!(
                "edge-case graph {i}, weight scales {weight_scales:?}: {differ} of {outputs} \
                 outputs differ ({short} layers on the short requantisation, {general} on the \
                 general one)"
            );
            assert_eq!(differ, 0);
            assert!(short + general > 0);
            general_layers += general;
        }
        if weight_scales != WEIGHT_SCALES {
            assert!(
                general_layers > 0,
                "the general requantisation is exercised"
            );
        }
    }
}

/// A concatenation of values quantised differently: the lowering rescales each input to the
/// output's quantisation first, and the C does the same integers as the runtime.
#[test]
fn concatenation_of_different_quantisations_matches_runtime() {
    let graph = concat_graph();
    let mut rng = Rng(0xc0ca_7e4a_7e00_0001);
    let program = lower(&quantised_plain(graph, &mut rng, WEIGHT_SCALES)).expect("lowers");
    let rescales = program
        .report()
        .iter()
        .filter(|r| r.node.starts_with("cat/") && r.kind == "requantize")
        .count();
    assert_eq!(
        rescales, 2,
        "both inputs differ from the output's quantisation"
    );
    let dir = tempfile::tempdir().unwrap();
    codegen::generate(&program).write(dir.path()).unwrap();
    let (differ, outputs) = differing_outputs(&program, dir.path(), 61);
    println!("concatenation: {differ} of {outputs} outputs differ on the emulated Cortex-M4");
    assert_eq!(differ, 0);
}

/// A selector with two classifiers (DiTMoS's shape), routed and sliced: each package runs
/// only the routed branch and writes the runtime's bytes on inputs that take both branches;
/// the sliced package's recomputed layers share their constants.
#[test]
fn routed_and_sliced_packages_match_runtime() {
    let mut rng = Rng(0x0d17_305e_1ec7_0001);
    let quant = quantised_plain(routed_graph(), &mut rng, WEIGHT_SCALES);
    let routed = lower(&quant).unwrap().routed().unwrap();
    let sliced = routed.sliced().unwrap();
    let n = routed.input(0).unwrap().shape.len();
    let mut routes = [0; 2];
    for x in samples(n, 8).chunks(n) {
        routes[tinyfit_deploy::routing::route_of(&routed.run(&[x]).unwrap()[0])] += 1;
    }
    assert!(
        routes.iter().all(|&r| r > 0),
        "both branches taken: {routes:?}"
    );
    let mut constant_arrays = Vec::new();
    for (name, program) in [("routed", &routed), ("sliced", &sliced)] {
        let dir = tempfile::tempdir().unwrap();
        let package = codegen::generate(program);
        package.write(dir.path()).unwrap();
        let (differ, outputs) = differing_outputs(program, dir.path(), 8);
        println!("{name}: {differ} of {outputs} output bytes differ on the emulated Cortex-M4");
        assert_eq!(differ, 0);
        let model_c = std::fs::read_to_string(dir.path().join("model.c")).unwrap();
        constant_arrays.push(model_c.matches("static const").count());
    }
    assert_eq!(constant_arrays[0], constant_arrays[1]);
}

#[test]
fn kws_c_matches_runtime_on_cortex_m4() {
    check("kws_ref_model.tflite", 11);
}

#[test]
fn ic_c_matches_runtime_on_cortex_m4() {
    check("pretrainedResnet_quant.tflite", 12);
}

#[test]
fn vww_c_matches_runtime_on_cortex_m4() {
    check("vww_96_int8.tflite", 13);
}

#[test]
fn ad_c_matches_runtime_on_cortex_m4() {
    check("ad01_int8.tflite", 14);
}

/// The same package built for the host with AddressSanitizer and UndefinedBehaviorSanitizer
/// runs clean and gives the runtime's integers (KWS and IC: convolutions, depthwise, sums,
/// pooling, softmax).
#[test]
fn host_build_is_sanitizer_clean() {
    for (model, seed) in [
        ("kws_ref_model.tflite", 21),
        ("pretrainedResnet_quant.tflite", 22),
    ] {
        let bytes = std::fs::read(shared().join(model)).expect("model file");
        let program = lower(&tflite::import(&bytes).expect("imports")).expect("lowers");
        let dir = tempfile::tempdir().unwrap();
        codegen::generate(&program).write(dir.path()).unwrap();
        check_sanitized_host_build(&program, dir.path(), seed, model);
    }
}

/// Builds the package in `dir` for the host with AddressSanitizer and UndefinedBehaviorSanitizer,
/// runs it on `SAMPLES` seeded inputs and checks its outputs against the runtime's.
fn check_sanitized_host_build(
    program: &tinyfit_deploy::Program,
    dir: &Path,
    seed: u64,
    what: &str,
) {
    let exe = dir.join("model_host");
    let sources = ["main.c", "model.c", "tinyfit_kernels.c"].map(|f| dir.join(f));
    host_cc(
        &[
            "-O1",
            "-g",
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all",
        ],
        &sources,
        &exe,
    );
    let n = program.input(0).unwrap().shape.len();
    let inputs = samples(n, seed);
    let raw: Vec<u8> = inputs.iter().map(|&v| v as u8).collect();
    std::fs::write(dir.join("inputs.bin"), &raw).unwrap();
    let run = std::process::Command::new(&exe)
        .current_dir(dir)
        .output()
        .expect("runs");
    assert!(
        run.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let got = std::fs::read(dir.join("outputs.bin")).unwrap();
    assert_eq!(got, expected(program, &inputs, n), "{what}");
}

/// Filters that int8 storage wastes are stored compact, and the compact kernels give the
/// runtime's integers on the emulated Cortex-M4 and in the sanitised host build (padding on
/// every side, strides, dilation, depths that are not whole words or bytes, fully connected
/// layers of few and many rows): four weights in five zeroed go sparse; 4-bit, ternary and
/// binary values go packed in 4, 2 and 1 bits.
#[test]
fn compact_filters_match_runtime() {
    let mut rng = Rng(0x5ba7_5e00_f11e_0001);
    type Weight = fn(&mut Rng, i8) -> i8;
    let cases: [(&str, Weight); 4] = [
        (
            "sparse",
            |rng, v| if rng.next().is_multiple_of(5) { v } else { 0 },
        ),
        ("packed4", |_, v| v % 8),
        ("packed2", |_, v| v % 2),
        ("packed1", |_, v| if v < 0 { -1 } else { 1 }),
    ];
    for (format, weight) in cases {
        for (i, (graph, _)) in edge_case_graphs().into_iter().enumerate() {
            let mut q = quantised_plain(graph, &mut rng, WEIGHT_SCALES);
            for w in q.weights.values_mut() {
                for v in &mut w.data {
                    *v = weight(&mut rng, *v);
                }
            }
            let program = lower(&q).expect("lowers");
            let dir = tempfile::tempdir().unwrap();
            let package = codegen::generate(&program);
            package.write(dir.path()).unwrap();
            // Every convolution without groups and fully connected layer goes compact, but
            // for the bitmap and the grouped 2- and 4-bit rows the 2-D graph's last, whose rows
            // of three weights cannot pay for a mask word or a group's word.
            let expected: Vec<&str> = program
                .report()
                .iter()
                .filter(|r| r.kind == "conv" || r.kind == "fully_connected")
                .filter(|r| format == "packed1" || (i, r.node.as_str()) != (0, "fc"))
                .map(|r| r.node.as_str())
                .collect();
            let compact: Vec<&str> = package
                .compact_layers
                .iter()
                .filter(|l| l.format == format)
                .map(|l| l.node.as_str())
                .collect();
            assert_eq!(compact, expected, "{format}, graph {i}");
            let (differ, outputs) = differing_outputs(&program, dir.path(), 41 + i as u64);
            println!(
                "{format} edge-case graph {i}: {} layers {format}, {differ} of {outputs} outputs \
                 differ on the emulated Cortex-M4",
                compact.len()
            );
            assert_eq!(differ, 0);
            check_sanitized_host_build(&program, dir.path(), 51 + i as u64, format);
        }
    }
}

/// The C kernels' rounding helpers equal gemmlowp's formulations on edge values (zero, ±1,
/// INT32_MIN/MAX, every shift) and two million pseudo-random ones.
#[test]
fn c_rounding_matches_gemmlowp() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("rounding");
    let c = Path::new(env!("CARGO_MANIFEST_DIR")).join("c");
    let include = format!("-I{}", c.display());
    host_cc(
        &[
            "-O2",
            "-Wno-unused-function",
            "-fsanitize=undefined",
            "-fno-sanitize-recover=all",
            &include,
        ],
        &[c.join("../tests/c/rounding.c")],
        &exe,
    );
    let run = std::process::Command::new(&exe).output().expect("runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    println!("{stdout}");
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// Instructions per MAC of the generated kernels on the emulated Cortex-M4, counted by the
/// QEMU plugin, summed per layer kind: standard and 1×1 convolutions and fully connected layers
/// within 3.0 and 3×3 depthwise within 9 (CMSIS-NN's level), on every kind of layer of the four
/// MLPerf Tiny models; and the stack measured by painting stays small.
#[test]
fn instructions_per_mac_on_cortex_m4() {
    let cases: [(&str, &[(&str, f64)]); 4] = [
        (
            "kws_ref_model.tflite",
            &[
                ("conv 10x4", 3.0),
                ("conv 1x1", 3.0),
                ("depthwise_conv 3x3", 9.0),
                ("fully_connected", 3.0),
            ],
        ),
        (
            "pretrainedResnet_quant.tflite",
            &[
                ("conv 3x3", 3.0),
                ("conv 1x1", 3.0),
                ("fully_connected", 3.0),
            ],
        ),
        (
            // Its 3×3 convolution is the first layer: 27-value receptive fields feeding only
            // eight filters, the tightest case (2.99).
            "vww_96_int8.tflite",
            &[
                ("conv 3x3", 3.0),
                ("conv 1x1", 3.0),
                ("depthwise_conv 3x3", 9.0),
                ("fully_connected", 3.0),
            ],
        ),
        ("ad01_int8.tflite", &[("fully_connected", 3.0)]),
    ];
    for (model, kinds) in cases {
        let bytes = std::fs::read(shared().join(model)).expect("model file");
        let program = lower(&tflite::import(&bytes).expect("imports")).expect("lowers");
        let dir = tempfile::tempdir().unwrap();
        codegen::generate(&program).write(dir.path()).unwrap();
        let n = program.input(0).unwrap().shape.len();
        let input: Vec<u8> = samples(n, 5)[..n].iter().map(|&v| v as u8).collect();
        let ops = program.report().len();
        let profile =
            emulator::profile(dir.path(), Core::M4, &input, ops, Duration::from_secs(300))
                .unwrap_or_else(|e| panic!("{e}"));
        for &(kind, limit) in kinds {
            let (insns, macs) = program
                .report()
                .iter()
                .zip(&profile.operations)
                .filter(|(op, _)| op.label() == kind)
                .fold((0, 0), |(i, m), (op, c)| (i + c.total(), m + op.macs));
            let per_mac = insns as f64 / macs as f64;
            println!("{model}: {kind} {per_mac:.2} instructions per MAC");
            assert!(macs > 0, "{model} has {kind} layers");
            assert!(
                per_mac <= limit,
                "{model}: {kind} takes {per_mac:.2} instructions per MAC"
            );
        }
        println!("{model}: stack {} B", profile.stack_bytes);
        assert!(
            (64..4096).contains(&profile.stack_bytes),
            "stack {}",
            profile.stack_bytes
        );
    }
}

/// The package compiles for a Cortex-M0+ (Armv6-M, no DSP extension: the plain C kernels), the
/// RP2040's core, without warnings.
#[test]
fn package_compiles_for_cortex_m0plus() {
    let bytes = std::fs::read(shared().join("vww_96_int8.tflite")).expect("model file");
    let program = lower(&tflite::import(&bytes).expect("imports")).expect("lowers");
    let dir = tempfile::tempdir().unwrap();
    codegen::generate(&program).write(dir.path()).unwrap();
    for source in ["model.c", "tinyfit_kernels.c"] {
        let out = std::process::Command::new("arm-none-eabi-gcc")
            .args([
                "-std=c99",
                "-O2",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-mcpu=cortex-m0plus",
            ])
            .args(["-mthumb", "-c", "-o"])
            .arg(dir.path().join(format!("{source}.o")))
            .arg(dir.path().join(source))
            .output()
            .expect("arm-none-eabi-gcc runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
