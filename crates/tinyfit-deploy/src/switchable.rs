//! Switchable programs: the routes of one model family — an SN-Net's anchors and stitches,
//! quantised together so that a layer shared by several routes is the same int8 constants in
//! each — linked into one program whose caller picks the route.
//!
//! Each route keeps its own operations and tensors; a layer's constants are stored once,
//! however many routes run it; only the chosen route's operations run. The routes are the
//! branches of a [`Routing`] chosen by the caller, with no common part: memory is planned along
//! them, so the arena is the largest route's, and switching is one store (`tinyfit_set_route`
//! in the generated C), with nothing to reload.

use std::collections::HashMap;

use tinyfit_micro::{Kernel, Span};

use crate::host::Engine;
use crate::plan::plan;
use crate::program::Program;
use crate::routing::{Chooser, Routing};

/// The most routes a switchable program takes: the example driver reads a route as one byte,
/// 0xff standing for a budget.
pub const MAX_ROUTES: usize = 255;

/// Why routes cannot be linked into one program.
#[derive(Debug, thiserror::Error)]
pub enum SwitchError {
    /// No routes, or more than the package's one-byte route ids allow.
    #[error("a switchable program takes 1 to {MAX_ROUTES} routes, not {0}")]
    Count(usize),
    /// The routes do not read one input, or write one output shape, alike.
    #[error("route {route} {why}")]
    Input {
        /// The route.
        route: usize,
        /// What differs.
        why: String,
    },
    /// A layer's constants differ between two routes: they were not quantised together.
    #[error(
        "layer '{node}' has other constants in route {route} than in route {first}; quantise the \
         routes together so that shared layers are alike"
    )]
    Layer {
        /// The layer (graph node).
        node: String,
        /// The route that ran it first.
        first: usize,
        /// The route whose copy differs.
        route: usize,
    },
}

/// A layer's constants as linked: where they lie in the shared pools, and which route first
/// brought them.
struct Linked {
    constants: tinyfit_micro::Constants,
    route: usize,
}

impl Program {
    /// The routes `routes` (each a plain, unrouted program) as one program: route `k`'s
    /// operations are branch `k`, chosen by the caller ([`Program::run_route`], or
    /// `tinyfit_set_route` in C), its output is output `k`. Layers are matched by their graph
    /// node's name and must have equal constants wherever they appear.
    pub fn switchable(routes: &[Program]) -> Result<Program, SwitchError> {
        if routes.is_empty() || routes.len() > MAX_ROUTES {
            return Err(SwitchError::Count(routes.len()));
        }
        let first = &routes[0];
        let input = first.inputs.first().copied();
        let mut out = Program::empty();
        if let Some(t) = input {
            out.tensors.push(first.tensors[t as usize]);
            out.graph_shapes
                .push(first.graph_shapes[t as usize].clone());
            out.inputs.push(0);
        }
        let mut layers: HashMap<String, Linked> = HashMap::new();
        let mut branches = Vec::with_capacity(routes.len());
        for (r, route) in routes.iter().enumerate() {
            check_input(first, route, r)?;
            // Route tensor → linked tensor: the input is shared, the rest are the route's own.
            let mut tensor = vec![u32::MAX; route.tensors.len()];
            for (t, info) in route.tensors.iter().enumerate() {
                if Some(t as u32) == route.inputs.first().copied() {
                    tensor[t] = 0;
                } else {
                    tensor[t] = out.tensors.len() as u32;
                    out.tensors.push(*info);
                    out.graph_shapes.push(route.graph_shapes[t].clone());
                }
            }
            let start = out.operations.len();
            for (op, report) in route.operations.iter().zip(&route.report) {
                let mut op = *op;
                let mut report = report.clone();
                if let Some(c) = constants_mut(&mut op.kernel) {
                    match layers.get(&report.node) {
                        Some(linked) => {
                            if !same_constants(&out, &linked.constants, route, c) {
                                return Err(SwitchError::Layer {
                                    node: report.node,
                                    first: linked.route,
                                    route: r,
                                });
                            }
                            *c = linked.constants;
                            // Its bytes are counted where the layer was first linked.
                            report.const_bytes = 0;
                        }
                        None => {
                            *c = append_constants(&mut out, route, c);
                            layers.insert(
                                report.node.clone(),
                                Linked {
                                    constants: *c,
                                    route: r,
                                },
                            );
                        }
                    }
                }
                let inputs = op.inputs.of(&route.operands).unwrap_or(&[]);
                op.inputs = Span {
                    start: out.operands.len() as u32,
                    len: inputs.len() as u32,
                };
                out.operands
                    .extend(inputs.iter().map(|&t| tensor[t as usize]));
                op.output = tensor[op.output as usize];
                out.operations.push(op);
                out.report.push(report);
            }
            branches.push(start..out.operations.len());
            out.outputs.push(tensor[route.outputs[0] as usize]);
            out.aliases.extend(
                route
                    .aliases
                    .iter()
                    .map(|&(from, to)| (tensor[from as usize], tensor[to as usize])),
            );
        }
        out.routing = Some(Routing {
            common: 0,
            branches,
            chooser: Chooser::Caller,
        });
        plan(&mut out);
        out.host = Engine::new(&out.model());
        Ok(out)
    }
}

