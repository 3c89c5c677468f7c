//! Shape inference and cost counting for a single op.
//!
//! MACs follow the fvcore/THOP convention (one per multiply-accumulate of convolutions and
//! linear layers; normalisation, activations and pooling count zero). Parameters count what
//! PyTorch's `parameters()` yields: weights, biases and batch-norm γ/β, not running statistics.

use crate::op::{Conv, Extent, Op, PadMode, Padding, Pool};

/// What shape inference learns about one node.
#[derive(Debug, Clone, PartialEq)]
pub struct OpShape {
    /// Output shape (no batch axis).
    pub output: Vec<usize>,
    /// Trainable parameters and buffers, by name, with their shapes.
    pub tensors: Vec<ParamShape>,
    /// Multiply-accumulates for one sample.
    pub macs: u64,
}

/// A named weight tensor of a node.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamShape {
    /// Name within the node (`weight`, `bias`, `running_mean`, ...).
    pub name: &'static str,
    /// Tensor shape.
    pub shape: Vec<usize>,
    /// Whether training updates it by gradient (false for running statistics).
    pub trainable: bool,
}

impl OpShape {
    /// Number of trainable parameters.
    pub fn params(&self) -> u64 {
        self.tensors
            .iter()
            .filter(|t| t.trainable)
            .map(|t| numel(&t.shape))
            .sum()
    }
}

/// Product of a shape's dimensions.
pub fn numel(shape: &[usize]) -> u64 {
    shape.iter().map(|&d| d as u64).product()
}

/// Infers the output shape, weights and MACs of `op` applied to `inputs`.
///
/// The error is a sentence about the shapes; the caller adds the node's name.
pub fn infer(op: &Op, inputs: &[&[usize]]) -> Result<OpShape, String> {
    match op.arity() {
        Some(n) if inputs.len() != n => {
            return Err(format!("takes {n} input(s), got {}", inputs.len()));
        }
        None if inputs.len() < 2 => {
            return Err(format!("takes two or more inputs, got {}", inputs.len()));
        }
        _ => {}
    }
    let x = inputs[0];
    let plain = |output: Vec<usize>| OpShape {
        output,
        tensors: Vec::new(),
        macs: 0,
    };
    match op {
        Op::Conv1d(c) => conv(c, x, 1),
        Op::Conv2d(c) => conv(c, x, 2),
        Op::MaxPool1d(p) | Op::AvgPool1d(p) => pool(p, x, 1).map(plain),
        Op::MaxPool2d(p) | Op::AvgPool2d(p) => pool(p, x, 2).map(plain),
        Op::BatchNorm(_) => {
            expect_rank_at_least(x, 1)?;
            let c = vec![x[0]];
            let t = |name, trainable| ParamShape {
                name,
                shape: c.clone(),
                trainable,
            };
            Ok(OpShape {
                output: x.to_vec(),
                tensors: vec![
                    t("weight", true),
                    t("bias", true),
                    t("running_mean", false),
                    t("running_var", false),
                ],
                macs: 0,
            })
        }
        Op::Relu | Op::Relu6 | Op::Identity | Op::Softmax => Ok(plain(x.to_vec())),
        Op::Dropout(d) => {
            if !(0.0..1.0).contains(&d.p) {
                return Err(format!("p must be in [0, 1), got {}", d.p));
            }
            Ok(plain(x.to_vec()))
        }
        Op::GlobalAvgPool => {
            if x.len() < 2 {
                return Err(format!(
                    "expects [channels, spatial...], got {x:?} (no spatial axis to average)"
                ));
            }
            Ok(plain(vec![x[0]]))
        }
        Op::Mean(m) => {
            if x.len() < 2 {
                return Err(format!(
                    "expects [channels, spatial...], got {x:?} (no spatial axis to average)"
                ));
            }
            let mut out = vec![x[0]];
            if m.keep_dims {
                out.extend(std::iter::repeat_n(1, x.len() - 1));
            }
            Ok(plain(out))
        }
        Op::Flatten => Ok(plain(vec![numel(x) as usize])),
        Op::Pad(p) => {
            let spatial = x.len().saturating_sub(1);
            if spatial == 0 || p.padding.len() != spatial {
                return Err(format!(
                    "pads {} spatial axes of {x:?} ({spatial} spatial axes after the channels)",
                    p.padding.len()
                ));
            }
            let mut out = x.to_vec();
            for (d, [before, after]) in out[1..].iter_mut().zip(&p.padding) {
                *d += before + after;
            }
            Ok(plain(out))
        }
        Op::ChannelShuffle(s) => {
            expect_rank_at_least(x, 2)?;
            if s.groups == 0 || !x[0].is_multiple_of(s.groups) {
                return Err(format!(
                    "{} groups do not divide the {} channels of {x:?}",
                    s.groups, x[0]
                ));
            }
            Ok(plain(x.to_vec()))
        }
        Op::Reshape(r) => {
            if r.shape.is_empty() || r.shape.len() > 3 || numel(&r.shape) != numel(x) {
                return Err(format!(
                    "cannot reshape {x:?} to {:?} (1 to 3 axes, same element count)",
                    r.shape
                ));
            }
            Ok(plain(r.shape.clone()))
        }
        Op::Linear(l) => {
            if x.len() != 1 {
                return Err(format!(
                    "expects a feature vector [features], got {x:?}; add a flatten or global_avg_pool before it"
                ));
            }
            let mut tensors = vec![ParamShape {
                name: "weight",
                shape: vec![l.out_features, x[0]],
                trainable: true,
            }];
            if l.bias {
                tensors.push(ParamShape {
                    name: "bias",
                    shape: vec![l.out_features],
                    trainable: true,
                });
            }
            Ok(OpShape {
                output: vec![l.out_features],
                tensors,
                macs: (x[0] * l.out_features) as u64,
            })
        }
        Op::Concat(c) => {
            if c.axis >= x.len() {
                return Err(format!("axis {} is out of range for input {x:?}", c.axis));
            }
            let mut output = x.to_vec();
            for other in &inputs[1..] {
                let same_elsewhere =
                    other.len() == x.len() && (0..x.len()).all(|i| i == c.axis || other[i] == x[i]);
                if !same_elsewhere {
                    return Err(format!(
                        "inputs {x:?} and {other:?} differ on an axis other than {}",
                        c.axis
                    ));
                }
                output[c.axis] += other[c.axis];
            }
            Ok(plain(output))
        }
        Op::Add => {
            if let Some(other) = inputs.iter().find(|s| **s != x) {
                return Err(format!(
                    "inputs must have equal shapes, got {x:?} and {other:?}"
                ));
            }
            Ok(plain(x.to_vec()))
        }
    }
}

