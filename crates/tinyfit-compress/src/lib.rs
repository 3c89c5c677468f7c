//! Top-down compression of trained float models.
//!
//! [`fold::fold_batch_norms`] merges batch norms into the convolutions before them;
//! [`ptq::quantize`] turns a float graph into tinyfit's int8 [`QuantGraph`] by TFLite's rules
//! (per-channel symmetric convolution weights, per-tensor fully connected weights, asymmetric
//! activations calibrated by min/max on training samples); [`prune`] removes whole channels,
//! coupled ones together, for a MACs target, or holds the smallest weights at zero;
//! [`mixed::search`] picks each layer's weight grid (int8, 4-bit, ternary, binary) for a
//! flash budget.
//!
//! [`QuantGraph`]: tinyfit_graph::quant::QuantGraph

pub mod fold;
pub mod mixed;
pub mod prune;
pub mod ptq;

pub use ptq::{PtqConfig, PtqError, quantize};
