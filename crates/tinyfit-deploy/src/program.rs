//! An owned, planned int8 program: the host-side holder of a [`tinyfit_micro::Model`].

use std::time::Instant;

use tinyfit_micro::fixed_point::QuantizedMultiplier;

use crate::host::Engine;
use crate::routing::{Chooser, Routing, route_of};
use tinyfit_micro::{Model, Operation, TensorInfo};

/// Arena figures of a memory plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Bytes of the arena the plan needs.
    pub arena_bytes: usize,
    /// The most bytes that must be alive at one step: no plan can do better.
    pub lower_bound: usize,
}

impl MemoryPlan {
    /// How far the plan is above the lower bound, as a fraction (0.05 = 5 % over).
    pub fn overhead(&self) -> f64 {
        if self.lower_bound == 0 {
            0.0
        } else {
            self.arena_bytes as f64 / self.lower_bound as f64 - 1.0
        }
    }
}

/// The activation fused into an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// None.
    None,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
}

/// One operation's figures, for reports.
#[derive(Debug, Clone, PartialEq)]
pub struct OpReport {
    /// Graph node the operation implements.
    pub node: String,
    /// Kernel kind (`conv`, `depthwise_conv`, `fully_connected`, ...).
    pub kind: &'static str,
    /// Window height and width of convolutions and pools.
    pub window: Option<(usize, usize)>,
    /// Output shape, channels last.
    pub output: tinyfit_micro::kernels::Shape,
    /// Fused activation.
    pub activation: Activation,
    /// Multiply-accumulates.
    pub macs: u64,
    /// Constant bytes (weights, biases, multipliers) it adds to flash.
    pub const_bytes: usize,
    /// Activation bytes alive while it runs (its inputs, its output and everything kept).
    pub live_bytes: usize,
}

impl OpReport {
    /// The kind with its window, as tables print it: `conv 3x3`, `depthwise_conv 3x3`,
    /// `fully_connected`.
    pub fn label(&self) -> String {
        match self.window {
            Some((h, w)) => format!("{} {h}x{w}", self.kind),
            None => self.kind.to_string(),
        }
    }
}

/// A lowered model with its constants and memory plan; [`Program::model`] lends the runtime view.
#[derive(Debug, Clone)]
pub struct Program {
    pub(crate) tensors: Vec<TensorInfo>,
    pub(crate) operations: Vec<Operation>,
    pub(crate) operands: Vec<u32>,
    pub(crate) weights: Vec<i8>,
    pub(crate) biases: Vec<i32>,
    pub(crate) multipliers: Vec<QuantizedMultiplier>,
    pub(crate) inputs: Vec<u32>,
    pub(crate) outputs: Vec<u32>,
    pub(crate) memory: MemoryPlan,
    pub(crate) report: Vec<OpReport>,
    /// Channels-first graph shape of each tensor (its rank decides the TFLite shape).
    pub(crate) graph_shapes: Vec<Vec<usize>>,
    /// Outputs that may share an input's bytes (reshapes, in-place sums): (input, output).
    pub(crate) aliases: Vec<(u32, u32)>,
    /// The branches of a routed program ([`crate::routing`]); `None` runs every operation.
    pub(crate) routing: Option<Routing>,
    /// Host kernels (packed weights) for running the program here.
    pub(crate) host: Engine,
}

impl Program {
    /// A program with nothing in it, for lowering and linking to fill.
    pub(crate) fn empty() -> Program {
        Program {
            tensors: Vec::new(),
            operations: Vec::new(),
            operands: Vec::new(),
            weights: Vec::new(),
            biases: Vec::new(),
            multipliers: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            memory: MemoryPlan {
                arena_bytes: 0,
                lower_bound: 0,
            },
            report: Vec::new(),
            graph_shapes: Vec::new(),
            aliases: Vec::new(),
            routing: None,
            host: Engine::default(),
        }
    }

