//! `tinyfit deploy MODEL --board NAME --out DIR`: an int8 model as a C99 package for a board,
//! with `deploy.json` (flash, SRAM, MACs against the board's limits). A model that does not
//! fit the board is refused with the figures, and nothing is written.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tinyfit_deploy::boards::{self, Board};
use tinyfit_deploy::emulator::{self, Core, ElfSizes};
use tinyfit_deploy::{Chooser, Program, codegen, cost};

use crate::report::thousands;
use crate::run_dir::RunDir;

/// What `deploy.json` records.
#[derive(Serialize)]
struct Deployment<'a> {
    model: PathBuf,
    board: &'a Board,
    operations: usize,
    /// Multiply-accumulates of one inference (of a routed model: the common part and the
    /// costliest branch).
    macs: u64,
    /// How a routed model's operations split.
    routing: Option<RoutingFigures>,
    /// The test split run through the package on the emulated core.
    verification: Option<Verification>,
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

/// `tinyfit deploy`'s arguments.
#[derive(clap::Args)]
pub struct DeployArgs {
    /// An int8 `.tflite` model, or a run folder with `model_int8.tflite` (written by `tinyfit
    /// quantize`, or by `tinyfit ditmos`: such a folder deploys routed).
    pub model: PathBuf,
    /// Board: f767zi, l4r5zi, nrf52840 or rp2040.
    #[arg(long)]
    pub board: String,
    /// Folder for the package.
    #[arg(long)]
    pub out: PathBuf,
    /// Keep every filter dense int8 (by default, a filter is stored sparse, as bitmap and
    /// non-zero values, or packed in 4, 2 or 1 bits when its values fit, where that saves
    /// a quarter of its bytes).
    #[arg(long)]
    pub dense_filters: bool,
    /// Route: output 0's scores pick one of the other outputs, and only the operations that
    /// output needs run (the default for a DiTMoS run folder).
    #[arg(long)]
    pub routed: bool,
    /// Routed models: each branch recomputes the shared feature maps it reads instead of
    /// keeping them alive, which lowers peak SRAM at the cost of the recomputation.
    #[arg(long)]
    pub slicing: bool,
    /// Run the run folder's test split through the package on the emulated core and compare
    /// every output byte with tinyfit's int8 runtime.
    #[arg(long)]
    pub verify: bool,
}