/// Refuses route `r` unless it is a plain program with one output shaped as the first route's,
/// reading one input quantised as the first route's.
fn check_input(first: &Program, route: &Program, r: usize) -> Result<(), SwitchError> {
    let fail = |why: String| Err(SwitchError::Input { route: r, why });
    if route.routing.is_some() || route.outputs.len() != 1 {
        return fail("must be a plain program with one output".into());
    }
    let size = |p: &Program| p.output(0).map(|t| t.shape);
    if size(route) != size(first) {
        return fail(format!(
            "has an output of shape {:?}, route 0 one of {:?}",
            size(route),
            size(first)
        ));
    }
    match (first.input(0), route.input(0), route.inputs.len()) {
        (Some(a), Some(b), 1)
            if a.shape == b.shape && a.scale == b.scale && a.zero_point == b.zero_point =>
        {
            Ok(())
        }
        _ => fail("does not read one input shaped and quantised as route 0's".into()),
    }
}

/// The constants of a layer's kernel, for kernels that have them.
fn constants_mut(kernel: &mut Kernel) -> Option<&mut tinyfit_micro::Constants> {
    match kernel {
        Kernel::Conv { constants, .. }
        | Kernel::DepthwiseConv { constants, .. }
        | Kernel::FullyConnected { constants } => Some(constants),
        _ => None,
    }
}

/// Copies `c`'s filter, bias and multipliers from `route` to the end of `out`'s pools.
fn append_constants(
    out: &mut Program,
    route: &Program,
    c: &tinyfit_micro::Constants,
) -> tinyfit_micro::Constants {
    fn append<T: Copy>(pool: &mut Vec<T>, from: &[T], span: Span) -> Span {
        let start = pool.len() as u32;
        pool.extend_from_slice(span.of(from).unwrap_or(&[]));
        Span {
            start,
            len: span.len,
        }
    }
    tinyfit_micro::Constants {
        filter: append(&mut out.weights, &route.weights, c.filter),
        bias: append(&mut out.biases, &route.biases, c.bias),
        multipliers: append(&mut out.multipliers, &route.multipliers, c.multipliers),
        clamp: c.clamp,
    }
}

/// Whether `route`'s constants `c` equal the linked ones `linked` in `out`.
fn same_constants(
    out: &Program,
    linked: &tinyfit_micro::Constants,
    route: &Program,
    c: &tinyfit_micro::Constants,
) -> bool {
    linked.clamp == c.clamp
        && linked.filter.of(&out.weights) == c.filter.of(&route.weights)
        && linked.bias.of(&out.biases) == c.bias.of(&route.biases)
        && linked.multipliers.of(&out.multipliers) == c.multipliers.of(&route.multipliers)
}

