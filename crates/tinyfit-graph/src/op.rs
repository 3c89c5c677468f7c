//! Layer kinds of the graph IR and their hyper-parameters.
//!
//! Every op is data (serde, tagged by `op`), so graph files read like PyTorch module lists:
//! `{"name": "c1", "op": "conv1d", "out_channels": 64, "kernel": 15, "padding": 1}`.
//! Shapes exclude the batch axis and are channels-first, as in PyTorch.

use serde::{Deserialize, Serialize};

/// One layer. The `op` tag in a graph file selects the variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// 1-D convolution over `[C, L]`.
    Conv1d(Conv),
    /// 2-D convolution over `[C, H, W]`.
    Conv2d(Conv),
    /// Batch normalisation over the channel axis (PyTorch `BatchNorm1d/2d`).
    BatchNorm(BatchNorm),
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// Passes its input through unchanged.
    Identity,
    /// 1-D max pooling.
    MaxPool1d(Pool),
    /// 2-D max pooling.
    MaxPool2d(Pool),
    /// 1-D average pooling (padding counted in the divisor, as PyTorch's default).
    AvgPool1d(Pool),
    /// 2-D average pooling (padding counted in the divisor, as PyTorch's default).
    AvgPool2d(Pool),
    /// Mean over every spatial axis: `[C, ...] -> [C]`.
    GlobalAvgPool,
    /// Flattens everything but the batch axis: `[...] -> [prod]`.
    Flatten,
    /// Fully connected layer on `[F]` features.
    Linear(Linear),
    /// Zeroes elements with probability `p` during training; identity at inference.
    Dropout(Dropout),
    /// Concatenates its inputs along `axis` (0 = channels).
    Concat(Concat),
    /// Element-wise sum of inputs of equal shape.
    Add,
    /// Softmax over the channel axis (PyTorch `nn.Softmax(dim=1)`).
    Softmax,
    /// Same values in a new per-sample shape (row-major, channels first, as `torch.reshape`).
    Reshape(Reshape),
    /// Zero padding of the spatial axes (PyTorch `F.pad` / `nn.ZeroPad2d`).
    Pad(Pad),
    /// Mean over every spatial axis, like `global_avg_pool`, written as TFLite's `MEAN` when
    /// quantised (its integer arithmetic differs from average pooling's).
    Mean(Mean),
    /// ShuffleNet's channel shuffle: the channels, seen as a `[groups, C / groups]` grid, are
    /// read out column by column, so that each group of the next grouped convolution sees
    /// channels from every group of the previous one.
    ChannelShuffle(ChannelShuffle),
}

impl Op {
    /// The op's name as written in graph files (`conv1d`, `batch_norm`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Conv1d(_) => "conv1d",
            Op::Conv2d(_) => "conv2d",
            Op::BatchNorm(_) => "batch_norm",
            Op::Relu => "relu",
            Op::Relu6 => "relu6",
            Op::Identity => "identity",
            Op::MaxPool1d(_) => "max_pool1d",
            Op::MaxPool2d(_) => "max_pool2d",
            Op::AvgPool1d(_) => "avg_pool1d",
            Op::AvgPool2d(_) => "avg_pool2d",
            Op::GlobalAvgPool => "global_avg_pool",
            Op::Flatten => "flatten",
            Op::Linear(_) => "linear",
            Op::Dropout(_) => "dropout",
            Op::Concat(_) => "concat",
            Op::Add => "add",
            Op::Softmax => "softmax",
            Op::Reshape(_) => "reshape",
            Op::Pad(_) => "pad",
            Op::Mean(_) => "mean",
            Op::ChannelShuffle(_) => "channel_shuffle",
        }
    }

    /// How many inputs the op takes: `None` means two or more (concat, add).
    pub fn arity(&self) -> Option<usize> {
        match self {
            Op::Concat(_) | Op::Add => None,
            _ => Some(1),
        }
    }
}

