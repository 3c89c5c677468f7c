//! `tinyfit bench infer`: int8 inference latency of tinyfit's runtime against LiteRT, measured
//! in the same run on the same machine, single thread, on the MLPerf Tiny models.
//!
//! tinyfit runs each model from a pre-allocated arena (`Program::run_in`: input copy, every
//! kernel, output copy), once with its host kernels (AVX-512 where the CPU has it) and once
//! with `tinyfit-micro`'s portable kernels alone (the code a microcontroller runs); LiteRT
//! times `invoke()` alone, through `ai-edge-litert`'s Python API, with its reference kernels,
//! its optimised builtin kernels and its default XNNPACK delegate.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// The LiteRT side, run with `python3`.
const LITERT_SCRIPT: &str = include_str!("bench_litert.py");

/// The MLPerf Tiny models timed, by file name.
pub const MODELS: [(&str, &str); 4] = [
    ("KWS DS-CNN", "kws_ref_model.tflite"),
    ("IC ResNet-8", "pretrainedResnet_quant.tflite"),
    ("VWW MobileNet", "vww_96_int8.tflite"),
    ("AD autoencoder", "ad01_int8.tflite"),
];

/// What the LiteRT script measured.
#[derive(serde::Deserialize)]
struct LiteRt {
    reference_ms: f64,
    optimized_ms: f64,
    xnnpack_ms: f64,
    /// Output values of the optimised setups that differ from the reference kernels', and
    /// how many were compared.
    optimized_differ: usize,
    xnnpack_differ: usize,
    outputs: usize,
}

/// Times every model in `dir` with `runs` timed runs after `warmup` untimed ones; with
/// `per_op`, profiles tinyfit's operations instead.
pub fn run(dir: &Path, runs: usize, warmup: usize, per_op: bool) -> Result<()> {
    anyhow::ensure!(runs > 0, "--runs must be positive");
    if per_op {
        return MODELS
            .iter()
            .try_for_each(|(name, file)| profile(name, &dir.join(file), runs));
    }
    let script =
        std::env::temp_dir().join(format!("tinyfit-bench-litert-{}.py", std::process::id()));
    std::fs::write(&script, LITERT_SCRIPT)
        .with_context(|| format!("cannot write {}", script.display()))?;
    println!(
        "int8 inference, single thread, median of {runs} runs after {warmup} warm-up runs (ms)"
    );
    println!(
        "{:<16} {:>9} {:>9} {:>11} {:>11} {:>11} {:>9} {:>9} {:>9}   outputs unlike LiteRT ref (opt, xnn)",
        "model",
        "tinyfit",
        "portable",
        "LiteRT ref",
        "LiteRT opt",
        "LiteRT xnn",
        "vs ref",
        "vs opt",
        "vs xnn",
    );
    let result: Result<()> = MODELS.iter().try_for_each(|(name, file)| {
        let path = dir.join(file);
        let (program, x) = load(&path)?;
        let ours = time_tinyfit(&program, &x, runs, warmup)?;
        let portable = time_tinyfit(&program.portable(), &x, runs, warmup)?;
        let lit = time_litert(&script, &path, runs, warmup)?;
        // Ratio = LiteRT time / tinyfit time: above 1 means tinyfit is faster.
        println!(
            "{name:<16} {ours:>9.3} {portable:>9.3} {:>11.3} {:>11.3} {:>11.3} {:>8.2}x {:>8.2}x {:>8.2}x   {}/{n}, {}/{n}",
            lit.reference_ms,
            lit.optimized_ms,
            lit.xnnpack_ms,
            lit.reference_ms / ours,
            lit.optimized_ms / ours,
            lit.xnnpack_ms / ours,
            lit.optimized_differ,
            lit.xnnpack_differ,
            n = lit.outputs,
        );
        Ok(())
    });
    let _ = std::fs::remove_file(&script);
    result?;
    println!(
        "ratios are LiteRT time / tinyfit time (host kernels): above 1x, tinyfit is faster; \
         portable = tinyfit-micro's kernels alone"
    );
    println!(
        "tinyfit's outputs equal LiteRT's reference kernels' (AD: TFLite Micro's rounding of \
         fully connected layers; see the parity tests); the last column counts the outputs \
         of LiteRT's optimised setups that do not, over 20 random inputs"
    );
    Ok(())
}

/// Prints the median time of each operation of one model.
fn profile(name: &str, path: &Path, runs: usize) -> Result<()> {
    let (program, x) = load(path)?;
    let mut arena = vec![0i8; program.memory().arena_bytes];
    let times = program.time_operations(&mut arena, &[&x], runs)?;
    let total: f64 = times.iter().sum();
    println!(
        "{name}: {:.3} ms over {} operations (median of {runs} runs each)",
        total * 1e3,
        times.len()
    );
    println!(
        "{:>3} {:<24} {:<16} {:>14} {:>10} {:>6} {:>8}",
        "#", "node", "kind", "output", "MACs", "µs", "GMAC/s"
    );
    for (i, (op, t)) in program.report().iter().zip(&times).enumerate() {
        let shape = format!("{}x{}x{}", op.output.h, op.output.w, op.output.c);
        let rate = if op.macs > 0 {
            format!("{:.1}", op.macs as f64 / t / 1e9)
        } else {
            String::new()
        };
        println!(
            "{i:>3} {:<24} {:<16} {shape:>14} {:>10} {:>6.1} {rate:>8}",
            op.node,
            op.kind,
            op.macs,
            t * 1e6
        );
    }
    Ok(())
}

/// Imports and lowers a model, with a fixed pseudo-random input.
pub fn load(path: &Path) -> Result<(tinyfit_deploy::Program, Vec<i8>)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let quant =
        tinyfit_deploy::tflite::import(&bytes).with_context(|| path.display().to_string())?;
    let program = tinyfit_deploy::lower(&quant)?;
    let n = program.input(0).context("no input")?.shape.len();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let x: Vec<i8> = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as i8
        })
        .collect();
    Ok((program, x))
}

fn time_tinyfit(
    program: &tinyfit_deploy::Program,
    x: &[i8],
    runs: usize,
    warmup: usize,
) -> Result<f64> {
    let mut arena = vec![0i8; program.memory().arena_bytes];
    for _ in 0..warmup {
        program.run_in(&mut arena, &[x])?;
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t0 = Instant::now();
        std::hint::black_box(program.run_in(&mut arena, &[x])?);
        times.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

fn time_litert(script: &Path, model: &Path, runs: usize, warmup: usize) -> Result<LiteRt> {
    let out = Command::new("python3")
        .arg(script)
        .arg(model)
        .args([runs.to_string(), warmup.to_string()])
        .output()
        .context("cannot run python3 (LiteRT timing needs python3 with ai-edge-litert)")?;
    if !out.status.success() {
        bail!(
            "LiteRT timing failed on {}: {}",
            model.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let line = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(line.trim().lines().last().unwrap_or(""))
        .with_context(|| format!("LiteRT timing printed: {line}"))
}