fn expect_rank_at_least(x: &[usize], rank: usize) -> Result<(), String> {
    if x.len() < rank {
        return Err(format!("expects at least {rank} axes, got {x:?}"));
    }
    Ok(())
}

/// Splits `[C, spatial...]` after checking it has exactly `axes` spatial axes.
fn channels_and_spatial(x: &[usize], axes: usize) -> Result<(usize, &[usize]), String> {
    if x.len() != axes + 1 {
        let want = if axes == 1 {
            "[channels, length]"
        } else {
            "[channels, height, width]"
        };
        return Err(format!("expects {want}, got {x:?}"));
    }
    Ok((x[0], &x[1..]))
}

fn expand(e: &Extent, axes: usize, what: &str) -> Result<Vec<usize>, String> {
    let v = e
        .expand(axes)
        .ok_or_else(|| format!("{what} {e:?} does not have {axes} value(s)"))?;
    if what != "padding" && v.contains(&0) {
        return Err(format!("{what} must be positive, got {v:?}"));
    }
    Ok(v)
}

/// Resolves padding to `(before, after)` per spatial axis for a window of `span` elements
/// (the dilated kernel) moving by `stride`.
pub fn resolve_padding(
    padding: &Padding,
    input: &[usize],
    span: &[usize],
    stride: &[usize],
) -> Result<Vec<(usize, usize)>, String> {
    let axes = input.len();
    match padding {
        Padding::Mode(PadMode::Valid) => Ok(vec![(0, 0); axes]),
        Padding::Mode(PadMode::Same) => Ok((0..axes)
            .map(|i| {
                let out = input[i].div_ceil(stride[i]);
                let total = ((out - 1) * stride[i] + span[i]).saturating_sub(input[i]);
                (total / 2, total - total / 2)
            })
            .collect()),
        Padding::Explicit(e) => Ok(expand(e, axes, "padding")?
            .into_iter()
            .map(|p| (p, p))
            .collect()),
    }
}

/// Output length of a sliding window, or an error when the window does not fit.
fn window_output(
    input: &[usize],
    span: &[usize],
    stride: &[usize],
    pad: &[(usize, usize)],
) -> Result<Vec<usize>, String> {
    (0..input.len())
        .map(|i| {
            let padded = input[i] + pad[i].0 + pad[i].1;
            if padded < span[i] {
                return Err(format!(
                    "window of {} does not fit the padded input length {padded} on spatial axis {i} (input {input:?})",
                    span[i]
                ));
            }
            Ok((padded - span[i]) / stride[i] + 1)
        })
        .collect()
}

