//! The four MLPerf Tiny int8 models give the same integers in tinyfit as in LiteRT.
//!
//! LiteRT (`ai-edge-litert`, installed by `.ci/run`) runs its reference kernels in
//! `tests/reference/litert_reference.py`. tinyfit follows TFLite Micro's double rounding; where
//! LiteRT 2.3's fully connected kernel rounds once, the script recomputes those layers exactly
//! (and proves its recomputation reproduces LiteRT with single rounding). Every output must equal
//! that reference; the count of outputs that differ from raw LiteRT is printed. The planned arena
//! must stay within 10 % of the lower bound (the most bytes alive at one step).

use std::path::{Path, PathBuf};
use std::process::Command;

use tinyfit_deploy::{lower, tflite};

const SAMPLES: usize = 100;

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models/mlperf_tiny")
}

/// Deterministic int8 inputs covering the whole range.
fn inputs(len: usize, seed: u64) -> Vec<i8> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 56) as i8
        })
        .collect()
}

fn check(model: &str, seed: u64) {
    let path = shared().join(model);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let program = lower(&tflite::import(&bytes).expect("imports")).expect("lowers");
    let n = program.input(0).expect("one input").shape.len();
    let xs = inputs(n * SAMPLES, seed);
    let mut ours = Vec::new();
    for x in xs.chunks_exact(n) {
        ours.extend(program.run(&[x]).expect("runs").remove(0));
    }
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
        .args([&path, &inp, &lit, &reference])
        .status()
        .expect("python3 runs (install ai-edge-litert: .ci/setup does)");
    assert!(
        status.success(),
        "{}: the LiteRT reference failed",
        script.display()
    );
    let read = |p: &Path| {
        std::fs::read(p)
            .unwrap()
            .into_iter()
            .map(|b| b as i8)
            .collect::<Vec<_>>()
    };
    let (lit, reference) = (read(&lit), read(&reference));
    assert_eq!(ours.len(), reference.len(), "{model}: output sizes");
    let wrong = ours.iter().zip(&reference).filter(|(a, b)| a != b).count();
    let off_litert = ours.iter().zip(&lit).filter(|(a, b)| a != b).count();
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
