//! Helpers shared by the integration tests.

use std::path::Path;

use tinyfit_graph::Graph;

/// A graph of the repository's `examples/graphs`.
pub fn example_graph(name: &str) -> Graph {
    Graph::load(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/graphs")
            .join(name),
    )
    .unwrap()
}