impl Program {
    /// Arena bytes route `route` of a switchable program touches: the end of the last of its
    /// tensors (and the input) in the shared arena. While that route runs, the rest of the
    /// arena is free for the application.
    pub fn route_arena_bytes(&self, route: usize) -> Option<usize> {
        let branch = self.routing.as_ref()?.branches.get(route)?.clone();
        let ends = self.operations[branch].iter().flat_map(|op| {
            let inputs = op.inputs.of(&self.operands).unwrap_or(&[]);
            inputs.iter().chain([&op.output]).copied()
        });
        ends.chain(self.inputs.iter().copied())
            .map(|t| {
                let t = &self.tensors[t as usize];
                t.offset + t.shape.len()
            })
            .max()
    }
}

/// A route as the run-time policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RouteCost {
    /// The route.
    pub route: usize,
    /// How good it is (the policy prefers higher): validation accuracy in int8.
    pub accuracy: f64,
    /// Estimated latency of one inference, in microseconds.
    pub latency_us: u32,
    /// Arena bytes it touches ([`Program::route_arena_bytes`]).
    pub sram_bytes: u32,
}

/// What the device can spend on one inference at some moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Budget {
    /// Longest acceptable latency, in microseconds.
    pub latency_us: u32,
    /// Arena bytes the model may touch.
    pub sram_bytes: u32,
}

/// The run-time policy of a switchable package: the most accurate route that fits the
/// budget. Generated into the package as `tinyfit_route_for_budget`, which implements
/// [`Policy::choose`] over the same table.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Routes in the order the policy tries them: most accurate first; at equal accuracy the
    /// faster, then the smaller. Routes another matches or beats on accuracy and both costs,
    /// and beats on one, are left out: no budget would pick them.
    pub preferred: Vec<RouteCost>,
}

impl Policy {
    /// The policy over `routes`.
    pub fn new(routes: &[RouteCost]) -> Policy {
        let beaten = |r: &RouteCost| {
            routes.iter().any(|s| {
                s.route != r.route
                    && s.accuracy >= r.accuracy
                    && s.latency_us <= r.latency_us
                    && s.sram_bytes <= r.sram_bytes
                    && (s.accuracy > r.accuracy
                        || s.latency_us < r.latency_us
                        || s.sram_bytes < r.sram_bytes)
            })
        };
        let mut preferred: Vec<RouteCost> = routes.iter().filter(|r| !beaten(r)).copied().collect();
        preferred.sort_by(|a, b| {
            b.accuracy
                .total_cmp(&a.accuracy)
                .then(a.latency_us.cmp(&b.latency_us))
                .then(a.sram_bytes.cmp(&b.sram_bytes))
                .then(a.route.cmp(&b.route))
        });
        Policy { preferred }
    }

    /// The route for `budget`: the first preferred route that fits it, if any does.
    pub fn choose(&self, budget: Budget) -> Option<usize> {
        self.preferred
            .iter()
            .find(|r| r.latency_us <= budget.latency_us && r.sram_bytes <= budget.sram_bytes)
            .map(|r| r.route)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(route: usize, accuracy: f64, latency_us: u32, sram_bytes: u32) -> RouteCost {
        RouteCost {
            route,
            accuracy,
            latency_us,
            sram_bytes,
        }
    }

    #[test]
    fn the_policy_runs_the_most_accurate_route_that_fits() {
        let policy = Policy::new(&[
            route(0, 0.80, 1_000, 100),
            route(1, 0.90, 5_000, 400),
            route(2, 0.85, 2_000, 200),
            // Beaten by route 2 on accuracy and both costs: never worth running.
            route(3, 0.84, 3_000, 300),
            // As accurate as route 1 but slower: route 1 goes first.
            route(4, 0.90, 6_000, 300),
        ]);
        let order: Vec<usize> = policy.preferred.iter().map(|r| r.route).collect();
        assert_eq!(order, [1, 4, 2, 0]);
        let choose = |latency_us, sram_bytes| {
            policy.choose(Budget {
                latency_us,
                sram_bytes,
            })
        };
        assert_eq!(choose(10_000, 1_000), Some(1));
        assert_eq!(choose(10_000, 300), Some(4));
        assert_eq!(choose(4_000, 1_000), Some(2));
        assert_eq!(choose(1_000, 1_000), Some(0));
        assert_eq!(choose(999, 1_000), None);
        assert_eq!(choose(10_000, 99), None);
    }
}
