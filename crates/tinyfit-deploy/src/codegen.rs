//! C code generation: a lowered [`Program`] as a self-contained C99 package for a
//! microcontroller.
//!
//! The package holds `tinyfit_kernels.{h,c}` (the runtime's kernels in C, the same arithmetic
//! as [`tinyfit_micro`]), `model.h`/`model.c` (weights as `const` arrays, which a linker puts
//! in flash, the arena as one static buffer of the planned size, and `tinyfit_invoke()`: one
//! kernel call per operation with its shapes and arena offsets as literals) and `main.c`, an
//! example that streams samples through the model from `inputs.bin` to `outputs.bin`
//! (semihosting on an emulator, or any hosted build).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use tinyfit_micro::fixed_point::QuantizedMultiplier;
use tinyfit_micro::kernels::{Clamp, Shape, Window};
use tinyfit_micro::{Constants, Kernel, Operation, TensorInfo};

use crate::compact::{CompactFilter, folded_row_bias};
use crate::program::Program;
use crate::routing::Chooser;
use crate::switchable::Policy;

/// The kernels, shipped verbatim.
const KERNELS_H: &str = include_str!("../c/tinyfit_kernels.h");
const KERNELS_C: &str = include_str!("../c/tinyfit_kernels.c");
const MAIN_C: &str = include_str!("../c/main.c");

/// The hook profiling builds (`-DTINYFIT_PROFILE`) call before each operation and after the
/// last: the emulator's instruction counter starts a new phase at each call.
const PROFILE_MARK: &str = "#ifdef TINYFIT_PROFILE
/* Profiling builds call this before each operation and after the last; the emulator counts
 * the instructions between calls. */
void tinyfit_profile_mark(void) __attribute__((noinline));
void tinyfit_profile_mark(void) { __asm__ volatile(\"\"); }
#define TINYFIT_MARK() tinyfit_profile_mark()
#else
#define TINYFIT_MARK() ((void)0)
#endif

";

/// A generated C package: file names and contents.
#[derive(Debug, Clone)]
pub struct Package {
    /// `(file name, contents)`, in the order they are written.
    pub files: Vec<(&'static str, String)>,
    /// The layers whose filters the package stores in a compact format.
    pub compact_layers: Vec<CompactLayer>,
    /// Bytes of the receptive-field buffer of the compact convolutions (any core).
    pub field_bytes: usize,
    /// Bytes of scratch the DSP kernels use (Cortex-M4/M7 builds).
    pub dsp_scratch_bytes: usize,
}

impl Package {
    /// SRAM the package takes beside the arena on a core with the DSP extension.
    pub fn scratch_bytes(&self) -> usize {
        self.field_bytes + self.dsp_scratch_bytes
    }

    /// Filter bytes the compact formats save over dense storage.
    pub fn filter_bytes_saved(&self) -> usize {
        bytes_saved(&self.compact_layers)
    }
}

/// Filter bytes `layers` save over dense storage.
pub fn bytes_saved(layers: &[CompactLayer]) -> usize {
    layers.iter().map(|l| l.dense_bytes - l.stored_bytes).sum()
}

/// Choices the generator leaves to the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Store the filters of convolutions and fully connected layers in a compact format
    /// ([`crate::compact`]: sparse, or packed in fewer bits) where that saves at least
    /// [`crate::compact::MIN_SAVING`] of their bytes.
    pub compact_filters: bool,
    /// The run-time policy of a switchable program (`tinyfit_route_for_budget`); without
    /// one, that function finds no route.
    pub policy: Option<Policy>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            compact_filters: true,
            policy: None,
        }
    }
}

/// A layer stored in a compact format, for reports.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CompactLayer {
    /// Graph node.
    pub node: String,
    /// `sparse`, `packed4`, `packed2` or `packed1`.
    pub format: String,
    /// Filter bytes stored dense.
    pub dense_bytes: usize,
    /// Filter bytes stored compact.
    pub stored_bytes: usize,
    /// Fraction of the weights that are non-zero.
    pub density: f64,
}

impl Package {
    /// Writes every file into `dir` (created if missing), each atomically
    /// ([`tinyfit_graph::write_atomic`]), so an interrupted write never leaves a half-written
    /// file.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        for (name, contents) in &self.files {
            tinyfit_graph::write_atomic(&dir.join(name), contents.as_bytes())?;
        }
        Ok(())
    }
}

/// Generates the C package of `program` with the default [`Options`].
pub fn generate(program: &Program) -> Package {
    generate_with(program, &Options::default())
}