/// Generates the package of `args.model` (a `.tflite` file or a run folder with
/// `model_int8.tflite`) for `args.board` into `args.out`.
pub fn run(args: &DeployArgs) -> Result<()> {
    let (model, board, out) = (&args.model, args.board.as_str(), &args.out);
    let board = boards::board(board).map_err(anyhow::Error::msg)?;
    let file = if model.is_dir() {
        model.join("model_int8.tflite")
    } else {
        model.to_path_buf()
    };
    let mut program = if model.is_dir() && !file.exists() && model.join("model.json").exists() {
        // A trained run without a .tflite (its ops have no TFLite builtins, or it was never
        // quantised): quantised here as `tinyfit quantize` would.
        let trained = RunDir(model.to_path_buf()).load()?;
        let splits = trained.splits()?;
        let weight_bits = trained
            .experiment
            .weight_bits
            .iter()
            .filter(|&(_, &b)| b != tinyfit_train::WeightBits::Int8)
            .map(|(l, &b)| (l.clone(), b))
            .collect();
        println!(
            "{} has no model_int8.tflite: quantising the run (post-training, 1,024 calibration samples)",
            model.display()
        );
        super::quantize::ptq(&trained, &splits, 1024, &weight_bits)?.1
    } else {
        let bytes = std::fs::read(&file).with_context(|| {
            format!(
                "cannot read {} (expected an int8 .tflite file, or a run folder of `tinyfit train` or `tinyfit quantize`)",
                file.display()
            )
        })?;
        let quant =
            tinyfit_deploy::tflite::import(&bytes).with_context(|| file.display().to_string())?;
        tinyfit_deploy::lower(&quant).with_context(|| file.display().to_string())?
    };
    let routed = args.routed || args.slicing || model.join("ditmos.json").exists();
    let mut sliced = false;
    if routed {
        program = program
            .routed()
            .with_context(|| file.display().to_string())?;
        if args.slicing {
            let recomputing = program.sliced()?;
            let (kept, recomputed) = (
                program.memory().arena_bytes,
                recomputing.memory().arena_bytes,
            );
            if recomputed < kept {
                program = recomputing;
                sliced = true;
            } else {
                println!(
                    "note: slicing does not lower this model's arena ({} B recomputing the shared feature maps, {} B keeping them); the package keeps them",
                    thousands(recomputed as u64),
                    thousands(kept as u64)
                );
            }
        }
    }
    refuse_if_too_big(&program, board)?;
    let options = codegen::Options {
        compact_filters: !args.dense_filters,
        ..Default::default()
    };
    let package = codegen::generate_with(&program, &options);
    package
        .write(out)
        .with_context(|| format!("cannot write the package to {}", out.display()))?;
    let built = board
        .core
        .emulated()
        .map(|core| {
            let elf = emulator::build(out, core)?;
            emulator::elf_sizes(&elf).map(|sizes| (core, elf, sizes))
        })
        .transpose()
        .unwrap_or_else(|e| {
            eprintln!("note: the package was not built for {}: {e}", board.title);
            None
        });
    let elf = built.as_ref().map(|b| b.2);
    let profile = board
        .core
        .emulated()
        .filter(|_| elf.is_some())
        .map(|core| profile_package(out, &program, core, 0))
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
        macs: macs_per_inference(&program),
        routing: program.routing().map(|r| RoutingFigures {
            branches: r.branches(),
            common_operations: r.common,
            sliced,
        }),
        verification: match (&built, args.verify) {
            (Some((core, elf, _)), true) => Some(verify(model, &program, elf, *core)?),
            (None, true) => bail!(
                "--verify needs the package built for an emulated core; {} has none here",
                board.title
            ),
            _ => None,
        },
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
    if let Some(r) = &deployment.routing {
        println!(
            "routed: {} common operations, then one of {} branches{} ({} MACs per inference: the common part and the costliest branch)",
            r.common_operations,
            r.branches,
            if r.sliced {
                ", each recomputing the shared feature maps it reads"
            } else {
                ""
            },
            thousands(deployment.macs)
        );
    }
    if let Some(v) = &deployment.verification {
        println!(
            "verified on the {} split in the emulator: {} samples, {} of {} output bytes differ from tinyfit's runtime, {} predictions differ; accuracy {:.2} %",
            v.split,
            v.samples,
            v.differing_bytes,
            v.output_bytes,
            v.differing_predictions,
            100.0 * v.accuracy
        );
    }
    println!("wrote {} and deploy.json", out.display());
    Ok(())
}

/// A routed model's structure.
#[derive(Serialize)]
struct RoutingFigures {
    branches: usize,
    /// Operations every inference runs before the route is known.
    common_operations: usize,
    /// Whether the branches recompute the shared feature maps (`--slicing`).
    sliced: bool,
}

/// The package's outputs on a split, in the emulator, against tinyfit's int8 runtime.
#[derive(Serialize)]
struct Verification {
    split: &'static str,
    samples: usize,
    output_bytes: usize,
    /// Output bytes that differ from the runtime's (0: bit-exact).
    differing_bytes: usize,
    /// Samples whose class (of a routed model: whose route or class) differs.
    differing_predictions: usize,
    /// Accuracy of the package's predictions on the split.
    accuracy: f64,
    /// The package's predictions on the split, `[true][predicted]`.
    confusion: Vec<Vec<usize>>,
}

/// MACs of one inference: every operation, or for a routed program the common ones and the
/// costliest branch.
fn macs_per_inference(program: &Program) -> u64 {
    let macs =
        |ops: std::ops::Range<usize>| -> u64 { program.report()[ops].iter().map(|r| r.macs).sum() };
    match program.routing() {
        None => macs(0..program.report().len()),
        Some(r) => {
            macs(0..r.common)
                + r.branches
                    .iter()
                    .map(|b| macs(b.clone()))
                    .max()
                    .unwrap_or(0)
        }
    }
}

/// Instruction counts and stack depth of one inference of `program`, whose package is written
/// in `dir`, on `core`: on an all-zero input, as the counts do not depend on values. A
/// switchable program runs route `route` (ignored otherwise); its first phase is then the
/// switch to that route (`tinyfit_set_route`), the operations' follow.
pub fn profile_package(
    dir: &Path,
    program: &Program,
    core: Core,
    route: usize,
) -> Result<emulator::Profile> {
    let input = vec![0i8; program.input(0).map_or(0, |t| t.shape.len())];
    let mut raw: Vec<u8> = input.iter().map(|&v| v as u8).collect();
    let ops = match program.routing() {
        Some(r) if r.chooser == Chooser::Caller => {
            let branch = r
                .branches
                .get(route)
                .ok_or_else(|| anyhow::anyhow!("the program has no route {route}"))?;
            raw.insert(0, u8::try_from(route)?);
            1 + branch.len()
        }
        _ => operations_run(program, &input)?,
    };
    Ok(emulator::profile(
        dir,
        core,
        &raw,
        ops,
        std::time::Duration::from_secs(600),
    )?)
}

