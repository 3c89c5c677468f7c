//! Runs a [`Model`] over a caller-provided arena, one operation after another.
//!
//! The arena holds every activation at the offset the planner gave it. An operation's output
//! never overlaps its inputs (validation refuses it), except a reshape aliased onto its input
//! and a sum computed in place over one of its inputs, so each step borrows its output mutably
//! and its other inputs immutably from disjoint parts.

use crate::kernels::{self, Requant};
use crate::model::{Constants, Error, Kernel, Model, Operation, TensorInfo};

/// Runs every operation of `model`; the inputs must already be in the arena ([`input_mut`]).
///
/// Validates the model first, so a malformed model is an error, never a panic. A caller that
/// runs one model many times can validate once with [`Model::check`] and call
/// [`Checked::invoke`].
pub fn invoke(model: &Model, arena: &mut [i8]) -> Result<(), Error> {
    model.check()?.invoke(arena)
}

/// A model that passed [`Model::validate`]: its operations run without further checks, whole
/// ([`Checked::invoke`]) or one at a time ([`Checked::step`], for hosts that time operations or
/// run some of them with their own kernels).
#[derive(Debug, Clone, Copy)]
pub struct Checked<'a, 'm> {
    model: &'a Model<'m>,
}

impl<'m> Model<'m> {
    /// Validates the model once for any number of runs.
    pub fn check(&self) -> Result<Checked<'_, 'm>, Error> {
        self.validate()?;
        Ok(Checked { model: self })
    }
}

impl<'m> Checked<'_, 'm> {
    /// The validated model.
    pub fn model(&self) -> &Model<'m> {
        self.model
    }

    /// Runs every operation in order.
    pub fn invoke(&self, arena: &mut [i8]) -> Result<(), Error> {
        self.fits(arena)?;
        for op in self.model.operations {
            run(self.model, op, arena);
        }
        Ok(())
    }

    /// Runs operation `index` alone; its inputs must already be in the arena.
    pub fn step(&self, index: usize, arena: &mut [i8]) -> Result<(), Error> {
        self.fits(arena)?;
        let op = self
            .model
            .operations
            .get(index)
            .ok_or(Error::BadOperation {
                operation: index,
                reason: "no such operation",
            })?;
        run(self.model, op, arena);
        Ok(())
    }

    /// Whether `arena` is large enough for the model (hosts that run some operations with
    /// their own kernels check it the same way).
    pub fn fits(&self, arena: &[i8]) -> Result<(), Error> {
        if arena.len() < self.model.arena_bytes {
            return Err(Error::ArenaTooSmall {
                needed: self.model.arena_bytes,
                given: arena.len(),
            });
        }
        Ok(())
    }
}

/// The bytes of model input `index` in the arena, to be filled before [`invoke`].
pub fn input_mut<'a>(model: &Model, arena: &'a mut [i8], index: usize) -> Option<&'a mut [i8]> {
    let t = model.tensors.get(*model.inputs.get(index)? as usize)?;
    arena.get_mut(t.range())
}

/// The bytes of model output `index` in the arena, valid after [`invoke`].
pub fn output<'a>(model: &Model, arena: &'a [i8], index: usize) -> Option<&'a [i8]> {
    let t = model.tensors.get(*model.outputs.get(index)? as usize)?;
    arena.get(t.range())
}

/// The part of the arena outside one operation's output, readable while the output is written.
struct Rest<'a> {
    before: &'a [i8],
    after: &'a [i8],
    after_start: usize,
}

impl<'a> Rest<'a> {
    /// Splits `arena` into the output tensor's bytes and the rest.
    fn split(arena: &'a mut [i8], out: &TensorInfo) -> (Self, &'a mut [i8]) {
        let range = out.range();
        let (before, rest) = arena.split_at_mut(range.start);
        let (output, after) = rest.split_at_mut(range.len());
        let rest = Rest {
            before,
            after,
            after_start: range.end,
        };
        (rest, output)
    }

    /// A tensor that does not overlap the output.
    fn get(&self, t: &TensorInfo) -> &'a [i8] {
        let r = t.range();
        if r.end <= self.before.len() {
            &self.before[r]
        } else {
            &self.after[r.start - self.after_start..r.end - self.after_start]
        }
    }
}

