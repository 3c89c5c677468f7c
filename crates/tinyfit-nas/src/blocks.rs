//! The block families as graph builders, 1-D and 2-D.
//!
//! A [`NetBuilder`] appends layers to a graph one block at a time and tracks the value the next
//! block reads and its channels, so that a network is a short list of calls:
//!
//! ```
//! use tinyfit_nas::blocks::NetBuilder;
//! let mut net = NetBuilder::new("example", vec![6, 128]).unwrap();
//! net.conv_bn_relu("stem", 16, 5, 2);
//! net.inverted_residual("b1", 24, 3, 2, 4);
//! net.fire("b2", 32, 8, 3);
//! let graph = net.classifier(6);
//! assert_eq!(graph.analyze().unwrap().nodes.last().unwrap().shape.output, vec![6]);
//! ```
//!
//! Convolutions use symmetric padding of `kernel / 2` (PyTorch's convention; odd kernels keep
//! the length at stride 1 and give `⌈L / 2⌉` at stride 2), carry no bias when a batch norm
//! follows (it is folded into them for int8), and every block ends in a batch norm, so that
//! post-training quantisation folds each into its convolution.

use tinyfit_graph::{
    BatchNorm, ChannelShuffle, Concat, Conv, Extent, Graph, Input, Linear, Node, Op, Padding, Pool,
};

/// Builds a graph block by block.
#[derive(Debug, Clone)]
pub struct NetBuilder {
    graph: Graph,
    /// The value the next block reads.
    last: String,
    /// Its channels.
    channels: usize,
    /// Spatial axes of the input: 1 for `[C, L]`, 2 for `[C, H, W]`.
    spatial: usize,
}

/// What a block ends with after its last batch norm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Activation {
    Relu,
    Relu6,
    /// A linear bottleneck.
    None,
}

impl NetBuilder {
    /// A network reading one input of `shape` (channels first, one or two spatial axes).
    pub fn new(name: &str, shape: Vec<usize>) -> Result<Self, String> {
        if !(2..=3).contains(&shape.len()) || shape.contains(&0) {
            return Err(format!(
                "an input of shape {shape:?}; expected [channels, length] or [channels, height, width]"
            ));
        }
        Ok(NetBuilder {
            channels: shape[0],
            spatial: shape.len() - 1,
            last: "input".into(),
            graph: Graph {
                name: name.into(),
                inputs: vec![Input {
                    name: "input".into(),
                    shape,
                }],
                nodes: Vec::new(),
                outputs: Vec::new(),
            },
        })
    }

    /// Channels of the value the next block reads.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// A plain stage of a hand-designed CNN: convolution, batch norm, ReLU.
    pub fn conv_bn_relu(&mut self, name: &str, out: usize, kernel: usize, stride: usize) {
        let x = self.last.clone();
        self.conv_bn(
            name,
            &x,
            out,
            Extent::Uniform(kernel),
            stride,
            1,
            Activation::Relu,
        );
    }

    /// [`conv_bn_relu`](Self::conv_bn_relu) with a kernel per spatial axis (a DS-CNN's 10×4
    /// stem on MFCC frames).
    pub fn conv_bn_relu_shaped(&mut self, name: &str, out: usize, kernel: &[usize], stride: usize) {
        let x = self.last.clone();
        let kernel = Extent::PerAxis(kernel.to_vec());
        self.conv_bn(name, &x, out, kernel, stride, 1, Activation::Relu);
    }

    /// MobileNet v1's depthwise-separable block: depthwise `kernel` convolution (with the
    /// stride), batch norm, ReLU, then a pointwise convolution to `out`, batch norm, ReLU.
    pub fn separable(&mut self, name: &str, out: usize, kernel: usize, stride: usize) {
        let (x, c) = (self.last.clone(), self.channels);
        let k = Extent::Uniform(kernel);
        let dw = self.conv_bn(&format!("{name}_dw"), &x, c, k, stride, c, Activation::Relu);
        self.conv_bn(
            &format!("{name}_pw"),
            &dw,
            out,
            Extent::Uniform(1),
            1,
            1,
            Activation::Relu,
        );
    }

