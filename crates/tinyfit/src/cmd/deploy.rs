//! `tinyfit deploy MODEL --board NAME --out DIR`: an int8 model as a C99 package for a board,
//! with `deploy.json` (flash, SRAM, MACs against the board's limits). A model that does not
//! fit the board is refused with the figures, and nothing is written.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tinyfit_deploy::boards::{self, Board};
use tinyfit_deploy::emulator::{self, ElfSizes};
use tinyfit_deploy::{Program, codegen, cost};

use crate::report::thousands;

/// What `deploy.json` records.
#[derive(Serialize)]
struct Deployment<'a> {
    model: PathBuf,
    board: &'a Board,
    operations: usize,
    macs: u64,
    /// Bytes of weights (sparse filters as stored), biases and requantisation constants.
    const_bytes: usize,
    /// Planned arena and the least any plan could need.
    arena_bytes: usize,
    arena_lower_bound: usize,
    /// Flash and static RAM of the package built for the board's core (absent where no
    /// cross compiler or no emulated core is available).
    elf: Option<ElfSizes>,
    /// Bytes of scratch the kernels use beside the arena.
    scratch_bytes: usize,
    /// Layers whose filters are stored in a compact format (sparse, or packed in fewer bits),
    /// with their dense and stored bytes.
    compact_layers: Vec<codegen::CompactLayer>,
    /// Latency and energy of one inference on the board, from the instructions the build
    /// executes on the emulated core (absent where there is no emulated core).
    estimate: Option<cost::Estimate>,
    /// Deepest stack use measured on the emulated core, and static RAM plus that stack.
    stack_bytes: Option<usize>,
    peak_sram_bytes: Option<usize>,
}

/// Generates the package of `model` (a `.tflite` file or a run folder with
/// `model_int8.tflite`) for `board` into `out`.
pub fn run(model: &Path, board: &str, out: &Path, dense_filters: bool) -> Result<()> {
    let board = boards::board(board).map_err(anyhow::Error::msg)?;
    let file = if model.is_dir() {
        model.join("model_int8.tflite")
    } else {
        model.to_path_buf()
    };
    let bytes = std::fs::read(&file).with_context(|| {
        format!(
            "cannot read {} (expected an int8 .tflite file or a run folder quantised by \
             `tinyfit quantize`)",
            file.display()
        )
    })?;
    let quant =
        tinyfit_deploy::tflite::import(&bytes).with_context(|| file.display().to_string())?;
    let program = tinyfit_deploy::lower(&quant).with_context(|| file.display().to_string())?;
    refuse_if_too_big(&program, board)?;
    let options = codegen::Options {
        compact_filters: !dense_filters,
    };
    let package = codegen::generate_with(&program, &options);
    package
        .write(out)
        .with_context(|| format!("cannot write the package to {}", out.display()))?;
    let elf = board
        .core
        .emulated()
        .map(|core| emulator::build(out, core).and_then(|elf| emulator::elf_sizes(&elf)))
        .transpose()
        .unwrap_or_else(|e| {
            eprintln!("note: the package was not built for {}: {e}", board.title);
            None
        });
    // One inference on an all-zero input: the instruction count does not depend on values.
    let profile = board
        .core
        .emulated()
        .filter(|_| elf.is_some())
        .map(|core| {
            let input = vec![0u8; program.input(0).map_or(0, |t| t.shape.len())];
            let ops = program.report().len();
            emulator::profile(out, core, &input, ops, std::time::Duration::from_secs(600))
        })
        .transpose()
        .unwrap_or_else(|e| {
            eprintln!("note: no latency estimate: {e}");
            None
        });
    let estimate = profile
        .as_ref()
        .and_then(|p| cost::estimate(&p.operations, board));
    let stack_bytes = profile.as_ref().map(|p| p.stack_bytes);
    let peak_sram_bytes = elf.zip(stack_bytes).map(|(e, s)| e.static_ram + s);
    let memory = program.memory();
    let deployment = Deployment {
        model: file.clone(),
        board,
        operations: program.report().len(),
        macs: program.report().iter().map(|r| r.macs).sum(),
        const_bytes: program.const_bytes() - package.filter_bytes_saved(),
        arena_bytes: memory.arena_bytes,
        arena_lower_bound: memory.lower_bound,
        elf,
        scratch_bytes: package.scratch_bytes(),
        compact_layers: package.compact_layers.clone(),
        estimate,
        stack_bytes,
        peak_sram_bytes,
    };
    let json = out.join("deploy.json");
    let text = serde_json::to_string_pretty(&deployment)? + "\n";
    tinyfit_graph::write_atomic(&json, text.as_bytes())
        .with_context(|| format!("cannot write {}", json.display()))?;
    println!(
        "{} for {} ({}, {} MHz): {} operations, {} MACs",
        file.display(),
        board.title,
        board.core,
        board.clock_mhz,
        deployment.operations,
        thousands(deployment.macs)
    );
    println!(
        "arena {} B (lower bound {} B) of {} B SRAM; constants {} B of {} B flash",
        thousands(memory.arena_bytes as u64),
        thousands(memory.lower_bound as u64),
        thousands(board.sram_bytes as u64),
        thousands(deployment.const_bytes as u64),
        thousands(board.flash_bytes as u64)
    );
    if !deployment.compact_layers.is_empty() {
        let dense: usize = deployment
            .compact_layers
            .iter()
            .map(|l| l.dense_bytes)
            .sum();
        let formats: Vec<String> = deployment
            .compact_layers
            .iter()
            .map(|l| format!("{} {}", l.node, l.format))
            .collect();
        println!(
            "{} layers store their filters compact ({}): {} B instead of {} B",
            deployment.compact_layers.len(),
            formats.join(", "),
            thousands((dense - package.filter_bytes_saved()) as u64),
            thousands(dense as u64)
        );
    }
    if let Some(elf) = elf {
        println!(
            "built for the {}: flash {} B (code + constants), static RAM {} B (arena, scratch, C library)",
            board.core,
            thousands(elf.flash as u64),
            thousands(elf.static_ram as u64)
        );
    }
    if let (Some(stack), Some(peak)) = (stack_bytes, peak_sram_bytes) {
        println!(
            "measured on the emulator: stack high-water {} B, peak SRAM {} B of {} B",
            thousands(stack as u64),
            thousands(peak as u64),
            thousands(board.sram_bytes as u64)
        );
    }
    if let Some(e) = estimate {
        println!(
            "estimated {:.1} ms and {:.0} µJ per inference at {} MHz ({} cycles, instructions counted on the emulated {})",
            e.latency_ms,
            e.energy_uj,
            board.clock_mhz,
            thousands(e.cycles as u64),
            board.core
        );
    }
    println!("wrote {} and deploy.json", out.display());
    Ok(())
}

