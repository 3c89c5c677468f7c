//! The int8 stage of `tinyfit stitch`: every route of the SN-Net quantised together (a layer
//! shared by several routes is one set of int8 constants), linked into one switchable program
//! ([`Program::switchable`]) and generated as one C package in the run folder (`package/`),
//! where `tinyfit_set_route(k)` picks the route. Each route is measured in the int8 runtime
//! on validation and test; on a board with an emulated core, the package is profiled per route
//! (latency estimate, cost of the switch), regenerated with the run-time policy
//! (`tinyfit_route_for_budget`: the most accurate route that fits a latency and memory
//! budget), every route's outputs on the test split are compared byte for byte with the
//! runtime's, and a scripted budget trace checks that the package picks the routes the policy
//! promises.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use tinyfit_compress::PtqConfig;
use tinyfit_compress::ptq::quantize_together;
use tinyfit_data::{Dataset, Splits};
use tinyfit_deploy::boards::Board;
use tinyfit_deploy::emulator::{self, Core, ElfSizes};
use tinyfit_deploy::{Budget, Policy, Program, RouteCost, codegen, cost};
use tinyfit_stitch::route_model::RouteModel;

use crate::cmd::deploy::profile_package;
use crate::cmd::eval::int8_metrics;
use crate::run_dir::RunDir;

/// A route in int8, as the switchable package runs it.
#[derive(Serialize)]
pub struct Int8Route {
    pub validation_accuracy: f64,
    pub test_accuracy: f64,
    /// Bytes of the constants it reads (weights, biases, requantisation).
    pub const_bytes: usize,
    /// Its own planned arena (in the package it shares the package's arena).
    pub arena_bytes: usize,
    /// Estimated latency of one inference on the board (from the instructions the package
    /// executes for this route on the emulated core); absent without a board or emulator.
    pub latency_ms: Option<f64>,
    /// Estimated cycles of switching to this route (`tinyfit_set_route`).
    pub switch_cycles: Option<f64>,
    /// Test samples whose package outputs differ from the runtime's in any byte (of all
    /// test samples), where the package ran on the emulated core.
    pub differing_test_samples: Option<usize>,
}

/// The switchable package of every route.
#[derive(Serialize)]
pub struct PackageReport {
    /// Constant bytes of all routes together, each shared layer once.
    pub const_bytes: usize,
    /// The package's arena: the largest route's, as routes share it.
    pub arena_bytes: usize,
    /// Flash and static RAM of the package built for the board's core.
    pub elf: Option<ElfSizes>,
    /// The board the estimates are for.
    pub board: Option<String>,
    /// The run-time policy's table: routes in the order it tries them (with a board).
    pub policy: Option<Vec<RouteCost>>,
    /// The scripted budget trace run through the package on the emulated core.
    pub trace: Vec<TraceStep>,
}

/// `program`'s int8 accuracy on validation and test, its constants and arena; no emulator
/// figures yet.
pub fn int8_route(program: &Program, splits: &Splits, progress: &ProgressBar) -> Result<Int8Route> {
    Ok(Int8Route {
        validation_accuracy: int8_metrics(program, &splits.val, progress)?.accuracy,
        test_accuracy: int8_metrics(program, &splits.test, progress)?.accuracy,
        const_bytes: program.const_bytes(),
        arena_bytes: program.memory().arena_bytes,
        latency_ms: None,
        switch_cycles: None,
        differing_test_samples: None,
    })
}

/// The estimated latency of the plain `program` on `board`, from its package (written to
/// `dir`) run on the emulated core.
pub fn latency_ms(program: &Program, board: &Board, core: Core, dir: &Path) -> Result<f64> {
    write_package(dir, program, None)?;
    let profile = profile_package(dir, program, core, 0)?;
    Ok(cost::estimate(&profile.operations, board)
        .context("no cycle model")?
        .latency_ms)
}