    /// MobileNet v2's inverted residual with a linear bottleneck: pointwise expansion by
    /// `expansion` (skipped at 1), batch norm, ReLU6; depthwise `kernel` convolution with the
    /// stride, batch norm, ReLU6; pointwise projection to `out`, batch norm, no activation; the
    /// input added back when the stride is 1 and the channels are kept.
    pub fn inverted_residual(
        &mut self,
        name: &str,
        out: usize,
        kernel: usize,
        stride: usize,
        expansion: usize,
    ) {
        let (x, c) = (self.last.clone(), self.channels);
        let hidden = c * expansion.max(1);
        let expanded = if expansion > 1 {
            let one = Extent::Uniform(1);
            self.conv_bn(
                &format!("{name}_expand"),
                &x,
                hidden,
                one,
                1,
                1,
                Activation::Relu6,
            )
        } else {
            x.clone()
        };
        let k = Extent::Uniform(kernel);
        let act = Activation::Relu6;
        let dw = self.conv_bn(
            &format!("{name}_dw"),
            &expanded,
            hidden,
            k,
            stride,
            hidden,
            act,
        );
        let one = Extent::Uniform(1);
        let projected = self.conv_bn(
            &format!("{name}_project"),
            &dw,
            out,
            one,
            1,
            1,
            Activation::None,
        );
        if stride == 1 && c == out {
            self.push(&format!("{name}_add"), Op::Add, &[&x, &projected]);
        }
    }

    /// SqueezeNet's fire module: a 1×1 squeeze to `squeeze` channels (batch norm, ReLU), then
    /// two expand branches — 1×1 and `kernel`-wide, `out / 2` channels each (the 1×1 takes the
    /// odd one) — each with batch norm and ReLU, concatenated. SqueezeNet downsamples between
    /// fire modules with max pooling ([`max_pool`](Self::max_pool)), not inside them.
    pub fn fire(&mut self, name: &str, out: usize, squeeze: usize, kernel: usize) {
        let x = self.last.clone();
        let one = Extent::Uniform(1);
        let relu = Activation::Relu;
        let s = self.conv_bn(
            &format!("{name}_squeeze"),
            &x,
            squeeze,
            one.clone(),
            1,
            1,
            relu,
        );
        let wide = out / 2;
        let e1 = self.conv_bn(&format!("{name}_expand1"), &s, out - wide, one, 1, 1, relu);
        let k = Extent::Uniform(kernel);
        let ek = self.conv_bn(&format!("{name}_expand{kernel}"), &s, wide, k, 1, 1, relu);
        self.push(
            &format!("{name}_cat"),
            Op::Concat(Concat::default()),
            &[&e1, &ek],
        );
        self.channels = out;
    }