/// Generates the C package of `program`.
pub fn generate_with(program: &Program, options: &Options) -> Package {
    let compact = compact_filters(program, options);
    let field_bytes = compact_field_bytes(program, &compact);
    let scratch_bytes = dsp_scratch_bytes(program, &compact);
    let mut model_c = String::new();
    // Operations computing the same thing on alike tensors (a sliced program's
    // recomputations) share one set of constants.
    let mut emitted: HashMap<String, String> = HashMap::new();
    let mut calls = Vec::with_capacity(program.operations.len());
    for (i, op) in program.operations.iter().enumerate() {
        let report = &program.report[i];
        let key = constants_key(program, op);
        let mut discarded = String::new();
        let (prefix, statics) = match emitted.get(&key) {
            Some(prefix) => (prefix.clone(), &mut discarded),
            None => {
                let own = format!("op{i}_{}", c_identifier(&report.node));
                emitted.insert(key, own.clone());
                (own, &mut model_c)
            }
        };
        let operands = op.inputs.of(&program.operands).unwrap_or(&[]);
        let tensor = |j: usize| &program.tensors[operands[j] as usize];
        let out = &program.tensors[op.output as usize];
        let mut call = format!(
            "    /* {i}: {} ({}, {}x{}x{}, {} MACs) */\n    TINYFIT_MARK();\n",
            report.node, report.kind, out.shape.h, out.shape.w, out.shape.c, report.macs
        );
        call.push_str(&match &compact[i] {
            Some(filter) => emit_compact_layer(
                program,
                &op.kernel,
                filter,
                &prefix,
                tensor(0),
                out,
                statics,
            ),
            None => emit_operation(
                program,
                &op.kernel,
                &prefix,
                tensor,
                operands.len(),
                out,
                statics,
            ),
        });
        calls.push(call);
    }
    let body = invoke_body(program, &calls);
    let mut c = String::new();
    let _ = writeln!(
        c,
        "/* Generated by tinyfit: {} operations, {} bytes of constants, {}-byte arena. */",
        program.operations.len(),
        program.const_bytes(),
        program.memory.arena_bytes
    );
    c.push_str("#include \"model.h\"\n#include \"tinyfit_kernels.h\"\n\n");
    c.push_str(PROFILE_MARK);
    let _ = writeln!(
        c,
        "static int8_t arena[TINYFIT_ARENA_BYTES] __attribute__((aligned(4)));\n"
    );
    c.push_str(
        "#if TINYFIT_DSP && TINYFIT_SCRATCH_BYTES > 0
/* im2col columns and widened inputs of the DSP kernels. */
static int16_t scratch[(TINYFIT_SCRATCH_BYTES + 1) / 2] __attribute__((aligned(4)));
#define SCRATCH scratch
#else
#define SCRATCH NULL
#endif

",
    );
    if field_bytes > 0 {
        let _ = writeln!(
            c,
            "/* Receptive fields of the convolutions with compact filters. */\nstatic int8_t field[{field_bytes}] __attribute__((aligned(4)));\n"
        );
    }
    c.push_str(&model_c);
    c.push_str(&io_tables(program));
    if program
        .routing()
        .is_some_and(|r| r.chooser == Chooser::Caller)
    {
        c.push_str(&policy_c(options.policy.as_ref()));
    }
    c.push_str("\nvoid tinyfit_invoke(void) {\n");
    c.push_str(&body);
    c.push_str("}\n");
    Package {
        files: vec![
            ("tinyfit_kernels.h", KERNELS_H.to_string()),
            ("tinyfit_kernels.c", KERNELS_C.to_string()),
            ("model.h", model_h(program, scratch_bytes)),
            ("model.c", c),
            ("main.c", MAIN_C.to_string()),
        ],
        compact_layers: compact_layers(program, &compact),
        field_bytes,
        dsp_scratch_bytes: scratch_bytes,
    }
}

/// `tinyfit_invoke`'s statements: every call in order, or for a routed program the common
/// calls, the route (the first of the largest scores, unless the caller set it) and a switch
/// over the branches.
fn invoke_body(program: &Program, calls: &[String]) -> String {
    let Some(routing) = program.routing() else {
        return calls.concat() + "    TINYFIT_MARK();\n";
    };
    let mut body = calls[..routing.common].concat();
    if routing.chooser == Chooser::Scores {
        let scores = &program.tensors[program.outputs[0] as usize];
        let _ = writeln!(
            body,
            "    route = 0;
    for (int32_t k = 1; k < {m}; k++) {{
        if (arena[{at} + k] > arena[{at} + route]) {{
            route = k;
        }}
    }}",
            m = routing.branches(),
            at = scores.offset
        );
    }
    body.push_str("    switch (route) {\n");
    for (k, range) in routing.branches.iter().enumerate() {
        let _ = writeln!(body, "    case {k}:");
        for line in calls[range.clone()].concat().lines() {
            let _ = writeln!(body, "    {line}");
        }
        body.push_str("        break;\n");
    }
    body.push_str("    default:\n        break;\n    }\n    TINYFIT_MARK();\n");
    body
}

/// What an operation's constants depend on: its kernel (constants by their spans) and the
/// shapes and quantisation of its tensors. Operations with equal keys emit equal constants.
fn constants_key(program: &Program, op: &Operation) -> String {
    let mut key = format!("{:?}", op.kernel);
    let operands = op.inputs.of(&program.operands).unwrap_or(&[]);
    for &t in operands.iter().chain([&op.output]) {
        let t = &program.tensors[t as usize];
        let _ = write!(
            key,
            "|{:?} {:#x} {}",
            t.shape,
            t.scale.to_bits(),
            t.zero_point
        );
    }
    key
}

/// The layers of `program` that `options` store compact, as [`generate_with`] would, without
/// generating the package (for reports that need the stored sizes only).
pub fn compact_layers_of(program: &Program, options: &Options) -> Vec<CompactLayer> {
    compact_layers(program, &compact_filters(program, options))
}

/// Each operation's compact filter, where it has one.
fn compact_filters(program: &Program, options: &Options) -> Vec<Option<CompactFilter>> {
    program
        .operations
        .iter()
        .map(|op| compact_filter(program, op, options))
        .collect()
}

