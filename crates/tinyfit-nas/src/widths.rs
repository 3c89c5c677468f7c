//! Width scaling of any graph: how a hand-designed model is made faster or slower to meet a
//! latency, for comparison with searched models of the same latency.

use tinyfit_graph::{Graph, Op};

/// `graph` with every convolution's output channels multiplied by `multiplier` (rounded, at
/// least 1); depthwise convolutions keep one group per channel. Linear layers keep their
/// outputs (the classifier's are the classes).
pub fn scale_widths(graph: &Graph, multiplier: f64) -> Graph {
    let mut out = graph.clone();
    out.name = format!("{} at {multiplier:.3}× its width", graph.name);
    for node in &mut out.nodes {
        if let Op::Conv1d(c) | Op::Conv2d(c) = &mut node.op {
            let depthwise = c.groups > 1 && c.groups == c.out_channels;
            c.out_channels = ((c.out_channels as f64 * multiplier).round() as usize).max(1);
            if depthwise {
                c.groups = c.out_channels;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::NetBuilder;

    #[test]
    fn widths_scale_and_depthwise_groups_follow() {
        let mut net = NetBuilder::new("ds", vec![1, 20, 10]).unwrap();
        net.conv_bn_relu("stem", 64, 3, 2);
        net.separable("b", 64, 3, 1);
        let graph = scale_widths(&net.classifier(12), 0.5);
        let a = graph.analyze().unwrap();
        let dw = graph.nodes.iter().position(|n| n.name == "b_dw").unwrap();
        assert_eq!(a.nodes[dw].shape.output, vec![32, 10, 5]);
        match &graph.nodes[dw].op {
            Op::Conv2d(c) => assert_eq!(c.groups, 32),
            op => panic!("{op:?}"),
        }
        assert_eq!(a.nodes.last().unwrap().shape.output, vec![12]);
    }
}
