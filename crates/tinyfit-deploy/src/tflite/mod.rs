//! TFLite flatbuffers: import into tinyfit's quantised graph and export from it.

mod export;
mod import;

#[rustfmt::skip]
#[allow(clippy::all, missing_docs, unused, unreachable_pub)]
mod schema;

pub use export::{
    ExportError, ExportOptions, FullyConnectedAs, export, export_lowered, export_with,
};
pub use import::import;
pub use schema::tflite::BuiltinOperator;

/// What can be wrong with a `.tflite` file, naming the tensor or operator at fault.
#[derive(Debug, thiserror::Error)]
pub enum TfliteError {
    /// The bytes are not a well-formed TFLite flatbuffer (truncated, corrupt offsets, ...).
    #[error("not a valid TFLite flatbuffer: {0}")]
    Format(String),
    /// A tensor's type, shape, data or quantisation is not what tinyfit expects.
    #[error("tensor '{tensor}': {message}")]
    Tensor {
        /// The tensor's name in the file.
        tensor: String,
        /// What was expected and found.
        message: String,
    },
    /// An operator tinyfit has no kernel for.
    #[error(
        "operator {index} is {op:?}, which tinyfit does not support (supported: CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, AVERAGE_POOL_2D, MAX_POOL_2D, ADD, CONCATENATION, RESHAPE, PAD, MEAN, SOFTMAX, QUANTIZE; DEQUANTIZE of model outputs)"
    )]
    UnsupportedOp {
        /// Position in the operator list.
        index: usize,
        /// The TFLite builtin operator.
        op: BuiltinOperator,
    },
    /// A supported operator used in a way tinyfit does not support.
    #[error("operator {index} ({op:?}): {message}")]
    Operator {
        /// Position in the operator list.
        index: usize,
        /// The TFLite builtin operator.
        op: BuiltinOperator,
        /// What is wrong.
        message: String,
    },
    /// A model-level feature tinyfit does not support.
    #[error("unsupported model: {0}")]
    Unsupported(String),
    /// An operator-level problem before the operator is known (internal to the importer).
    #[error("{0}")]
    Message(String),
}

impl TfliteError {
    fn format(e: planus::Error) -> Self {
        TfliteError::Format(e.to_string())
    }

    fn format_msg(message: String) -> Self {
        TfliteError::Format(message)
    }
}