/// The report lines of the layers given a compact filter.
fn compact_layers(program: &Program, compact: &[Option<CompactFilter>]) -> Vec<CompactLayer> {
    program
        .report
        .iter()
        .zip(&program.operations)
        .zip(compact)
        .filter_map(|((r, op), c)| {
            let filter = weighted_filter(program, op)?;
            let c = c.as_ref()?;
            Some(CompactLayer {
                node: r.node.clone(),
                format: c.format(),
                dense_bytes: filter.len(),
                stored_bytes: c.bytes(),
                density: filter.iter().filter(|&&w| w != 0).count() as f64
                    / filter.len().max(1) as f64,
            })
        })
        .collect()
}

/// The filter of a convolution without groups or of a fully connected layer: the layers with a
/// compact-format kernel.
fn weighted_filter<'p>(program: &'p Program, op: &Operation) -> Option<&'p [i8]> {
    match op.kernel {
        Kernel::Conv {
            groups: 1,
            constants,
            ..
        }
        | Kernel::FullyConnected { constants } => constants.filter.of(&program.weights),
        _ => None,
    }
}

/// The compact encoding of `op`'s filter, where `options` allow it, the kernel has a compact
/// version and it pays.
fn compact_filter(program: &Program, op: &Operation, options: &Options) -> Option<CompactFilter> {
    if !options.compact_filters {
        return None;
    }
    let rows = program.tensors[op.output as usize].shape.c;
    CompactFilter::choose(weighted_filter(program, op)?, rows)
}

/// The largest receptive field of the convolutions stored compact.
fn compact_field_bytes(program: &Program, compact: &[Option<CompactFilter>]) -> usize {
    program
        .operations
        .iter()
        .zip(compact)
        .filter(|(_, s)| s.is_some())
        .map(|(op, _)| match op.kernel {
            Kernel::Conv { window, .. } => {
                let input = op.inputs.of(&program.operands).and_then(|o| o.first());
                let c = input.map_or(0, |&t| program.tensors[t as usize].shape.c);
                window.kh * window.kw * c
            }
            _ => 0,
        })
        .max()
        .unwrap_or(0)
}

/// Emits a convolution or fully connected layer whose filter is stored compact: the filter,
/// the bias with the input zero point folded in, the general requantisation; returns its
/// kernel call.
fn emit_compact_layer(
    program: &Program,
    kernel: &Kernel,
    filter: &CompactFilter,
    prefix: &str,
    input: &TensorInfo,
    out: &TensorInfo,
    statics: &mut String,
) -> String {
    let (Kernel::Conv { constants, .. } | Kernel::FullyConnected { constants }) = *kernel else {
        unreachable!("only convolutions and fully connected layers are stored compact")
    };
    let channels = out.shape.c;
    let dense = constants.filter.of(&program.weights).unwrap_or(&[]);
    let bias = constants.bias.of(&program.biases).unwrap_or(&[]);
    let (bits, mask) = match filter {
        CompactFilter::Sparse(s) => {
            emit_array(
                statics,
                "uint32_t",
                &format!("{prefix}_mask"),
                s.mask.iter().map(|m| format!("{m:#010x}u")),
            );
            emit_array(
                statics,
                "int8_t",
                &format!("{prefix}_values"),
                s.values.iter(),
            );
            (0, format!("{prefix}_mask"))
        }
        CompactFilter::Packed(p) => {
            emit_array(
                statics,
                "uint8_t",
                &format!("{prefix}_values"),
                p.data.iter().map(|b| format!("{b:#04x}")),
            );
            (p.bits, "NULL".into())
        }
    };
    let _ = writeln!(
        statics,
        "static const tf_compact_filter {prefix}_filter = {{{bits}, {mask}, {prefix}_values}};\n"
    );
    let mut folded = folded_row_bias(dense, channels, bias, input.zero_point);
    if let CompactFilter::Packed(p) = filter
        && p.bits == 1
    {
        // The binary kernel sums x + 128 over a row's +1 weights (tf_compact_filter).
        let row = dense.len() / channels.max(1);
        for (b, weights) in folded.iter_mut().zip(dense.chunks(row.max(1))) {
            let ones = weights.iter().filter(|&&w| w > 0).count() as i32;
            *b = b.wrapping_sub(256 * ones);
        }
    }
    emit_array(statics, "int32_t", &format!("{prefix}_bias"), folded.iter());
    let per_channel = per_channel_multipliers(program, &constants, channels);
    statics.push_str(&general_requant(
        prefix,
        input,
        out,
        &constants,
        &per_channel,
    ));
    statics.push('\n');
    let at = |t: &TensorInfo| format!("arena + {}", t.offset);
    match *kernel {
        Kernel::Conv { window, .. } => {
            emit_window(statics, prefix, &window);
            format!(
                "    tf_conv2d_compact({}, {}, &{prefix}_filter, {prefix}_bias, &{prefix}_window, &{prefix}_q, {}, {}, field);\n",
                at(input),
                shape(input.shape),
                at(out),
                shape(out.shape)
            )
        }
        _ => format!(
            "    tf_fully_connected_compact({}, {}, &{prefix}_filter, {prefix}_bias, &{prefix}_q, {}, {});\n",
            at(input),
            input.shape.len(),
            at(out),
            out.shape.len()
        ),
    }
}