/// Fails, with the figures, when the arena or the constants exceed the board's memories.
fn refuse_if_too_big(program: &Program, board: &Board) -> Result<()> {
    let arena = program.memory().arena_bytes;
    let constants = program.const_bytes();
    let mut over = Vec::new();
    if arena > board.sram_bytes {
        over.push(format!(
            "its arena needs {} B of SRAM, the board has {} B",
            thousands(arena as u64),
            thousands(board.sram_bytes as u64)
        ));
    }
    if constants > board.flash_bytes {
        over.push(format!(
            "its constants need {} B of flash, the board has {} B",
            thousands(constants as u64),
            thousands(board.flash_bytes as u64)
        ));
    }
    if !over.is_empty() {
        bail!(
            "the model does not fit the {}: {}",
            board.title,
            over.join("; ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_too_big_for_the_board_is_refused_with_the_figures() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/models/mlperf_tiny/kws_ref_model.tflite");
        let quant = tinyfit_deploy::tflite::import(&std::fs::read(path).unwrap()).unwrap();
        let program = tinyfit_deploy::lower(&quant).unwrap();
        let small = Board {
            sram_bytes: 10_000,
            flash_bytes: 20_000,
            ..*boards::board("nrf52840").unwrap()
        };
        let err = refuse_if_too_big(&program, &small).unwrap_err().to_string();
        assert_eq!(
            err,
            "the model does not fit the nRF52840 (Arduino Nano 33 BLE Sense): its arena needs \
             16,000 B of SRAM, the board has 10,000 B; its constants need 28,984 B of flash, \
             the board has 20,000 B"
        );
        assert!(refuse_if_too_big(&program, boards::board("nrf52840").unwrap()).is_ok());
    }
}