    /// ShuffleNet v1's unit: a grouped 1×1 convolution to a `bottleneck` (batch norm, ReLU), a
    /// channel shuffle, a depthwise `kernel` convolution with the stride (batch norm), a grouped
    /// 1×1 convolution (batch norm); then the input added back (stride 1, channels kept) or, at
    /// stride 2, average-pooled and concatenated in front (the convolution branch then makes
    /// the `out − in` new channels); a ReLU last. `groups` must divide the channels each grouped
    /// convolution reads and writes; [`crate::Stage::resolved`] rounds widths so that it does.
    pub fn shuffle_unit(
        &mut self,
        name: &str,
        out: usize,
        kernel: usize,
        stride: usize,
        groups: usize,
        bottleneck: usize,
    ) {
        let (x, c) = (self.last.clone(), self.channels);
        let concat = stride > 1 && out > c && (out - c).is_multiple_of(groups);
        let branch_out = if concat { out - c } else { out };
        // ShuffleNet leaves the first grouped convolution dense where its input is too narrow
        // to split (the stem's output); here: whenever the groups do not divide it.
        let first_groups = if c.is_multiple_of(groups) { groups } else { 1 };
        let one = Extent::Uniform(1);
        let relu = Activation::Relu;
        let reduced = self.conv_bn(
            &format!("{name}_gconv1"),
            &x,
            bottleneck,
            one.clone(),
            1,
            first_groups,
            relu,
        );
        let shuffle = Op::ChannelShuffle(ChannelShuffle { groups });
        let shuffled = self.push(&format!("{name}_shuffle"), shuffle, &[&reduced]);
        let k = Extent::Uniform(kernel);
        let dw = self.conv_bn(
            &format!("{name}_dw"),
            &shuffled,
            bottleneck,
            k,
            stride,
            bottleneck,
            Activation::None,
        );
        let residual = stride == 1 && c == out;
        // The ReLU after the join, where the int8 runtime can fuse it: into the sum, or into
        // the branch's last convolution when the branch is concatenated with the pooled input
        // (already non-negative: every block and the stem end in a ReLU).
        let branch_act = if residual {
            Activation::None
        } else {
            Activation::Relu
        };
        let expanded = self.conv_bn(
            &format!("{name}_gconv2"),
            &dw,
            branch_out,
            one,
            1,
            groups,
            branch_act,
        );
        if concat {
            let pool = Pool {
                kernel: Extent::Uniform(3),
                stride: Some(Extent::Uniform(stride)),
                padding: Padding::Explicit(Extent::Uniform(1)),
                count_include_pad: false,
            };
            let op = if self.spatial == 1 {
                Op::AvgPool1d(pool)
            } else {
                Op::AvgPool2d(pool)
            };
            let pooled = self.push(&format!("{name}_shortcut"), op, &[&x]);
            self.push(
                &format!("{name}_cat"),
                Op::Concat(Concat::default()),
                &[&pooled, &expanded],
            );
        } else if residual {
            let sum = self.push(&format!("{name}_add"), Op::Add, &[&x, &expanded]);
            self.push(&format!("{name}_relu"), Op::Relu, &[&sum]);
        }
        self.channels = out;
    }

    /// Max pooling by `kernel` with the same stride (SqueezeNet's downsampling).
    pub fn max_pool(&mut self, name: &str, kernel: usize) {
        let pool = Pool {
            kernel: Extent::Uniform(kernel),
            stride: None,
            padding: Padding::default(),
            count_include_pad: true,
        };
        let op = if self.spatial == 1 {
            Op::MaxPool1d(pool)
        } else {
            Op::MaxPool2d(pool)
        };
        let x = self.last.clone();
        self.push(name, op, &[&x]);
    }

    /// The head: global average pooling and a linear layer to `classes`; the finished graph.
    pub fn classifier(mut self, classes: usize) -> Graph {
        let x = self.last.clone();
        let pooled = self.push("pool", Op::GlobalAvgPool, &[&x]);
        let linear = Op::Linear(Linear {
            out_features: classes,
            bias: true,
        });
        self.push("fc", linear, &[&pooled]);
        self.graph
    }

    /// Convolution (no bias), batch norm and `act`; returns the last value's name.
    #[allow(clippy::too_many_arguments)]
    fn conv_bn(
        &mut self,
        name: &str,
        input: &str,
        out: usize,
        kernel: Extent,
        stride: usize,
        groups: usize,
        act: Activation,
    ) -> String {
        let pad = match &kernel {
            Extent::Uniform(k) => Extent::Uniform(k / 2),
            Extent::PerAxis(k) => Extent::PerAxis(k.iter().map(|k| k / 2).collect()),
        };
        let conv = Conv {
            out_channels: out,
            kernel,
            stride: Extent::Uniform(stride),
            padding: Padding::Explicit(pad),
            dilation: Extent::Uniform(1),
            groups,
            bias: false,
        };
        let op = if self.spatial == 1 {
            Op::Conv1d(conv)
        } else {
            Op::Conv2d(conv)
        };
        self.push(name, op, &[input]);
        let bn = self.push(
            &format!("{name}_bn"),
            Op::BatchNorm(BatchNorm::default()),
            &[name],
        );
        self.channels = out;
        match act {
            Activation::Relu => self.push(&format!("{name}_relu"), Op::Relu, &[&bn]),
            Activation::Relu6 => self.push(&format!("{name}_relu6"), Op::Relu6, &[&bn]),
            Activation::None => bn,
        }
    }