/// Emits the constants of one operation into `statics` and returns its kernel call.
fn emit_operation<'p>(
    program: &'p Program,
    kernel: &Kernel,
    prefix: &str,
    tensor: impl Fn(usize) -> &'p TensorInfo,
    operand_count: usize,
    out: &TensorInfo,
    statics: &mut String,
) -> String {
    let at = |t: &TensorInfo| format!("arena + {}", t.offset);
    let n = out.shape.len();
    // A layer with weights reading the first operand.
    let weighted = |c: &Constants, layout, dsp_kernel, statics: &mut String| {
        layer(
            program,
            prefix,
            tensor(0),
            out,
            c,
            layout,
            dsp_kernel,
            statics,
        )
    };
    match *kernel {
        Kernel::Conv {
            window,
            groups,
            constants,
        } => {
            // The C kernels' TINYFIT_CONV_PADDED.
            let dsp_kernel_rows = (groups == 1).then_some(window.kh);
            let layout = FilterLayout::ChannelRows { dsp_kernel_rows };
            let (filter, bias, q) = weighted(&constants, layout, groups == 1, statics);
            emit_window(statics, prefix, &window);
            format!(
                "    tf_conv2d({}, {}, {filter}, {bias}, &{prefix}_window, {groups}, &{q}, {}, {}, SCRATCH);\n",
                at(tensor(0)),
                shape(tensor(0).shape),
                at(out),
                shape(out.shape)
            )
        }
        Kernel::DepthwiseConv {
            window,
            multiplier,
            constants,
        } => {
            // The C kernels' TINYFIT_DEPTHWISE_BLOCKED.
            let blocked_for_dsp = multiplier == 1 && out.shape.c.is_multiple_of(4);
            let layout = FilterLayout::ChannelsInner { blocked_for_dsp };
            let (filter, bias, q) = weighted(&constants, layout, blocked_for_dsp, statics);
            emit_window(statics, prefix, &window);
            let folded = format!("{prefix}_folded_bias");
            let values = folded_bias(program, &constants, tensor(0).zero_point, out.shape.c);
            emit_array(statics, "int32_t", &folded, values.iter());
            format!(
                "    tf_depthwise_conv2d({}, {}, {filter}, {bias}, {folded}, &{prefix}_window, {multiplier}, &{q}, {}, {});\n",
                at(tensor(0)),
                shape(tensor(0).shape),
                at(out),
                shape(out.shape)
            )
        }
        Kernel::FullyConnected { constants } => {
            let layout = FilterLayout::ChannelRows {
                dsp_kernel_rows: None,
            };
            let (filter, bias, q) = weighted(&constants, layout, true, statics);
            format!(
                "    tf_fully_connected({}, {}, {filter}, {bias}, &{q}, {}, {n}, SCRATCH);\n",
                at(tensor(0)),
                tensor(0).shape.len(),
                at(out)
            )
        }
        Kernel::AvgPool { window, clamp } | Kernel::MaxPool { window, clamp } => {
            emit_window(statics, prefix, &window);
            let name = if matches!(kernel, Kernel::AvgPool { .. }) {
                "tf_avg_pool"
            } else {
                "tf_max_pool"
            };
            format!(
                "    {name}({}, {}, &{prefix}_window, {}, {}, {}, {});\n",
                at(tensor(0)),
                shape(tensor(0).shape),
                clamp.min,
                clamp.max,
                at(out),
                shape(out.shape)
            )
        }
        Kernel::Add(p) => {
            let [m0, m1] = p.input_multipliers;
            let _ = writeln!(
                statics,
                "static const tf_add_params {prefix}_params = {{{{{}, {}}}, {{{}, {}}}, {}, {}, {}, {}}};\n",
                p.input_zero_points[0],
                p.input_zero_points[1],
                multiplier(m0),
                multiplier(m1),
                multiplier(p.output_multiplier),
                p.output_zero_point,
                p.clamp.min,
                p.clamp.max
            );
            format!(
                "    tf_add({}, {}, &{prefix}_params, {}, {n});\n",
                at(tensor(0)),
                at(tensor(1)),
                at(out)
            )
        }
        Kernel::Mean { multiplier: m } => format!(
            "    tf_mean({}, {}, (tf_multiplier){}, {}, {}, {});\n",
            at(tensor(0)),
            shape(tensor(0).shape),
            multiplier(m),
            tensor(0).zero_point,
            out.zero_point,
            at(out)
        ),
        Kernel::Concat => {
            let mut call = String::new();
            let mut first = 0;
            for j in 0..operand_count {
                let t = tensor(j);
                let _ = writeln!(
                    call,
                    "    tf_concat_part({}, {}, {}, {}, {}, {first});",
                    at(t),
                    out.shape.h * out.shape.w,
                    t.shape.c,
                    at(out),
                    out.shape.c
                );
                first += t.shape.c;
            }
            call
        }
        Kernel::Reshape if tensor(0).offset == out.offset => {
            "    /* aliased by the planner: nothing to do */\n".to_string()
        }
        Kernel::Reshape => format!("    tf_copy({}, {n}, {});\n", at(tensor(0)), at(out)),
        Kernel::Pad { top, left } => format!(
            "    tf_pad({}, {}, {top}, {left}, {}, {}, {});\n",
            at(tensor(0)),
            shape(tensor(0).shape),
            out.zero_point.clamp(-128, 127),
            at(out),
            shape(out.shape)
        ),
        Kernel::ChannelShuffle { groups } => format!(
            "    tf_channel_shuffle({}, {}, {}, {groups}, {});\n",
            at(tensor(0)),
            out.shape.h * out.shape.w,
            out.shape.c,
            at(out)
        ),
        Kernel::Softmax(p) => {
            let _ = writeln!(
                statics,
                "static const tf_softmax_params {prefix}_params = {{{}, {}, {}}};\n",
                p.input_multiplier, p.input_left_shift, p.diff_min
            );
            format!(
                "    tf_softmax({}, {n}, {}, &{prefix}_params, {});\n",
                at(tensor(0)),
                tensor(0).shape.c,
                at(out)
            )
        }
        Kernel::Requantize { multiplier: m } => format!(
            "    tf_requantize({}, {n}, {}, (tf_multiplier){}, {}, {});\n",
            at(tensor(0)),
            tensor(0).zero_point,
            multiplier(m),
            out.zero_point,
            at(out)
        ),
    }
}