/// Quantises, links and measures every route of an SN-Net (`models`:
/// [`tinyfit_stitch::model::SnNet::route_models`]); writes the package to `package/` in `run`.
/// Returns each route's figures and the package's.
pub fn deploy(
    run: &RunDir,
    models: &[RouteModel],
    splits: &Splits,
    board: Option<&Board>,
) -> Result<(Vec<Int8Route>, PackageReport)> {
    let pairs: Vec<_> = models.iter().map(|m| (&m.graph, &m.weights)).collect();
    let quantized = quantize_together(&pairs, &splits.train, &PtqConfig::default())
        .context("post-training quantisation of the routes")?;
    let programs = quantized
        .iter()
        .map(tinyfit_deploy::lower)
        .collect::<Result<Vec<_>, _>>()?;
    let switchable = Program::switchable(&programs)?;
    let dir = run.file("package");
    write_package(&dir, &switchable, None)?;
    let bar = ProgressBar::new(programs.len() as u64).with_style(
        ProgressStyle::with_template("int8 routes [{bar:30}] {pos}/{len} ({elapsed})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let hidden = ProgressBar::hidden();
    let mut routes = Vec::with_capacity(programs.len());
    for program in &programs {
        routes.push(int8_route(program, splits, &hidden)?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let emulated = board.and_then(|b| b.core.emulated().map(|core| (b, core)));
    let (elf, policy, trace) = match emulated {
        Some((board, core)) => {
            match emulate(
                &dir,
                &switchable,
                &programs,
                &splits.test,
                board,
                core,
                &mut routes,
            ) {
                Ok((sizes, policy, trace)) => (Some(sizes), Some(policy.preferred), trace),
                Err(e) => {
                    eprintln!("note: the package was not run on {}: {e:#}", board.title);
                    // Figures of the routes measured before the failure would be a partial set.
                    for r in &mut routes {
                        r.latency_ms = None;
                        r.switch_cycles = None;
                        r.differing_test_samples = None;
                    }
                    (None, None, Vec::new())
                }
            }
        }
        None => (None, None, Vec::new()),
    };
    Ok((
        routes,
        PackageReport {
            const_bytes: switchable.const_bytes(),
            arena_bytes: switchable.memory().arena_bytes,
            elf,
            board: board.map(|b| b.name.to_string()),
            policy,
            trace,
        },
    ))
}

/// Builds the package in `dir` for `core` and profiles each route (latency and switch
/// estimates on `board`); regenerates it with the run-time policy over the routes' int8
/// validation accuracy, latency and arena bytes; runs every route on the `test` split,
/// comparing its outputs with the runtime's route `programs`, and then a scripted budget trace.
/// Returns the final ELF's sizes, the policy and the trace.
fn emulate(
    dir: &Path,
    switchable: &Program,
    programs: &[Program],
    test: &Dataset,
    board: &Board,
    core: Core,
    routes: &mut [Int8Route],
) -> Result<(ElfSizes, Policy, Vec<TraceStep>)> {
    let bar = ProgressBar::new(2 * programs.len() as u64 + 1).with_style(
        ProgressStyle::with_template(
            "routes on the emulated {msg} [{bar:30}] {pos}/{len} ({elapsed}, eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(board.title);
    let mut costs = Vec::with_capacity(programs.len());
    for (r, route) in routes.iter_mut().enumerate() {
        let profile = profile_package(dir, switchable, core, r)?;
        let (switch, operations) = profile.operations.split_at(1);
        let latency = cost::estimate(operations, board).context("no cycle model")?;
        route.latency_ms = Some(latency.latency_ms);
        route.switch_cycles = cost::estimate(switch, board).map(|e| e.cycles);
        costs.push(RouteCost {
            route: r,
            accuracy: route.validation_accuracy,
            latency_us: (latency.latency_ms * 1e3).ceil() as u32,
            sram_bytes: switchable.route_arena_bytes(r).unwrap_or(0) as u32,
        });
        bar.inc(1);
    }
    let policy = Policy::new(&costs);
    write_package(dir, switchable, Some(&policy))?;
    let elf = emulator::build(dir, core)?;
    let sizes = emulator::elf_sizes(&elf)?;
    for (r, (program, route)) in programs.iter().zip(routes.iter_mut()).enumerate() {
        route.differing_test_samples = Some(compare_route(&elf, core, r, program, test)?);
        bar.inc(1);
    }
    let trace = run_trace(&elf, core, &policy, programs, test)?;
    bar.inc(1);
    bar.finish_and_clear();
    Ok((sizes, policy, trace))
}

/// Writes `switchable`'s C package, with `policy`, to `dir`.
fn write_package(dir: &Path, switchable: &Program, policy: Option<&Policy>) -> Result<()> {
    let options = codegen::Options {
        policy: policy.cloned(),
        ..Default::default()
    };
    codegen::generate_with(switchable, &options)
        .write(dir)
        .with_context(|| format!("cannot write the package to {}", dir.display()))
}

/// One budget of the trace and what came of it.
#[derive(Serialize)]
pub struct TraceStep {
    pub budget: Budget,
    /// The route the policy promises for the budget (none: no route fits).
    pub promised: Option<usize>,
    /// The route the package picked on the emulated core.
    pub picked: Option<usize>,
    /// Whether the package's outputs equal the runtime's for the promised route.
    pub outputs_equal: bool,
}

/// A scripted budget trace: the latency budget steps up through every preferred route's
/// latency, from below the fastest (nothing fits), with all the arena; then back down with
/// the arena cut below what the most accurate route touches.
fn budget_trace(policy: &Policy) -> Vec<Budget> {
    let mut latencies: Vec<u32> = policy.preferred.iter().map(|r| r.latency_us).collect();
    latencies.sort_unstable();
    latencies.dedup();
    let all = policy
        .preferred
        .iter()
        .map(|r| r.sram_bytes)
        .max()
        .unwrap_or(0);
    let cut = policy
        .preferred
        .first()
        .map_or(0, |r| r.sram_bytes.saturating_sub(1));
    let fastest = latencies.first().copied().unwrap_or(0);
    std::iter::once(fastest / 2)
        .chain(latencies.iter().copied())
        .map(|latency_us| Budget {
            latency_us,
            sram_bytes: all,
        })
        .chain(latencies.iter().rev().map(|&latency_us| Budget {
            latency_us,
            sram_bytes: cut,
        }))
        .collect()
}

/// Runs [`budget_trace`] through the package `elf` (one test sample per budget, the policy
/// in the package picking the route) and compares each pick and output with the policy's
/// promise and that route's runtime output.
fn run_trace(
    elf: &Path,
    core: Core,
    policy: &Policy,
    programs: &[Program],
    test: &Dataset,
) -> Result<Vec<TraceStep>> {
    let budgets = budget_trace(policy);
    let mut stream = Vec::new();
    let mut expected = Vec::new();
    for (k, budget) in budgets.iter().enumerate() {
        let promised = policy.choose(*budget);
        let x = programs[0].quantize_input(0, test.sample(k % test.len()), &test.sample_shape)?;
        stream.push(0xff);
        stream.extend(budget.latency_us.to_le_bytes());
        stream.extend(budget.sram_bytes.to_le_bytes());
        stream.extend(x.iter().map(|&v| v as u8));
        let output = match promised {
            Some(r) => programs[r].run(&[&x])?.concat(),
            None => Vec::new(),
        };
        expected.push((promised, output));
    }
    let got = emulator::run(elf, core, &stream, Duration::from_secs(300))?;
    let mut at = 0;
    let mut steps = Vec::with_capacity(budgets.len());
    for (budget, (promised, output)) in budgets.into_iter().zip(expected) {
        let picked = *got
            .get(at)
            .context("the package wrote fewer outputs than budgets")?;
        let picked = (picked != 0xff).then_some(picked as usize);
        at += 1;
        let n = picked.map_or(0, |_| output.len());
        let written = got
            .get(at..at + n)
            .context("the package's outputs end early")?;
        at += n;
        steps.push(TraceStep {
            budget,
            promised,
            picked,
            outputs_equal: picked == promised
                && written.iter().zip(&output).all(|(&a, &b)| a == b as u8),
        });
    }
    if at != got.len() {
        bail!(
            "the package wrote {} bytes more than the trace expects",
            got.len() - at
        );
    }
    Ok(steps)
}

/// Runs route `r` of the package `elf` on every sample of `test` and counts the samples whose
/// output differs in any byte from the runtime's `program` (the route alone).
fn compare_route(
    elf: &Path,
    core: Core,
    r: usize,
    program: &Program,
    test: &Dataset,
) -> Result<usize> {
    let mut stream = Vec::new();
    let mut expected = Vec::new();
    let mut arena = vec![0i8; program.memory().arena_bytes];
    for i in 0..test.len() {
        let x = program.quantize_input(0, test.sample(i), &test.sample_shape)?;
        stream.push(u8::try_from(r)?);
        stream.extend(x.iter().map(|&v| v as u8));
        let out = program.run_in(&mut arena, &[&x])?;
        expected.push(out.concat());
    }
    let timeout = Duration::from_secs(60 + test.len() as u64 / 10);
    let got = emulator::run(elf, core, &stream, timeout)?;
    let per_sample = expected.first().map_or(0, Vec::len);
    if got.len() != per_sample * test.len() {
        bail!(
            "route {r}: the package wrote {} output bytes for {} samples of {per_sample} bytes",
            got.len(),
            test.len()
        );
    }
    Ok(expected
        .iter()
        .zip(got.chunks(per_sample.max(1)))
        .filter(|(want, got)| want.iter().zip(got.iter()).any(|(a, b)| *a as u8 != *b))
        .count())
}

/// Prints what the package on the emulated core showed.
pub fn print_package(package: &PackageReport, routes: &[&Int8Route]) {
    let thousands = |v: usize| crate::report::thousands(v as u64);
    println!(
        "switchable package: {} B of constants for {} routes, a {} B arena (the largest route's \
         plan: {} B)",
        thousands(package.const_bytes),
        routes.len(),
        thousands(package.arena_bytes),
        thousands(routes.iter().map(|r| r.arena_bytes).max().unwrap_or(0))
    );
    let (Some(elf), Some(board)) = (&package.elf, &package.board) else {
        return;
    };
    let differing: usize = routes.iter().filter_map(|r| r.differing_test_samples).sum();
    let switch = routes.iter().filter_map(|r| r.switch_cycles);
    let (lo, hi) = switch.fold((f64::INFINITY, 0f64), |(lo, hi), c| (lo.min(c), hi.max(c)));
    let kept = package.trace.iter().filter(|s| s.outputs_equal).count();
    println!(
        "  built for {board}: {} B flash, {} B static RAM; every route on the test split in the \
         emulator: {differing} samples differ from the runtime; switching costs {lo:.0}-{hi:.0} \
         cycles; budget trace: {kept} of {} steps ran the route the policy promises, outputs \
         equal",
        thousands(elf.flash),
        thousands(elf.static_ram),
        package.trace.len()
    );
}
