//! `tinyfit inspect MODEL`: the per-layer table of a graph file or run folder, or the per-op
//! table of an int8 `.tflite` model as tinyfit's runtime would run it.

use std::path::Path;

use anyhow::{Context, Result};
use tinyfit_graph::{Graph, Summary};

use crate::report::thousands;

/// Prints shapes, parameters, MACs and activation bytes per layer, with totals.
pub fn run(path: &Path) -> Result<()> {
    if path.extension().is_some_and(|e| e == "tflite") {
        return tflite(path);
    }
    let file = if path.is_dir() {
        path.join("model.json")
    } else {
        path.to_path_buf()
    };
    let graph = Graph::load(&file)?;
    let analysis = graph.analyze()?;
    let s = Summary::new(&graph, &analysis);
    if !graph.name.is_empty() {
        println!("{}", graph.name);
    }
    for input in &graph.inputs {
        println!("input {:<10} {:?}", input.name, input.shape);
    }
    println!(
        "{:<12} {:<16} {:<18} {:>10} {:>12} {:>10}",
        "layer", "op", "output", "params", "MACs", "act bytes"
    );
    for r in &s.rows {
        println!(
            "{:<12} {:<16} {:<18} {:>10} {:>12} {:>10}",
            r.name,
            r.kind,
            format!("{:?}", r.output),
            thousands(r.params),
            thousands(r.macs),
            thousands(r.activation_bytes)
        );
    }
    println!("outputs: {:?}", Summary::output_shapes(&graph, &analysis));
    println!("parameters: {}", thousands(s.params));
    println!("MACs: {} ({:.2} M)", thousands(s.macs), s.macs as f64 / 1e6);
    println!(
        "activations (int8 bytes): {} in total, {} at the largest single layer (inputs + output)",
        thousands(s.activation_bytes),
        thousands(s.peak_layer_bytes)
    );
    Ok(())
}

/// Imports, lowers and plans a `.tflite` model; prints per-op MACs, flash and arena use.
fn tflite(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let quant =
        tinyfit_deploy::tflite::import(&bytes).with_context(|| format!("{}", path.display()))?;
    let program = tinyfit_deploy::lower(&quant).with_context(|| format!("{}", path.display()))?;
    for (i, input) in quant.graph.inputs.iter().enumerate() {
        let t = program.input(i).expect("lowered inputs");
        println!(
            "input {} {:?} (channels first; runtime [H, W, C] = [{}, {}, {}]) int8 scale {} zero point {}",
            input.name, input.shape, t.shape.h, t.shape.w, t.shape.c, t.scale, t.zero_point
        );
    }
    println!(
        "{:<4} {:<16} {:<16} {:<16} {:>12} {:>10} {:>10}",
        "#", "node", "kernel", "output [H,W,C]", "MACs", "flash B", "live B"
    );
    let mut macs = 0;
    for (k, r) in program.report().iter().enumerate() {
        macs += r.macs;
        println!(
            "{:<4} {:<16} {:<16} {:<16} {:>12} {:>10} {:>10}",
            k,
            r.node,
            r.kind,
            format!("[{}, {}, {}]", r.output.h, r.output.w, r.output.c),
            thousands(r.macs),
            thousands(r.const_bytes as u64),
            thousands(r.live_bytes as u64)
        );
    }
    let memory = program.memory();
    println!("operations: {}", program.report().len());
    println!("MACs: {} ({:.2} M)", thousands(macs), macs as f64 / 1e6);
    println!(
        "flash (weights, biases, multipliers): {} B",
        thousands(program.const_bytes() as u64)
    );
    println!(
        "arena: {} B planned, lower bound {} B ({:+.1} %)",
        thousands(memory.arena_bytes as u64),
        thousands(memory.lower_bound as u64),
        100.0 * memory.overhead()
    );
    Ok(())
}