/// How many operations one inference on `input` runs (the profiler expects one phase each).
fn operations_run(program: &Program, input: &[i8]) -> Result<usize> {
    let Some(routing) = program.routing() else {
        return Ok(program.report().len());
    };
    let outputs = program.run(&[input])?;
    let route = tinyfit_deploy::routing::route_of(&outputs[0]);
    Ok(routing.common + routing.branches[route].len())
}

/// Runs the test split of the run folder `model` (a training run, or a DiTMoS run through its
/// strong model's) through `elf` on `core` and compares every output byte with `program`'s.
fn verify(model: &Path, program: &Program, elf: &Path, core: Core) -> Result<Verification> {
    let splits = run_splits(model)?;
    let data = &splits.test;
    let mut inputs = Vec::new();
    let mut expected = Vec::new();
    let mut labels = Vec::new();
    let mut arena = vec![0i8; program.memory().arena_bytes];
    for i in 0..data.len() {
        let x = program.quantize_input(0, data.sample(i), &data.sample_shape)?;
        let outputs = program.run_in(&mut arena, &[&x])?;
        inputs.extend(x.iter().map(|&v| v as u8));
        expected.push(outputs);
        labels.push(data.y[i]);
    }
    let timeout = std::time::Duration::from_secs(60 + data.len() as u64 / 10);
    let got = emulator::run(elf, core, &inputs, timeout)?;
    let per_sample: usize = expected.first().map_or(0, |o| o.iter().map(Vec::len).sum());
    if got.len() != per_sample * data.len() {
        bail!(
            "the package wrote {} output bytes for {} samples of {per_sample} bytes",
            got.len(),
            data.len()
        );
    }
    let mut differing_bytes = 0;
    let mut differing_predictions = 0;
    let mut correct = 0;
    let classes = data.class_names.len();
    let mut confusion = vec![vec![0usize; classes]; classes];
    for ((want, got), &label) in expected.iter().zip(got.chunks(per_sample)).zip(&labels) {
        let flat: Vec<i8> = want.concat();
        differing_bytes += flat
            .iter()
            .zip(got)
            .filter(|(a, b)| **a as u8 != **b)
            .count();
        // The package's outputs, split as the runtime's.
        let mut at = 0;
        let theirs: Vec<Vec<i8>> = want
            .iter()
            .map(|o| {
                let part = got[at..at + o.len()].iter().map(|&b| b as i8).collect();
                at += o.len();
                part
            })
            .collect();
        let predicted = |outputs: &[Vec<i8>]| {
            let route = program
                .routing()
                .map(|_| tinyfit_deploy::routing::route_of(&outputs[0]));
            let (_, scores) = program.scores(outputs).expect("outputs as the program's");
            (route, tinyfit_deploy::routing::route_of(scores))
        };
        let (mine, package) = (predicted(want), predicted(&theirs));
        differing_predictions += usize::from(mine != package);
        correct += usize::from(package.1 == label as usize);
        if let Some(row) = confusion.get_mut(label as usize)
            && let Some(cell) = row.get_mut(package.1)
        {
            *cell += 1;
        }
    }
    Ok(Verification {
        split: "test",
        samples: data.len(),
        output_bytes: got.len(),
        differing_bytes,
        differing_predictions,
        accuracy: correct as f64 / data.len().max(1) as f64,
        confusion,
    })
}

/// The splits of a run folder: a training run's own, or a DiTMoS run's strong model's.
fn run_splits(model: &Path) -> Result<tinyfit_data::Splits> {
    if !model.is_dir() {
        bail!(
            "--verify needs a run folder (its test split is the data), not {}",
            model.display()
        );
    }
    let run = RunDir(model.to_path_buf());
    if model.join("ditmos.json").exists() {
        let config: tinyfit_ditmos::config::DitmosConfig = run.read_json("config.json")?;
        return RunDir(config.strong).load()?.splits();
    }
    run.load()?.splits()
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