fn run(model: &Model, op: &Operation, arena: &mut [i8]) {
    // Validated: every index below is in range.
    let operands = op.inputs.of(model.operands).unwrap_or(&[]);
    let tensor = |i: usize| &model.tensors[operands[i] as usize];
    let out = &model.tensors[op.output as usize];
    if let Kernel::Reshape = op.kernel {
        let (from, to) = (tensor(0).range(), out.range());
        if from != to {
            arena.copy_within(from, to.start);
        }
        return;
    }
    if let Kernel::Add(params) = op.kernel {
        let (a, b) = (tensor(0), tensor(1));
        let (rest, output) = Rest::split(arena, out);
        if a.range() == out.range() {
            kernels::add_in_place(output, rest.get(b), &params, kernels::Operand::First);
        } else if b.range() == out.range() {
            kernels::add_in_place(output, rest.get(a), &params, kernels::Operand::Second);
        } else {
            kernels::add(rest.get(a), rest.get(b), &params, output);
        }
        return;
    }
    let (rest, output) = Rest::split(arena, out);
    let x = tensor(0);
    let input = rest.get(x);
    match op.kernel {
        Kernel::Conv {
            window,
            groups,
            constants,
        } => {
            let (q, filter, bias) = layer(model, x, out, &constants);
            kernels::conv2d(
                input,
                x.shape,
                filter,
                bias,
                &window,
                groups as usize,
                &q,
                output,
                out.shape,
            );
        }
        Kernel::DepthwiseConv {
            window,
            multiplier,
            constants,
        } => {
            let (q, filter, bias) = layer(model, x, out, &constants);
            kernels::depthwise_conv2d(
                input,
                x.shape,
                filter,
                bias,
                &window,
                multiplier as usize,
                &q,
                output,
                out.shape,
            );
        }
        Kernel::FullyConnected { constants } => {
            let (q, filter, bias) = layer(model, x, out, &constants);
            kernels::fully_connected(input, filter, bias, &q, output);
        }
        Kernel::AvgPool { window, clamp } => {
            kernels::avg_pool(input, x.shape, &window, clamp, output, out.shape)
        }
        Kernel::MaxPool { window, clamp } => {
            kernels::max_pool(input, x.shape, &window, clamp, output, out.shape)
        }
        // Run above, before the arena was split (it may work in place).
        Kernel::Add(_) => {}
        Kernel::Mean { multiplier } => kernels::mean(
            input,
            x.shape,
            multiplier,
            x.zero_point,
            out.zero_point,
            output,
        ),
        Kernel::Concat => {
            // Channels-last: each pixel's output channels are the inputs' channels in order.
            let pixels = out.shape.h * out.shape.w;
            let mut first = 0;
            for i in 0..operands.len() {
                let t = tensor(i);
                let part = rest.get(t);
                let c = t.shape.c;
                for p in 0..pixels {
                    let dst = p * out.shape.c + first;
                    output[dst..dst + c].copy_from_slice(&part[p * c..(p + 1) * c]);
                }
                first += c;
            }
        }
        Kernel::Pad { top, left } => kernels::pad(
            input,
            x.shape,
            top as usize,
            left as usize,
            out.zero_point.clamp(-128, 127) as i8,
            output,
            out.shape,
        ),
        Kernel::ChannelShuffle { groups } => {
            kernels::channel_shuffle(input, x.shape.c, groups as usize, output)
        }
        Kernel::Softmax(params) => kernels::softmax(input, x.shape.c, &params, output),
        Kernel::Requantize { multiplier } => {
            kernels::requantize(input, x.zero_point, multiplier, out.zero_point, output)
        }
        // Copied (or aliased) above, before the arena was split.
        Kernel::Reshape => {}
    }
}

/// The requantisation, filter and bias of a layer with weights (validated: in range).
fn layer<'m>(
    model: &Model<'m>,
    x: &TensorInfo,
    out: &TensorInfo,
    c: &Constants,
) -> (Requant<'m>, &'m [i8], &'m [i32]) {
    let q = Requant {
        input_zero_point: x.zero_point,
        output_zero_point: out.zero_point,
        multipliers: c.multipliers.of(model.multipliers).unwrap_or(&[]),
        clamp: c.clamp,
    };
    (
        q,
        c.filter.of(model.weights).unwrap_or(&[]),
        c.bias.of(model.biases).unwrap_or(&[]),
    )
}
