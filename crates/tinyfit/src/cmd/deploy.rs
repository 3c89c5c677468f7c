//! `tinyfit deploy MODEL --board NAME --out DIR`: an int8 model as a C99 package for a board,
//! with `deploy.json` (flash, SRAM, MACs against the board's limits). A model that does not
//! fit the board is refused with the figures, and nothing is written.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tinyfit_deploy::boards::{self, Board};
use tinyfit_deploy::emulator::{self, ElfSizes};
use tinyfit_deploy::{Program, codegen};

use crate::report::thousands;

/// What `deploy.json` records.
#[derive(Serialize)]
struct Deployment<'a> {
    model: PathBuf,
    board: &'a Board,
    operations: usize,
    macs: u64,
    /// Bytes of weights, biases and requantisation constants.
    const_bytes: usize,
    /// Planned arena and the least any plan could need.
    arena_bytes: usize,
    arena_lower_bound: usize,
    /// Flash and static RAM of the package built for the board's core (absent where no
    /// cross compiler or no emulated core is available).
    elf: Option<ElfSizes>,
}

/// Generates the package of `model` (a `.tflite` file or a run folder with
/// `model_int8.tflite`) for `board` into `out`.
pub fn run(model: &Path, board: &str, out: &Path) -> Result<()> {
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
    let package = codegen::generate(&program);
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
    let memory = program.memory();
    let deployment = Deployment {
        model: file.clone(),
        board,
        operations: program.report().len(),
        macs: program.report().iter().map(|r| r.macs).sum(),
        const_bytes: program.const_bytes(),
        arena_bytes: memory.arena_bytes,
        arena_lower_bound: memory.lower_bound,
        elf,
    };
    let json = out.join("deploy.json");
    let tmp = out.join(".deploy.json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&deployment)? + "\n")
        .and_then(|()| std::fs::rename(&tmp, &json))
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
    if let Some(elf) = elf {
        println!(
            "built for the {}: flash {} B (code + constants), static RAM {} B (arena, data, stack)",
            board.core,
            thousands(elf.flash as u64),
            thousands(elf.ram as u64)
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
