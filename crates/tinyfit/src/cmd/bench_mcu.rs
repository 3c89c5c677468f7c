//! `tinyfit bench mcu`: the MLPerf Tiny models as generated C on an emulated Cortex-M, with the
//! instructions each layer executes (counted by tinyfit's QEMU plugin), instructions per MAC by
//! layer kind, and the latency and energy this implies on a board, beside the published MLPerf
//! Tiny latencies of other deployments on the L4R5ZI.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tinyfit_deploy::boards::{self, Board};
use tinyfit_deploy::emulator::{self, InsnCounts};
use tinyfit_deploy::{codegen, cost};

use super::bench_infer::{MODELS, load};
use crate::report::thousands;

/// Published MLPerf Tiny latencies on the NUCLEO-L4R5ZI in ms (DESIGN.md): TFLM reference,
/// microTVM + CMSIS-NN, X-CUBE-AI 9.0.
const PUBLISHED_L4R5ZI: [(&str, [f64; 3]); 3] = [
    ("kws_ref_model.tflite", [181.9, 99.8, 43.2]),
    ("pretrainedResnet_quant.tflite", [704.2, 389.6, 165.1]),
    ("vww_96_int8.tflite", [600.6, 300.8, 88.9]),
];

/// Profiles every model in `dir` on `board`'s emulated core; with `per_op`, prints each
/// operation's counts.
pub fn run(dir: &Path, board: &str, per_op: bool) -> Result<()> {
    let board = boards::board(board).map_err(anyhow::Error::msg)?;
    let Some(core) = board.core.emulated() else {
        bail!(
            "no emulated core runs the {} ({}): pick a Cortex-M4 or M7 board",
            board.title,
            board.core
        );
    };
    let model = cost::CycleModel::of(board.core).context("no cycle model")?;
    println!(
        "generated C (-O2, {}) on QEMU, one inference; cycles = loads×{} + pipelined loads×{} + stores×{} + MACs×{} + branches×{} + other×{} + extra words of multi-word transfers×{}",
        board.core,
        model.load,
        model.pipelined_load,
        model.store,
        model.mac,
        model.branch,
        model.other,
        model.extra_word
    );
    for (name, file) in MODELS {
        let path = dir.join(file);
        let (program, x) = load(&path)?;
        let package = tempfile::tempdir()?;
        let generated = codegen::generate(&program);
        generated.write(package.path())?;
        let raw: Vec<u8> = x.iter().map(|&v| v as u8).collect();
        let profile = emulator::profile(
            package.path(),
            core,
            &raw,
            program.report().len(),
            Duration::from_secs(600),
        )
        .with_context(|| path.display().to_string())?;
        let elf = emulator::build(package.path(), core)
            .and_then(|elf| emulator::elf_sizes(&elf))
            .with_context(|| path.display().to_string())?;
        let counts = &profile.operations;
        println!();
        if per_op {
            print_operations(&program, counts, &model);
        }
        print_kinds(name, &program, counts);
        print_estimate(file, board, counts);
        println!(
            "  memory: peak SRAM {} B measured = static {} B (planned arena {} B, lower bound {} B; \
             DSP scratch {} B; C library) + stack high-water {} B, of {} B; flash {} B of {} B",
            thousands((elf.static_ram + profile.stack_bytes) as u64),
            thousands(elf.static_ram as u64),
            thousands(program.memory().arena_bytes as u64),
            thousands(program.memory().lower_bound as u64),
            thousands(generated.scratch_bytes() as u64),
            thousands(profile.stack_bytes as u64),
            thousands(board.sram_bytes as u64),
            thousands(elf.flash as u64),
            thousands(board.flash_bytes as u64),
        );
    }
    Ok(())
}

fn print_operations(
    program: &tinyfit_deploy::Program,
    counts: &[InsnCounts],
    model: &cost::CycleModel,
) {
    println!(
        "{:>3} {:<20} {:<22} {:>10} {:>12} {:>9} {:>6} {:>6} {:>6} {:>6} {:>12}",
        "#",
        "node",
        "kind",
        "MACs",
        "instructions",
        "per MAC",
        "load%",
        "mac%",
        "br%",
        "other%",
        "cycles"
    );
    for (i, (op, c)) in program.report().iter().zip(counts).enumerate() {
        let total = c.total().max(1) as f64;
        let per_mac = if op.macs > 0 {
            format!("{:.2}", c.total() as f64 / op.macs as f64)
        } else {
            String::new()
        };
        println!(
            "{i:>3} {:<20} {:<22} {:>10} {:>12} {per_mac:>9} {:>6.1} {:>6.1} {:>6.1} {:>6.1} {:>12}",
            op.node,
            op.label(),
            thousands(op.macs),
            thousands(c.total()),
            100.0 * (c.load + c.pipelined_load + c.store) as f64 / total,
            100.0 * c.mac as f64 / total,
            100.0 * c.branch as f64 / total,
            100.0 * c.other as f64 / total,
            thousands(model.cycles(c).round() as u64),
        );
    }
}

/// Instructions per MAC summed over the layers of each kind.
fn print_kinds(name: &str, program: &tinyfit_deploy::Program, counts: &[InsnCounts]) {
    let mut kinds: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut all = (0u64, 0u64);
    for (op, c) in program.report().iter().zip(counts) {
        all.0 += c.total();
        all.1 += op.macs;
        if op.macs > 0 {
            let e = kinds.entry(op.label()).or_default();
            e.0 += c.total();
            e.1 += op.macs;
        }
    }
    let per_kind: Vec<String> = kinds
        .iter()
        .map(|(k, (insns, macs))| format!("{k} {:.2}", *insns as f64 / *macs as f64))
        .collect();
    println!(
        "{name}: {} instructions for {} MACs ({:.2} per MAC); per kind: {}",
        thousands(all.0),
        thousands(all.1),
        all.0 as f64 / all.1.max(1) as f64,
        per_kind.join(", ")
    );
}

fn print_estimate(file: &str, board: &Board, counts: &[InsnCounts]) {
    let Some(e) = cost::estimate(counts, board) else {
        return;
    };
    let published = PUBLISHED_L4R5ZI
        .iter()
        .find(|(f, _)| *f == file)
        .filter(|_| board.name == "l4r5zi")
        .map(|(_, [tflm, tvm, cube])| {
            format!("; published on this board: TFLM reference {tflm} ms, microTVM+CMSIS-NN {tvm} ms, X-CUBE-AI {cube} ms")
        })
        .unwrap_or_default();
    println!(
        "  estimated on the {} at {} MHz: {:.1} ms, {:.0} µJ ({} cycles){published}",
        board.title,
        board.clock_mhz,
        e.latency_ms,
        e.energy_uj,
        thousands(e.cycles as u64)
    );
}
