//! Corrupted and truncated `.tflite` files give errors, never panics or out-of-bounds reads.
//!
//! A bounded, seeded fuzz run over the real KWS model: every truncation length up to 4 KiB and
//! then every 61st, and 3,000 files with 1–16 random bytes overwritten. Each must import, lower
//! and run, or fail with an error.

use std::path::Path;

use tinyfit_deploy::{lower, tflite};

fn model() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/models/mlperf_tiny/kws_ref_model.tflite");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Imports, lowers and runs `bytes` (on a zero input) as far as it goes; returns whether it ran.
fn exercise(bytes: &[u8]) -> bool {
    let Ok(quant) = tflite::import(bytes) else {
        return false;
    };
    let Ok(program) = lower(&quant) else {
        return false;
    };
    let Some(input) = program.input(0) else {
        return false;
    };
    // A corrupt shape can ask for a huge input; refuse to allocate absurd sizes in the test.
    if input.shape.len() > 1 << 24 || program.memory().arena_bytes > 1 << 26 {
        return false;
    }
    let x = vec![0i8; input.shape.len()];
    program.run(&[&x]).is_ok()
}

#[test]
fn truncated_files_are_errors() {
    let bytes = model();
    assert!(exercise(&bytes), "the intact model runs");
    let lengths = (0..4096.min(bytes.len())).chain((4096..bytes.len()).step_by(61));
    for len in lengths {
        assert!(
            !exercise(&bytes[..len]) || len > bytes.len() / 2,
            "truncated at {len}"
        );
    }
}

#[test]
fn corrupted_files_never_panic() {
    let bytes = model();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut ran = 0;
    for _ in 0..3000 {
        let mut copy = bytes.clone();
        let flips = 1 + next() % 16;
        for _ in 0..flips {
            let at = (next() % copy.len() as u64) as usize;
            copy[at] = next() as u8;
        }
        ran += usize::from(exercise(&copy));
    }
    println!(
        "3000 corrupted files: {ran} still ran (their damage hit weights), the rest were refused"
    );
}

#[test]
fn garbage_is_named_as_not_tflite() {
    let err = tflite::import(b"this is not a flatbuffer").unwrap_err();
    assert!(
        err.to_string().contains("not a valid TFLite flatbuffer"),
        "{err}"
    );
}