    /// The runtime's view of this program.
    pub fn model(&self) -> Model<'_> {
        Model {
            tensors: &self.tensors,
            operations: &self.operations,
            operands: &self.operands,
            weights: &self.weights,
            biases: &self.biases,
            multipliers: &self.multipliers,
            inputs: &self.inputs,
            outputs: &self.outputs,
            arena_bytes: self.memory.arena_bytes,
        }
    }

    /// This program without the host kernels: every operation runs through
    /// [`tinyfit_micro`]'s portable kernels, the code a microcontroller runs (for timing them
    /// and checking the host kernels against them).
    pub fn portable(&self) -> Program {
        Program {
            host: Engine::default(),
            ..self.clone()
        }
    }

    /// How many operations run on the host kernels ([`crate::host_kernels`]) rather than the
    /// portable ones.
    pub fn host_operations(&self) -> usize {
        self.host.len()
    }

    /// Arena size and its lower bound.
    pub fn memory(&self) -> MemoryPlan {
        self.memory
    }

    /// Per-operation figures.
    pub fn report(&self) -> &[OpReport] {
        &self.report
    }

    /// Constant bytes in flash: int8 weights, int32 biases and requantisation multipliers.
    pub fn const_bytes(&self) -> usize {
        self.report.iter().map(|r| r.const_bytes).sum()
    }

    /// Quantisation and channels-last shape of model input `i`.
    pub fn input(&self, i: usize) -> Option<&TensorInfo> {
        self.tensors.get(*self.inputs.get(i)? as usize)
    }

    /// Quantisation and channels-last shape of model output `i`.
    pub fn output(&self, i: usize) -> Option<&TensorInfo> {
        self.tensors.get(*self.outputs.get(i)? as usize)
    }

    /// Runs the program on channels-last int8 inputs in a scratch arena; returns the outputs
    /// (of a program routed by its scores: the scores and the chosen branch's output; of a
    /// switchable program: route 0's output).
    pub fn run(&self, inputs: &[&[i8]]) -> Result<Vec<Vec<i8>>, RunError> {
        let mut arena = vec![0i8; self.memory.arena_bytes];
        self.run_in(&mut arena, inputs)
    }

    /// As [`Program::run`], reusing `arena` (at least [`MemoryPlan::arena_bytes`] long).
    pub fn run_in(&self, arena: &mut [i8], inputs: &[&[i8]]) -> Result<Vec<Vec<i8>>, RunError> {
        if self
            .routing
            .as_ref()
            .is_some_and(|r| r.chooser == Chooser::Caller)
        {
            return self.run_route(arena, 0, inputs);
        }
        let model = self.model();
        let checked = model.check().map_err(RunError::Runtime)?;
        self.load_inputs(arena, inputs)?;
        let Some(routing) = &self.routing else {
            self.host
                .invoke(&checked, arena)
                .map_err(RunError::Runtime)?;
            return self.read_outputs(arena, &self.outputs);
        };
        for i in 0..routing.common {
            self.host
                .step(&checked, i, arena)
                .map_err(RunError::Runtime)?;
        }
        let scores = self.tensors[self.outputs[0] as usize].range();
        let route = route_of(&arena[scores]);
        for i in routing.branches[route].clone() {
            self.host
                .step(&checked, i, arena)
                .map_err(RunError::Runtime)?;
        }
        self.read_outputs(arena, &[self.outputs[0], self.outputs[1 + route]])
    }

    /// Runs route `route` of a program whose caller picks the route ([`Chooser::Caller`]) on
    /// `inputs`, in `arena`; returns that route's output.
    pub fn run_route(
        &self,
        arena: &mut [i8],
        route: usize,
        inputs: &[&[i8]],
    ) -> Result<Vec<Vec<i8>>, RunError> {
        let branch = match &self.routing {
            Some(r) if r.chooser == Chooser::Caller => r.branches.get(route).cloned(),
            _ => {
                return Err(RunError::Inputs(
                    "only a switchable program runs a route the caller picks".into(),
                ));
            }
        }
        .ok_or_else(|| RunError::Inputs(format!("the program has no route {route}")))?;
        let model = self.model();
        let checked = model.check().map_err(RunError::Runtime)?;
        self.load_inputs(arena, inputs)?;
        for i in branch {
            self.host
                .step(&checked, i, arena)
                .map_err(RunError::Runtime)?;
        }
        self.read_outputs(arena, &[self.outputs[route]])
    }

    /// The class scores among `outputs` as [`Program::run`] returns them, with their
    /// quantisation: output 0, or for a routed program the chosen branch's output.
    pub fn scores<'o>(&self, outputs: &'o [Vec<i8>]) -> Option<(&TensorInfo, &'o [i8])> {
        match &self.routing {
            None
            | Some(Routing {
                chooser: Chooser::Caller,
                ..
            }) => Some((self.output(0)?, outputs.first()?)),
            Some(_) => {
                let route = route_of(outputs.first()?);
                Some((self.output(1 + route)?, outputs.get(1)?))
            }
        }
    }

    /// Times each operation: the median over `runs` runs of the whole program (after one
    /// untimed run), in seconds, one figure per operation in execution order.
    pub fn time_operations(
        &self,
        arena: &mut [i8],
        inputs: &[&[i8]],
        runs: usize,
    ) -> Result<Vec<f64>, RunError> {
        let model = self.model();
        let checked = model.check().map_err(RunError::Runtime)?;
        self.load_inputs(arena, inputs)?;
        let ops = self.operations.len();
        let mut times = vec![Vec::with_capacity(runs); ops];
        for run in 0..=runs {
            for (i, times) in times.iter_mut().enumerate() {
                let t0 = Instant::now();
                self.host
                    .step(&checked, i, arena)
                    .map_err(RunError::Runtime)?;
                if run > 0 {
                    times.push(t0.elapsed().as_secs_f64());
                }
            }
        }
        Ok(times
            .into_iter()
            .map(|mut t| {
                t.sort_by(f64::total_cmp);
                t.get(t.len() / 2).copied().unwrap_or(0.0)
            })
            .collect())
    }

    fn load_inputs(&self, arena: &mut [i8], inputs: &[&[i8]]) -> Result<(), RunError> {
        let model = self.model();
        if inputs.len() != self.inputs.len() {
            return Err(RunError::Inputs(format!(
                "the model takes {} inputs, got {}",
                self.inputs.len(),
                inputs.len()
            )));
        }
        for (i, data) in inputs.iter().enumerate() {
            let slot = tinyfit_micro::input_mut(&model, arena, i)
                .ok_or(RunError::Runtime(tinyfit_micro::Error::BadIo))?;
            if slot.len() != data.len() {
                return Err(RunError::Inputs(format!(
                    "input {i} holds {} values, got {}",
                    slot.len(),
                    data.len()
                )));
            }
            slot.copy_from_slice(data);
        }
        Ok(())
    }

    fn read_outputs(&self, arena: &[i8], tensors: &[u32]) -> Result<Vec<Vec<i8>>, RunError> {
        tensors
            .iter()
            .map(|&t| {
                arena
                    .get(self.tensors[t as usize].range())
                    .map(<[i8]>::to_vec)
                    .ok_or(RunError::Runtime(tinyfit_micro::Error::BadIo))
            })
            .collect()
    }
}