/// Where a filter keeps each output channel's weights.
#[derive(Clone, Copy)]
enum FilterLayout {
    /// One row per output channel (`[out_c][...]`: convolution, fully connected); for the DSP
    /// convolution, the number of kernel rows, by which each row is reordered and padded
    /// ([`dsp_conv_rows`]).
    ChannelRows { dsp_kernel_rows: Option<usize> },
    /// The channel innermost (`[taps][out_c]`: depthwise); for the DSP kernels, optionally in
    /// blocks of four channels (`[out_c / 4][taps][4]`).
    ChannelsInner { blocked_for_dsp: bool },
}

/// Convolution filter rows of `row` values in the DSP kernel's order (`tf_conv2d` in
/// `tinyfit_kernels.h`): each of the `kernel_rows` kernel rows' whole words in turn, then their
/// leftover values together, then zeros to a multiple of four.
fn dsp_conv_rows(filter: &[i8], row: usize, kernel_rows: usize) -> Vec<i8> {
    let row_bytes = row / kernel_rows;
    let words = row_bytes / 4 * 4;
    let padded = row.div_ceil(4) * 4;
    filter
        .chunks(row)
        .flat_map(|r| {
            let kernel_row = |k: usize| &r[k * row_bytes..(k + 1) * row_bytes];
            let whole = (0..kernel_rows).flat_map(move |k| kernel_row(k)[..words].iter());
            let leftover = (0..kernel_rows).flat_map(move |k| kernel_row(k)[words..].iter());
            whole
                .chain(leftover)
                .copied()
                .chain(std::iter::repeat_n(0, padded - row))
        })
        .collect()
}

/// C definitions that differ by build: `dsp` where `TINYFIT_DSP` holds (the build runs the DSP
/// kernels), `portable` elsewhere.
fn emit_per_build(out: &mut String, dsp: &str, portable: &str) {
    let _ = write!(out, "#if TINYFIT_DSP\n{dsp}#else\n{portable}#endif\n");
}

/// A depthwise filter `[taps][channels]` in blocks of four channels, `[channels / 4][taps][4]`,
/// so that the DSP kernel reads each block's taps in order.
fn blocked_depthwise(filter: &[i8], channels: usize) -> Vec<i8> {
    let taps = filter.len() / channels;
    (0..channels / 4)
        .flat_map(|block| {
            (0..taps).flat_map(move |t| (0..4).map(move |k| filter[t * channels + block * 4 + k]))
        })
        .collect()
}

/// Whether every output channel's requantisation can take the C kernels' short path
/// (`tf_requant.short_stages`): the activation range is all of int8, every shift divides (in
/// [−31, −1]) and `|bias| + 255 · Σ|w|`, which bounds `|accumulator + bias|` for any int8
/// input (each input minus its zero point lies in [−255, 255]), is below 2^30.
fn bounded(
    filter: &[i8],
    layout: FilterLayout,
    biases: &[i32],
    multipliers: &[QuantizedMultiplier],
    clamp: Clamp,
) -> bool {
    let channels = multipliers.len();
    let full_range = clamp.min == -128 && clamp.max == 127;
    if channels == 0 || !full_range || !multipliers.iter().all(|m| (-31..=-1).contains(&m.shift)) {
        return false;
    }
    let mut sums = vec![0i64; channels];
    for (i, &w) in filter.iter().enumerate() {
        let channel = match layout {
            FilterLayout::ChannelRows { .. } => i / (filter.len() / channels).max(1),
            FilterLayout::ChannelsInner { .. } => i % channels,
        };
        sums[channel.min(channels - 1)] += i64::from(w).abs();
    }
    sums.iter()
        .zip(biases)
        .all(|(&sum, &bias)| i64::from(bias).abs() + 255 * sum < 1 << 30)
}