/// Convolution hyper-parameters (1-D or 2-D by the op that holds them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conv {
    /// Output channels.
    pub out_channels: usize,
    /// Kernel size: one number for every spatial axis, or one per axis.
    pub kernel: Extent,
    /// Stride (default 1).
    #[serde(default = "Extent::one")]
    pub stride: Extent,
    /// Padding (default `"valid"`, i.e. none).
    #[serde(default)]
    pub padding: Padding,
    /// Dilation (default 1).
    #[serde(default = "Extent::one")]
    pub dilation: Extent,
    /// Channel groups; `groups == in_channels` makes a depthwise convolution.
    #[serde(default = "one")]
    pub groups: usize,
    /// Whether the layer adds a bias (default true).
    #[serde(default = "yes")]
    pub bias: bool,
}

/// Pooling hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    /// Window size.
    pub kernel: Extent,
    /// Stride; defaults to the window size, as in PyTorch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stride: Option<Extent>,
    /// Padding (default none).
    #[serde(default)]
    pub padding: Padding,
    /// Whether average pooling divides by the whole window, padding included (PyTorch's
    /// default, `true`) or by the taps inside the input (TFLite's rule, `false`).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub count_include_pad: bool,
}

/// Batch normalisation hyper-parameters (PyTorch defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchNorm {
    /// Added to the variance before the square root (default 1e-5).
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// Weight of the new batch statistic in the running averages (default 0.1).
    #[serde(default = "default_momentum")]
    pub momentum: f64,
}

impl Default for BatchNorm {
    fn default() -> Self {
        BatchNorm {
            eps: default_eps(),
            momentum: default_momentum(),
        }
    }
}

/// Fully connected layer hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Linear {
    /// Output features.
    pub out_features: usize,
    /// Whether the layer adds a bias (default true).
    #[serde(default = "yes")]
    pub bias: bool,
}

/// Reshape target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reshape {
    /// Per-sample shape (no batch axis) with the input's element count.
    pub shape: Vec<usize>,
}

/// Zero padding: `[before, after]` elements for each spatial axis, in axis order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pad {
    /// One `[before, after]` pair per spatial axis.
    pub padding: Vec<[usize; 2]>,
}

/// Spatial mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Mean {
    /// Keep the spatial axes with size 1 (`[C, 1, 1]`) instead of dropping them (`[C]`).
    #[serde(default)]
    pub keep_dims: bool,
}

/// Channel shuffle hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelShuffle {
    /// Groups the channels are split into; must divide the channel count.
    pub groups: usize,
}

impl ChannelShuffle {
    /// The input channel that output channel `c` of a `channels`-channel shuffle reads:
    /// output `j · groups + g` takes input `g · (channels / groups) + j`.
    pub fn source(&self, c: usize, channels: usize) -> usize {
        let per_group = channels / self.groups;
        (c % self.groups) * per_group + c / self.groups
    }
}

/// Dropout hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dropout {
    /// Probability of zeroing an element, in `[0, 1)`.
    pub p: f64,
}

/// Concatenation hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Concat {
    /// Axis to join along, not counting the batch axis (default 0 = channels).
    #[serde(default)]
    pub axis: usize,
}

/// A size given once for every spatial axis (`3`) or once per axis (`[3, 5]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Extent {
    /// The same value on every spatial axis.
    Uniform(usize),
    /// One value per spatial axis.
    PerAxis(Vec<usize>),
}

impl Extent {
    fn one() -> Self {
        Extent::Uniform(1)
    }

    /// The value for each of `axes` spatial axes, or `None` if a per-axis list has another length.
    pub fn expand(&self, axes: usize) -> Option<Vec<usize>> {
        match self {
            Extent::Uniform(v) => Some(vec![*v; axes]),
            Extent::PerAxis(v) if v.len() == axes => Some(v.clone()),
            Extent::PerAxis(_) => None,
        }
    }
}

/// Padding of the spatial axes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Padding {
    /// `"valid"` (none) or `"same"` (TensorFlow's rule, extra padding at the end).
    Mode(PadMode),
    /// Symmetric explicit padding, per axis or for all.
    Explicit(Extent),
}

impl Default for Padding {
    fn default() -> Self {
        Padding::Mode(PadMode::Valid)
    }
}

/// Named padding modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PadMode {
    /// No padding.
    Valid,
    /// Output length `ceil(input / stride)`; odd totals put the extra element at the end.
    Same,
}

fn one() -> usize {
    1
}

fn yes() -> bool {
    true
}

fn is_true(v: &bool) -> bool {
    *v
}

fn default_eps() -> f64 {
    1e-5
}

fn default_momentum() -> f64 {
    0.1
}
