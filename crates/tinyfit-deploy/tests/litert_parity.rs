//! The four MLPerf Tiny int8 models give the same integers in tinyfit as in LiteRT.
//!
//! LiteRT (`ai-edge-litert`, installed by `.ci/run`) runs its reference kernels in
//! `tests/reference/litert_reference.py`. tinyfit follows TFLite Micro's double rounding; where
//! LiteRT 2.3's fully connected kernel rounds once, the script recomputes those layers exactly
//! (and proves its recomputation reproduces LiteRT with single rounding). Every output must equal
//! that reference; the count of outputs that differ from raw LiteRT is printed. The planned arena
//! must stay within 10 % of the lower bound (the most bytes alive at one step). Each model,
//! imported and exported again by tinyfit, must load in LiteRT and give the same integers.

use std::path::{Path, PathBuf};
use std::process::Command;

use tinyfit_deploy::tflite::{ExportOptions, FullyConnectedAs};
use tinyfit_deploy::{lower, tflite};

mod common;
use common::{Rng, WEIGHT_SCALES, concat_graph, quantised_plain, seeded_inputs};

const SAMPLES: usize = 100;

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models/mlperf_tiny")
}

/// LiteRT's outputs and the exact reference for `xs` on the model file at `path`.
fn litert_reference(path: &Path, xs: &[i8]) -> (Vec<i8>, Vec<i8>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (inp, lit, reference) = (
        dir.path().join("in.bin"),
        dir.path().join("litert.bin"),
        dir.path().join("ref.bin"),
    );
    std::fs::write(&inp, xs.iter().map(|&v| v as u8).collect::<Vec<_>>()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/litert_reference.py");
    let status = Command::new("python3")
        .arg(&script)
        .args([path, &inp, &lit, &reference])
        .status()
        .expect("python3 runs (install ai-edge-litert: .ci/setup does)");
    assert!(
        status.success(),
        "{}: the LiteRT reference failed on {}",
        script.display(),
        path.display()
    );
    let read = |p: &Path| {
        std::fs::read(p)
            .unwrap()
            .into_iter()
            .map(|b| b as i8)
            .collect::<Vec<_>>()
    };
    (read(&lit), read(&reference))
}

fn differing(a: &[i8], b: &[i8]) -> usize {
    assert_eq!(a.len(), b.len(), "output sizes");
    a.iter().zip(b).filter(|(x, y)| x != y).count()
}

fn check(model: &str, seed: u64) {
    let path = shared().join(model);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let quant = tflite::import(&bytes).expect("imports");
    let program = lower(&quant).expect("lowers");
    let n = program.input(0).expect("one input").shape.len();
    let xs = seeded_inputs(n * SAMPLES, seed);
    let mut ours = Vec::new();
    for x in xs.chunks_exact(n) {
        ours.extend(program.run(&[x]).expect("runs").remove(0));
    }
    let (lit, reference) = litert_reference(&path, &xs);
    let wrong = differing(&ours, &reference);
    let off_litert = differing(&ours, &lit);
    let memory = program.memory();
    println!(
        "{model}: {SAMPLES} inputs, {} outputs: {wrong} differ from the reference, {off_litert} from raw LiteRT (single-rounding FC); arena {} B, lower bound {} B",
        ours.len(),
        memory.arena_bytes,
        memory.lower_bound
    );
    assert_eq!(
        wrong,
        0,
        "{model}: tinyfit differs from the reference in {wrong} of {} outputs",
        ours.len()
    );
    assert!(
        memory.overhead() <= 0.10,
        "{model}: arena {} B is more than 10 % above the lower bound {} B",
        memory.arena_bytes,
        memory.lower_bound
    );
    // Exported again by tinyfit, the model loads in LiteRT and computes the same integers:
    // exactly LiteRT's own with fully connected layers written as 1x1 convolutions (the
    // default), and the double-rounding reference when they stay FULLY_CONNECTED.
    let dir = tempfile::tempdir().expect("temp dir");
    for fully_connected in [FullyConnectedAs::Conv1x1, FullyConnectedAs::FullyConnected] {
        let exported = dir.path().join("exported.tflite");
        let options = ExportOptions { fully_connected };
        std::fs::write(
            &exported,
            tflite::export_with(&quant, options).expect("exports"),
        )
        .unwrap();
        let (lit, reference) = litert_reference(&exported, &xs);
        let (wrong, off_litert) = (differing(&ours, &reference), differing(&ours, &lit));
        println!(
            "{model}: re-exported ({fully_connected:?}): {wrong} outputs differ from the reference, {off_litert} from raw LiteRT"
        );
        assert_eq!(wrong, 0, "{model}: the exported model differs in LiteRT");
        if fully_connected == FullyConnectedAs::Conv1x1 {
            assert_eq!(
                off_litert, 0,
                "{model}: exported with 1x1 convolutions, LiteRT must agree exactly"
            );
        }
    }
}

#[test]
fn kws_ds_cnn_matches_litert() {
    check("kws_ref_model.tflite", 1);
}

#[test]
fn ic_resnet8_matches_litert() {
    check("pretrainedResnet_quant.tflite", 2);
}

#[test]
fn vww_mobilenet_matches_litert() {
    check("vww_96_int8.tflite", 3);
}

#[test]
fn ad_autoencoder_matches_tflm_rounding() {
    check("ad01_int8.tflite", 4);
}

/// A concatenation of differently quantised values, exported with the rescaling the lowering
/// inserts (QUANTIZE operators before CONCATENATION), gives LiteRT's integers.
#[test]
fn concatenation_with_rescaled_inputs_matches_litert() {
    let graph = concat_graph();
    let quant = quantised_plain(graph, &mut Rng(0xc0ca_7e4a_7e00_0002), WEIGHT_SCALES);
    let program = lower(&quant).expect("lowers");
    let n = program.input(0).expect("one input").shape.len();
    let xs = seeded_inputs(n * SAMPLES, 71);
    let mut ours = Vec::new();
    for x in xs.chunks_exact(n) {
        ours.extend(program.run(&[x]).expect("runs").remove(0));
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let exported = dir.path().join("concat.tflite");
    std::fs::write(
        &exported,
        tflite::export_with(&quant, ExportOptions::default()).expect("exports"),
    )
    .unwrap();
    let (lit, _) = litert_reference(&exported, &xs);
    let off = differing(&ours, &lit);
    println!(
        "concatenation: {off} of {} outputs differ from LiteRT",
        ours.len()
    );
    assert_eq!(off, 0);
}
