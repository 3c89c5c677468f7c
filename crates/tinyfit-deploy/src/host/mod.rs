//! The host execution engine: runs a [`tinyfit_micro::Model`] on the machine tinyfit itself runs
//! on, with the same integers as the microcontroller kernels.
//!
//! Convolutions and fully connected layers hold nearly all of a model's multiply-accumulates.
//! On x86-64 CPUs with AVX-512 VNNI they run here as int8 matrix products over weights packed
//! once, when the program is built ([`gemm`]); depthwise convolutions ([`depthwise`]) and sums
//! run sixteen lanes at a time. Every other operation, and every operation on other CPUs, runs
//! through the runtime's own kernels ([`tinyfit_micro::Checked::step`]). The microcontroller
//! build never sees this module: packing needs a heap and the kernels need instructions a
//! Cortex-M lacks.

#[cfg(target_arch = "x86_64")]
mod avx512;
mod depthwise;
mod gemm;
mod image;
mod requant;

use std::cell::RefCell;
use std::ops::Range;

use tinyfit_micro::{Checked, Error, Kernel, Model, Operation};

use depthwise::PackedDepthwise;
use gemm::PackedGemm;

/// How the host runs one operation.
#[derive(Debug, Clone)]
enum HostOp {
    /// A convolution or fully connected layer as a packed matrix product.
    Gemm(PackedGemm),
    /// A depthwise convolution with widened weights.
    Depthwise(PackedDepthwise),
    /// An element-wise sum, sixteen lanes at a time.
    #[cfg(target_arch = "x86_64")]
    Add(tinyfit_micro::kernels::AddParams, avx512::AddRescale),
}

impl HostOp {
    /// The host version of `op`, if there is one.
    fn new(model: &Model, op: &Operation) -> Option<Self> {
        match op.kernel {
            Kernel::Conv { groups: 1, .. } | Kernel::FullyConnected { .. } => {
                PackedGemm::new(model, op).map(HostOp::Gemm)
            }
            Kernel::DepthwiseConv { .. } => PackedDepthwise::new(model, op).map(HostOp::Depthwise),
            #[cfg(target_arch = "x86_64")]
            Kernel::Add(p) => avx512::AddRescale::new(&p).map(|r| HostOp::Add(p, r)),
            _ => None,
        }
    }
}

/// Host kernels prepared for one program: a host version of each operation that has one,
/// `None` where the runtime's kernel runs.
#[derive(Debug, Clone, Default)]
pub(crate) struct Engine {
    ops: Vec<Option<HostOp>>,
}

impl Engine {
    /// Prepares the operations of `model` this CPU runs faster than the runtime's kernels; an
    /// empty engine (all operations through the runtime) on other CPUs, or when the model is
    /// invalid (running it reports why).
    pub(crate) fn new(model: &Model) -> Self {
        if !avx512_available() || model.validate().is_err() {
            return Engine::default();
        }
        let ops = model
            .operations
            .iter()
            .map(|op| HostOp::new(model, op))
            .collect();
        Engine { ops }
    }

    /// Number of operations the host kernels run.
    pub(crate) fn len(&self) -> usize {
        self.ops.iter().flatten().count()
    }

    /// Runs every operation of a validated model over `arena`.
    pub(crate) fn invoke(&self, checked: &Checked, arena: &mut [i8]) -> Result<(), Error> {
        for i in 0..checked.model().operations.len() {
            self.step(checked, i, arena)?;
        }
        Ok(())
    }

    /// Runs operation `index` of a validated model.
    pub(crate) fn step(
        &self,
        checked: &Checked,
        index: usize,
        arena: &mut [i8],
    ) -> Result<(), Error> {
        let Some(Some(host)) = self.ops.get(index) else {
            return checked.step(index, arena);
        };
        checked.fits(arena)?;
        let model = checked.model();
        // Validated: operands and output lie in the arena; an output overlaps an input only
        // for reshapes (never here) and sums computed in place (which `add` allows).
        let op = &model.operations[index];
        let operand =
            |i: usize| model.tensors[model.operands[op.inputs.start as usize + i] as usize].range();
        let output = model.tensors[op.output as usize].range();
        match host {
            HostOp::Gemm(g) => {
                let (input, output) = disjoint(arena, operand(0), output);
                g.run(input, output);
            }
            HostOp::Depthwise(d) => {
                let (input, output) = disjoint(arena, operand(0), output);
                d.run(input, output);
            }
            #[cfg(target_arch = "x86_64")]
            HostOp::Add(p, r) => {
                assert!(avx512_available());
                // SAFETY: the CPU has the AVX-512 extensions, checked just above.
                unsafe { avx512::add(p, r, arena, operand(0), operand(1), output) };
            }
        }
        Ok(())
    }
}

/// The instruction set the host kernels use on this CPU, or `None` when they do not run here
/// (every operation then runs through [`tinyfit_micro`]'s portable kernels).
pub fn host_kernels() -> Option<&'static str> {
    avx512_available().then_some("AVX-512 VNNI")
}

/// Whether this CPU runs the host kernels (AVX-512 F, BW, VL and VNNI).
pub(crate) fn avx512_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vl")
            && std::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Borrows `input` immutably and `output` mutably from `arena`; the two ranges must not overlap.
fn disjoint(arena: &mut [i8], input: Range<usize>, output: Range<usize>) -> (&[i8], &mut [i8]) {
    if input.end <= output.start {
        let (left, right) = arena.split_at_mut(output.start);
        (&left[input], &mut right[..output.len()])
    } else {
        assert!(output.end <= input.start, "input and output overlap");
        let (left, right) = arena.split_at_mut(input.start);
        (&right[..input.len()], &mut left[output])
    }
}

/// A cache line of packed constants: 64-byte alignment keeps every vector load within one line
/// (a load split across two lines costs about twice as much, and where allocations happen to
/// land would otherwise make timings differ from run to run).
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Aligned<T>(pub(super) T);

thread_local! {
    /// The padded input image of the running layer ([`image`]), reused across layers and runs
    /// of a thread; in whole cache lines, so that image rows keep the same alignment from run
    /// to run.
    static SCRATCH: RefCell<Vec<Aligned<[u8; 64]>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's scratch image, grown to at least `len` bytes.
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    SCRATCH.with_borrow_mut(|lines| {
        let needed = len.div_ceil(64);
        if lines.len() < needed {
            lines.resize(needed, Aligned([0; 64]));
        }
        // SAFETY: `Aligned<[u8; 64]>` is `repr(C)` around `[u8; 64]`: 64 initialised bytes
        // each, no padding, so the lines are `64 · len` contiguous bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(lines.as_mut_ptr().cast::<u8>(), lines.len() * 64)
        };
        f(bytes)
    })
}