/// Emits a layer's filter, bias, multipliers and requantisation; returns the names of the
/// filter, the bias and the requantisation. `dsp_kernel`: whether the DSP build runs the layer
/// on a DSP kernel, which takes the short requantisation where it is exact; such a layer's
/// DSP build then carries the short stages instead of the multipliers.
#[allow(clippy::too_many_arguments)]
fn layer(
    program: &Program,
    prefix: &str,
    input: &TensorInfo,
    out: &TensorInfo,
    c: &Constants,
    layout: FilterLayout,
    dsp_kernel: bool,
    statics: &mut String,
) -> (String, String, String) {
    let filter = c.filter.of(&program.weights).unwrap_or(&[]);
    let bias = c.bias.of(&program.biases).unwrap_or(&[]);
    // The kernels take one bias and one multiplier per output channel (no per-output tests):
    // zeros for a layer without bias, a shared multiplier repeated.
    let channels = out.shape.c;
    let filter_name = format!("{prefix}_filter");
    let row = filter.len() / channels.max(1);
    let dsp_filter = match layout {
        FilterLayout::ChannelsInner {
            blocked_for_dsp: true,
        } => Some(blocked_depthwise(filter, channels)),
        FilterLayout::ChannelRows {
            dsp_kernel_rows: Some(kernel_rows),
        } if !(row / kernel_rows).is_multiple_of(4) => {
            Some(dsp_conv_rows(filter, row, kernel_rows))
        }
        _ => None,
    };
    let mut portable_filter = String::new();
    emit_array(&mut portable_filter, "int8_t", &filter_name, filter.iter());
    match dsp_filter {
        Some(dsp_filter) => {
            let mut dsp = String::new();
            emit_array(&mut dsp, "int8_t", &filter_name, dsp_filter.iter());
            emit_per_build(statics, &dsp, &portable_filter);
        }
        None => statics.push_str(&portable_filter),
    }
    let biases: Vec<i32> = (0..channels)
        .map(|o| bias.get(o).copied().unwrap_or(0))
        .collect();
    emit_array(statics, "int32_t", &format!("{prefix}_bias"), biases.iter());
    let per_channel = per_channel_multipliers(program, c, channels);
    let general = general_requant(prefix, input, out, c, &per_channel);
    if dsp_kernel && bounded(filter, layout, &biases, &per_channel, c.clamp) {
        let stages = format!("{prefix}_short_stages");
        let values = per_channel
            .iter()
            .map(|m| format!("{{{}, {}}}", m.multiplier, -m.shift));
        let mut dsp = String::new();
        emit_array(&mut dsp, "tf_short_stage", &stages, values);
        dsp.push_str(&requant_struct(prefix, input, out, c, "NULL", &stages));
        emit_per_build(statics, &dsp, &general);
    } else {
        statics.push_str(&general);
    }
    statics.push('\n');
    (
        format!("{prefix}_filter"),
        format!("{prefix}_bias"),
        format!("{prefix}_q"),
    )
}

/// One multiplier per output channel: the layer's own, or its single one repeated.
fn per_channel_multipliers(
    program: &Program,
    c: &Constants,
    channels: usize,
) -> Vec<QuantizedMultiplier> {
    let multipliers = c.multipliers.of(&program.multipliers).unwrap_or(&[]);
    (0..channels)
        .map(|o| match multipliers {
            [one] => *one,
            many => many[o],
        })
        .collect()
}

/// A layer's `tf_requant` named `{prefix}_q`, pointing at `multipliers` and `stages`.
fn requant_struct(
    prefix: &str,
    input: &TensorInfo,
    out: &TensorInfo,
    c: &Constants,
    multipliers: &str,
    stages: &str,
) -> String {
    let Clamp { min, max } = c.clamp;
    format!(
        "static const tf_requant {prefix}_q = {{{}, {}, {multipliers}, {min}, {max}, {stages}}};\n",
        input.zero_point, out.zero_point
    )
}

/// The general requantisation of a layer: its multipliers and a `tf_requant` without short
/// stages.
fn general_requant(
    prefix: &str,
    input: &TensorInfo,
    out: &TensorInfo,
    c: &Constants,
    per_channel: &[QuantizedMultiplier],
) -> String {
    let multipliers = format!("{prefix}_multipliers");
    let mut general = String::new();
    emit_array(
        &mut general,
        "tf_multiplier",
        &multipliers,
        per_channel.iter().map(|&m| multiplier(m)),
    );
    general.push_str(&requant_struct(prefix, input, out, c, &multipliers, "NULL"));
    general
}

/// A depthwise layer's bias with the input zero point's share folded in, per channel:
/// `bias[c] − z_in · Σ_taps w[t][c]` in wrapping int32, which equals the kernel's sum with the
/// offset for pixels whose taps are all in bounds (filter `[kh · kw][channels]`).
fn folded_bias(program: &Program, c: &Constants, zero_point: i32, channels: usize) -> Vec<i32> {
    let filter = c.filter.of(&program.weights).unwrap_or(&[]);
    let bias = c.bias.of(&program.biases).unwrap_or(&[]);
    (0..channels)
        .map(|ch| {
            let sum: i32 = filter
                .iter()
                .skip(ch)
                .step_by(channels)
                .map(|&w| i32::from(w))
                .sum();
            let b = bias.get(ch).copied().unwrap_or(0);
            b.wrapping_sub(zero_point.wrapping_mul(sum))
        })
        .collect()
}

/// `static const TYPE NAME[] = {...};`, sixteen values a line.
fn emit_array<T: std::fmt::Display>(
    out: &mut String,
    ty: &str,
    name: &str,
    values: impl Iterator<Item = T>,
) {
    let _ = write!(out, "static const {ty} {name}[] = {{");
    for (i, v) in values.enumerate() {
        let sep = if i % 16 == 0 { "\n    " } else { " " };
        let _ = write!(out, "{sep}{v},");
    }
    out.push_str("\n};\n\n");
}

fn emit_window(out: &mut String, prefix: &str, w: &Window) {
    let _ = writeln!(
        out,
        "static const tf_window {prefix}_window = {{{}, {}, {}, {}, {}, {}, {}, {}}};\n",
        w.kh, w.kw, w.stride_h, w.stride_w, w.dilation_h, w.dilation_w, w.pad_top, w.pad_left
    );
}