impl Program {
    /// Quantises a channels-first float sample for model input `i` (TFLite's `QUANTIZE`:
    /// `round(x / scale) + zero_point`, saturated) and reorders it channels-last.
    pub fn quantize_input(
        &self,
        i: usize,
        sample: &[f32],
        shape: &[usize],
    ) -> Result<Vec<i8>, RunError> {
        let t = self
            .input(i)
            .ok_or_else(|| RunError::Inputs(format!("the model has no input {i}")))?;
        if sample.len() != t.shape.len() {
            return Err(RunError::Inputs(format!(
                "a sample of shape {shape:?} ({} values) for an input of {} values",
                sample.len(),
                t.shape.len()
            )));
        }
        let mut q = vec![0i8; sample.len()];
        tinyfit_micro::kernels::quantize(sample, t.scale, t.zero_point, &mut q);
        Ok(to_channels_last(&q, shape))
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The inputs do not match the model.
    #[error("{0}")]
    Inputs(String),
    /// The runtime refused the model or arena.
    #[error("runtime: {0}")]
    Runtime(tinyfit_micro::Error),
}

/// Reorders a channels-first `[C, ...spatial]` sample into channels-last order.
pub fn to_channels_last<T: Copy>(data: &[T], shape: &[usize]) -> Vec<T> {
    let (c, spatial) = match shape {
        [] | [_] => return data.to_vec(),
        [c, rest @ ..] => (*c, rest.iter().product::<usize>()),
    };
    let mut out = Vec::with_capacity(data.len());
    for p in 0..spatial {
        for ch in 0..c {
            out.push(data[ch * spatial + p]);
        }
    }
    out
}
