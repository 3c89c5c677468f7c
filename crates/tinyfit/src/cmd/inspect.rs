//! `tinyfit inspect MODEL`: the per-layer table of a graph file or run folder.

use std::path::Path;

use anyhow::Result;
use tinyfit_graph::{Graph, Summary};

use crate::report::thousands;

/// Prints shapes, parameters, MACs and activation bytes per layer, with totals.
pub fn run(path: &Path) -> Result<()> {
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
