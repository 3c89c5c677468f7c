//! An anchor: a model of the family and where its blocks end, so it can be cut between any
//! two blocks — run up to a block's output, or from a block's input on.

use tinyfit_graph::{Analysis, Graph, ValueRef};

/// Why a model cannot serve as an anchor, or two cannot be stitched.
#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    /// The graph does not check.
    #[error(transparent)]
    Graph(#[from] tinyfit_graph::GraphError),
    /// The block list does not cut the graph.
    #[error("anchor '{anchor}': {why}")]
    Blocks {
        /// The anchor's graph name.
        anchor: String,
        /// What is wrong.
        why: String,
    },
}

/// A graph cut into a stem, blocks and a head.
#[derive(Debug, Clone)]
pub struct Anchor {
    /// The model.
    pub graph: Graph,
    analysis: Analysis,
    /// The node whose value enters block 0 (`None`: the graph input).
    stem: Option<usize>,
    /// Each block's last node.
    ends: Vec<usize>,
    /// The node whose value is the model's output (the head's last).
    output: usize,
}

impl Anchor {
    /// `graph` with blocks ending at the nodes `block_ends` (in order), the first starting
    /// after the node `stem` (or at the first node). Each boundary must cut the graph: no node
    /// after it reads a value from before it, or the graph input.
    pub fn new(
        graph: Graph,
        stem: Option<&str>,
        block_ends: &[String],
    ) -> Result<Self, AnchorError> {
        let analysis = graph.analyze()?;
        let fail = |why: String| AnchorError::Blocks {
            anchor: graph.name.clone(),
            why,
        };
        let index = |name: &str| {
            graph
                .nodes
                .iter()
                .position(|n| n.name == name)
                .ok_or_else(|| fail(format!("'{name}' is no node of the graph")))
        };
        let stem = stem.map(index).transpose()?;
        let ends = block_ends
            .iter()
            .map(|n| index(n))
            .collect::<Result<Vec<_>, _>>()?;
        if ends.is_empty() {
            return Err(fail("it needs at least one block".into()));
        }
        let mut previous = stem;
        for &end in &ends {
            if previous.is_some_and(|p| end <= p) {
                return Err(fail(format!(
                    "block ends must follow the stem and each other in node order; '{}' does not",
                    graph.nodes[end].name
                )));
            }
            previous = Some(end);
        }
        let output = match analysis.outputs.first() {
            Some(ValueRef::Node(o)) => *o,
            _ => return Err(fail("its output must be a node".into())),
        };
        let last = *ends.last().expect("non-empty");
        if output < last {
            return Err(fail(format!(
                "its output '{}' comes before the last block's end",
                graph.nodes[output].name
            )));
        }
        for &cut in stem.iter().chain(&ends[..ends.len() - 1]) {
            for (i, info) in analysis.nodes.iter().enumerate().skip(cut + 1) {
                let crosses = info.inputs.iter().any(|r| match *r {
                    ValueRef::Input(_) => true,
                    ValueRef::Node(k) => k < cut,
                });
                if crosses {
                    return Err(fail(format!(
                        "node '{}' reads a value from before '{}', so the graph cannot be cut \
                         there",
                        graph.nodes[i].name, graph.nodes[cut].name
                    )));
                }
            }
        }
        Ok(Anchor {
            graph,
            analysis,
            stem,
            ends,
            output,
        })
    }

    /// Number of blocks.
    pub fn depth(&self) -> usize {
        self.ends.len()
    }

    /// The node whose value is block `k`'s input (`None`: the graph input).
    pub fn block_input(&self, k: usize) -> Option<usize> {
        if k == 0 {
            self.stem
        } else {
            Some(self.ends[k - 1])
        }
    }

    /// Block `j`'s last node.
    pub fn block_output(&self, j: usize) -> usize {
        self.ends[j]
    }

    /// The node whose value is the model's output.
    pub fn output(&self) -> usize {
        self.output
    }

    /// The per-sample shape of node `i`'s value.
    pub fn shape(&self, i: usize) -> &[usize] {
        &self.analysis.nodes[i].shape.output
    }

    /// The graph's analysis.
    pub fn analysis(&self) -> &Analysis {
        &self.analysis
    }
}