fn conv(c: &Conv, x: &[usize], axes: usize) -> Result<OpShape, String> {
    let (c_in, spatial) = channels_and_spatial(x, axes)?;
    let kernel = expand(&c.kernel, axes, "kernel")?;
    let stride = expand(&c.stride, axes, "stride")?;
    let dilation = expand(&c.dilation, axes, "dilation")?;
    if c.groups == 0 || !c_in.is_multiple_of(c.groups) || !c.out_channels.is_multiple_of(c.groups) {
        return Err(format!(
            "groups = {} must divide both the input channels ({c_in}) and out_channels ({})",
            c.groups, c.out_channels
        ));
    }
    if c.out_channels == 0 {
        return Err("out_channels must be positive".into());
    }
    let span: Vec<usize> = (0..axes)
        .map(|i| (kernel[i] - 1) * dilation[i] + 1)
        .collect();
    let pad = resolve_padding(&c.padding, spatial, &span, &stride)?;
    let out_spatial = window_output(spatial, &span, &stride, &pad)?;
    let mut weight = vec![c.out_channels, c_in / c.groups];
    weight.extend(&kernel);
    let mut tensors = vec![ParamShape {
        name: "weight",
        shape: weight,
        trainable: true,
    }];
    if c.bias {
        tensors.push(ParamShape {
            name: "bias",
            shape: vec![c.out_channels],
            trainable: true,
        });
    }
    let mut output = vec![c.out_channels];
    output.extend(&out_spatial);
    let macs = numel(&output) * (c_in / c.groups) as u64 * numel(&kernel);
    Ok(OpShape {
        output,
        tensors,
        macs,
    })
}

fn pool(p: &Pool, x: &[usize], axes: usize) -> Result<Vec<usize>, String> {
    let (c, spatial) = channels_and_spatial(x, axes)?;
    let kernel = expand(&p.kernel, axes, "kernel")?;
    let stride = match &p.stride {
        Some(s) => expand(s, axes, "stride")?,
        None => kernel.clone(),
    };
    let pad = resolve_padding(&p.padding, spatial, &kernel, &stride)?;
    if pad
        .iter()
        .zip(&kernel)
        .any(|(&(b, a), &k)| b.max(a) > k / 2)
    {
        return Err(format!(
            "padding {pad:?} exceeds half the kernel {kernel:?} (PyTorch's limit)"
        ));
    }
    let mut output = vec![c];
    output.extend(window_output(spatial, &kernel, &stride, &pad)?);
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::{Conv, Linear};

    fn conv1d(out: usize, k: usize, pad: Padding) -> Op {
        Op::Conv1d(Conv {
            out_channels: out,
            kernel: Extent::Uniform(k),
            stride: Extent::Uniform(1),
            padding: pad,
            dilation: Extent::Uniform(1),
            groups: 1,
            bias: true,
        })
    }

    #[test]
    fn conv1d_counts_match_pytorch() {
        let s = infer(
            &conv1d(64, 15, Padding::Explicit(Extent::Uniform(1))),
            &[&[3, 151]],
        )
        .unwrap();
        assert_eq!(s.output, vec![64, 139]);
        assert_eq!(s.params(), 64 * 3 * 15 + 64);
        assert_eq!(s.macs, 400_320);
    }

    #[test]
    fn same_padding_follows_tensorflow() {
        // 49x10 input, 10x4 kernel, stride 2: TF gives 25x5 with pads (4,5) and (1,1).
        let pad =
            resolve_padding(&Padding::Mode(PadMode::Same), &[49, 10], &[10, 4], &[2, 2]).unwrap();
        assert_eq!(pad, vec![(4, 5), (1, 1)]);
    }

    #[test]
    fn depthwise_conv2d_macs() {
        let op = Op::Conv2d(Conv {
            out_channels: 64,
            kernel: Extent::Uniform(3),
            stride: Extent::Uniform(1),
            padding: Padding::Mode(PadMode::Same),
            dilation: Extent::Uniform(1),
            groups: 64,
            bias: true,
        });
        let s = infer(&op, &[&[64, 25, 5]]).unwrap();
        assert_eq!(s.output, vec![64, 25, 5]);
        assert_eq!(s.macs, 64 * 25 * 5 * 9);
        assert_eq!(s.params(), 64 * 9 + 64);
    }

    #[test]
    fn linear_rejects_unflattened_input() {
        let op = Op::Linear(Linear {
            out_features: 4,
            bias: true,
        });
        let err = infer(&op, &[&[8, 10]]).unwrap_err();
        assert!(err.contains("flatten"), "{err}");
    }

    #[test]
    fn kernel_longer_than_input_is_an_error() {
        let err = infer(&conv1d(4, 20, Padding::default()), &[&[3, 10]]).unwrap_err();
        assert!(err.contains("does not fit"), "{err}");
    }

    #[test]
    fn concat_sums_the_axis() {
        let op = Op::Concat(Default::default());
        let s = infer(&op, &[&[8, 68], &[8, 68]]).unwrap();
        assert_eq!(s.output, vec![16, 68]);
        assert!(infer(&op, &[&[8, 68], &[8, 67]]).is_err());
    }
}