fn shape(s: Shape) -> String {
    format!("(tf_shape){{{}, {}, {}}}", s.h, s.w, s.c)
}

fn multiplier(m: QuantizedMultiplier) -> String {
    format!("{{{}, {}}}", m.multiplier, m.shift)
}

/// The arena offsets and sizes of the model's inputs and outputs, and their accessors.
fn io_tables(program: &Program) -> String {
    let list = |ids: &[u32], f: &dyn Fn(&TensorInfo) -> usize| {
        ids.iter()
            .map(|&t| f(&program.tensors[t as usize]).to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let outputs = interface_outputs(program);
    let mut s = String::new();
    match program.routing().map(|r| r.chooser) {
        Some(Chooser::Scores) => {
            let _ = writeln!(
                s,
                "/* The branch the last inference ran. */\nstatic int32_t route;\nstatic const int32_t branch_offsets[] = {{{}}};",
                list(&program.outputs[1..], &|t| t.offset)
            );
        }
        Some(Chooser::Caller) => {
            let _ = writeln!(
                s,
                "/* The route tinyfit_invoke() runs, set by tinyfit_set_route() (0 at start). */\nstatic int32_t route;\nstatic const int32_t branch_offsets[] = {{{}}};",
                list(&program.outputs, &|t| t.offset)
            );
        }
        None => {}
    }
    for (kind, ids) in [("input", &program.inputs), ("output", &outputs)] {
        let _ = writeln!(
            s,
            "static const int32_t {kind}_offsets[] = {{{}}};",
            list(ids, &|t| t.offset)
        );
        let _ = writeln!(
            s,
            "static const int32_t {kind}_bytes[] = {{{}}};",
            list(ids, &|t| t.shape.len())
        );
    }
    s.push_str(
        "
int8_t *tinyfit_input(int32_t i) {
    return i >= 0 && i < TINYFIT_INPUTS ? arena + input_offsets[i] : NULL;
}

const int8_t *tinyfit_output(int32_t i) {
#ifdef TINYFIT_BRANCHES
    if (i == 1) {
        return arena + branch_offsets[route];
    }
#endif
#ifdef TINYFIT_ROUTES
    if (i == 0) {
        return arena + branch_offsets[route];
    }
#endif
    return i >= 0 && i < TINYFIT_OUTPUTS ? arena + output_offsets[i] : NULL;
}

int32_t tinyfit_input_bytes(int32_t i) {
    return i >= 0 && i < TINYFIT_INPUTS ? input_bytes[i] : 0;
}

int32_t tinyfit_output_bytes(int32_t i) {
    return i >= 0 && i < TINYFIT_OUTPUTS ? output_bytes[i] : 0;
}
",
    );
    if program.routing().is_some() {
        s.push_str("\nint32_t tinyfit_route(void) {\n    return route;\n}\n");
    }
    if program
        .routing()
        .is_some_and(|r| r.chooser == Chooser::Caller)
    {
        s.push_str(
            "
int32_t tinyfit_set_route(int32_t r) {
    TINYFIT_MARK();
    if (r < 0 || r >= TINYFIT_ROUTES) {
        return -1;
    }
    route = r;
    return 0;
}
",
        );
    }
    s
}

/// `tinyfit_route_for_budget`: [`Policy::choose`] over the policy's table.
fn policy_c(policy: Option<&Policy>) -> String {
    let preferred = policy.map_or(&[][..], |p| &p.preferred[..]);
    if preferred.is_empty() {
        return "
int32_t tinyfit_route_for_budget(uint32_t latency_us, uint32_t sram_bytes) {
    (void)latency_us;
    (void)sram_bytes;
    return -1;
}
"
        .to_string();
    }
    let mut s = String::from(
        "
/* The run-time policy: routes from the most accurate, each with its estimated latency (us)
 * and the arena bytes it touches; the first that fits the budget runs. */
static const struct {
    int32_t route;
    uint32_t latency_us;
    uint32_t sram_bytes;
} policy[] = {
",
    );
    for r in preferred {
        let _ = writeln!(
            s,
            "    {{{}, {}u, {}u}}, /* accuracy {:.4} */",
            r.route, r.latency_us, r.sram_bytes, r.accuracy
        );
    }
    s.push_str(
        "};

int32_t tinyfit_route_for_budget(uint32_t latency_us, uint32_t sram_bytes) {
    for (size_t k = 0; k < sizeof policy / sizeof policy[0]; k++) {
        if (policy[k].latency_us <= latency_us && policy[k].sram_bytes <= sram_bytes) {
            return policy[k].route;
        }
    }
    return -1;
}
",
    );
    s
}

/// The outputs the package exposes: the program's, or for a program routed by its scores the
/// scores and the chosen branch's output (which `tinyfit_output(1)` finds through `route`;
/// branch 0 stands for its size), or for a switchable program the route's output
/// (`tinyfit_output(0)`; route 0 stands for its size).
fn interface_outputs(program: &Program) -> Vec<u32> {
    match program.routing().map(|r| r.chooser) {
        None => program.outputs.clone(),
        Some(Chooser::Scores) => program.outputs[..2].to_vec(),
        Some(Chooser::Caller) => program.outputs[..1].to_vec(),
    }
}

fn model_h(program: &Program, scratch_bytes: usize) -> String {
    let mut h = String::from(
        "/* Generated by tinyfit: the model's interface. Fill the inputs (int8, channels last),
 * call tinyfit_invoke(), read the outputs. Real value = scale * (q - zero_point). */
#ifndef TINYFIT_MODEL_H
#define TINYFIT_MODEL_H

#include <stddef.h>
#include <stdint.h>

",
    );
    let _ = writeln!(
        h,
        "#define TINYFIT_ARENA_BYTES {}",
        program.memory.arena_bytes.max(1)
    );
    let _ = writeln!(
        h,
        "/* Scratch of the DSP kernels (Cortex-M4/M7), in SRAM beside the arena. */\n#define TINYFIT_SCRATCH_BYTES {scratch_bytes}"
    );
    let _ = writeln!(h, "#define TINYFIT_INPUTS {}", program.inputs.len());
    let outputs = interface_outputs(program);
    let _ = writeln!(h, "#define TINYFIT_OUTPUTS {}\n", outputs.len());
    let chooser = program.routing().map(|r| r.chooser);
    let (scores, branches, branch) = match chooser {
        Some(Chooser::Scores) => {
            let _ = writeln!(
                h,
                "/* Routed: output 0 holds the routing scores, the first of the largest picks the\n * branch that runs; output 1 is that branch's output, quantised as TINYFIT_BRANCHk_*. */\n#define TINYFIT_BRANCHES {}\n",
                program.outputs.len() - 1
            );
            let (scores, branches) = program.outputs.split_at(1);
            (scores, branches, "BRANCH")
        }
        Some(Chooser::Caller) => {
            let _ = writeln!(
                h,
                "/* Switchable: tinyfit_set_route(k) picks the route the next tinyfit_invoke() runs\n * (route 0 at start; switching reloads nothing); output 0 is that route's output,\n * quantised as TINYFIT_ROUTEk_*. */\n#define TINYFIT_ROUTES {}\n",
                program.outputs.len()
            );
            (&[][..], &program.outputs[..], "ROUTE")
        }
        None => (&program.outputs[..], &[][..], "BRANCH"),
    };
    for (kind, ids) in [
        ("INPUT", &program.inputs[..]),
        ("OUTPUT", scores),
        (branch, branches),
    ] {
        for (i, &t) in ids.iter().enumerate() {
            let t = &program.tensors[t as usize];
            let _ = writeln!(
                h,
                "/* {kind} {i}: {}x{}x{} (HWC) */\n#define TINYFIT_{kind}{i}_SCALE {:e}f\n#define TINYFIT_{kind}{i}_ZERO_POINT {}",
                t.shape.h, t.shape.w, t.shape.c, t.scale, t.zero_point
            );
        }
    }
    h.push_str(
        "
/* Arena address of input i (NULL when out of range). */
int8_t *tinyfit_input(int32_t i);
/* Arena address of output i, valid after tinyfit_invoke() (NULL when out of range). */
const int8_t *tinyfit_output(int32_t i);
/* Bytes of input i and of output i. */
int32_t tinyfit_input_bytes(int32_t i);
int32_t tinyfit_output_bytes(int32_t i);
/* Runs the model on the inputs in the arena. */
void tinyfit_invoke(void);
",
    );
    match chooser {
        Some(Chooser::Scores) => h.push_str(
            "/* The branch the last tinyfit_invoke() ran. */\nint32_t tinyfit_route(void);\n",
        ),
        Some(Chooser::Caller) => h.push_str(
            "/* The route tinyfit_invoke() runs; tinyfit_set_route() sets it and returns 0, or -1\n * (and keeps the route) when r is no route. */\nint32_t tinyfit_route(void);\nint32_t tinyfit_set_route(int32_t r);\n/* The most accurate route whose estimated latency (us) and arena bytes fit the budget, or\n * -1 when none does. */\nint32_t tinyfit_route_for_budget(uint32_t latency_us, uint32_t sram_bytes);\n",
        ),
        None => {}
    }
    h.push_str("\n#endif\n");
    h
}

/// Bytes of scratch the DSP kernels need: the largest over the dense convolutions without
/// groups (an int8 receptive field and two int16 columns) and fully connected layers (the
/// widened input), as `TINYFIT_CONV_SCRATCH_BYTES` and `TINYFIT_FC_SCRATCH_BYTES` in
/// `tinyfit_kernels.h` size them.
fn dsp_scratch_bytes(program: &Program, compact: &[Option<CompactFilter>]) -> usize {
    program
        .operations
        .iter()
        .zip(compact)
        .filter(|(_, s)| s.is_none())
        .map(|(op, _)| match op.kernel {
            Kernel::Conv {
                window, groups: 1, ..
            } => {
                let input = op.inputs.of(&program.operands).and_then(|o| o.first());
                let c = input.map_or(0, |&t| program.tensors[t as usize].shape.c);
                let depth = window.kh * window.kw * c;
                5 * depth.div_ceil(4) * 4
            }
            Kernel::FullyConnected { .. } => {
                let input = op.inputs.of(&program.operands).and_then(|o| o.first());
                2 * input.map_or(0, |&t| program.tensors[t as usize].shape.len())
            }
            _ => 0,
        })
        .max()
        .unwrap_or(0)
}

/// A C identifier from a node name: letters, digits and underscores kept, the rest `_`.
fn c_identifier(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}