    /// Appends a node reading `inputs`; it becomes the value the next block reads.
    fn push(&mut self, name: &str, op: Op, inputs: &[&str]) -> String {
        self.graph.nodes.push(Node::with_inputs(name, op, inputs));
        self.last = name.to_string();
        self.last.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(graph: &Graph) -> Vec<&'static str> {
        graph.nodes.iter().map(|n| n.op.kind()).collect()
    }

    #[test]
    fn an_inverted_residual_adds_its_input_back_only_when_shapes_allow() {
        let mut net = NetBuilder::new("ir", vec![8, 32]).unwrap();
        net.inverted_residual("a", 8, 3, 1, 4);
        net.inverted_residual("b", 16, 5, 2, 1);
        let graph = net.classifier(3);
        let a = graph.analyze().unwrap();
        let k = kinds(&graph);
        assert_eq!(k.iter().filter(|&&k| k == "add").count(), 1);
        // a: expand 8 -> 32 (1x1), depthwise 32 (k3), project 32 -> 8; b: no expansion.
        let macs = 32 * (8 * 32 + 32 * 3 + 32 * 8) + 16 * (8 * 5 + 8 * 16) + 16 * 3;
        assert_eq!(a.macs(), macs as u64);
        assert_eq!(a.nodes[a.nodes.len() - 3].shape.output, vec![16, 16]);
    }

    #[test]
    fn a_fire_module_concatenates_its_two_expand_branches() {
        let mut net = NetBuilder::new("fire", vec![1, 20, 10]).unwrap();
        net.fire("f", 15, 4, 3);
        assert_eq!(net.channels(), 15);
        let graph = net.classifier(2);
        let a = graph.analyze().unwrap();
        let cat = graph.nodes.iter().position(|n| n.name == "f_cat").unwrap();
        assert_eq!(a.nodes[cat].shape.output, vec![15, 20, 10]);
        assert_eq!(
            a.nodes[cat].input_shapes,
            vec![vec![8, 20, 10], vec![7, 20, 10]]
        );
    }

    #[test]
    fn a_shuffle_unit_shuffles_between_grouped_convolutions() {
        let mut net = NetBuilder::new("shuffle", vec![8, 32]).unwrap();
        net.shuffle_unit("u1", 24, 3, 2, 4, 8);
        net.shuffle_unit("u2", 24, 3, 1, 4, 8);
        let graph = net.classifier(3);
        let a = graph.analyze().unwrap();
        let find = |name: &str| graph.nodes.iter().position(|n| n.name == name).unwrap();
        // Stride 2: the branch makes 24 - 8 channels, the pooled input the other 8.
        assert_eq!(a.nodes[find("u1_cat")].shape.output, vec![24, 16]);
        assert_eq!(a.nodes[find("u1_gconv2")].shape.output, vec![16, 16]);
        assert_eq!(
            kinds(&graph)
                .iter()
                .filter(|&&k| k == "channel_shuffle")
                .count(),
            2
        );
        match &graph.nodes[find("u2_gconv1")].op {
            Op::Conv1d(c) => assert_eq!(c.groups, 4),
            op => panic!("{op:?}"),
        }
        assert!(graph.nodes.iter().any(|n| n.name == "u2_add"));
    }

    #[test]
    fn inputs_without_one_or_two_spatial_axes_are_refused() {
        let err = NetBuilder::new("x", vec![6]).unwrap_err();
        assert!(err.contains("[channels, length]"), "{err}");
    }
}
