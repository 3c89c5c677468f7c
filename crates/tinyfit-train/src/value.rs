//! Tensors of the rank a graph value happens to have.
//!
//! burn tensors carry their rank in the type; graph values are `[N, F]`, `[N, C, L]` or
//! `[N, C, H, W]` depending on the layer, so the executor holds them in this enum.

use burn::tensor::Tensor;

/// A batch of graph values of rank 2, 3 or 4 (batch axis first).
#[derive(Debug, Clone)]
pub enum Value {
    /// `[N, F]`.
    R2(Tensor<2>),
    /// `[N, C, L]`.
    R3(Tensor<3>),
    /// `[N, C, H, W]`.
    R4(Tensor<4>),
}

/// Applies a rank-generic expression to whichever tensor a [`Value`] holds.
macro_rules! each_rank {
    ($value:expr, $t:ident => $body:expr) => {
        match $value {
            $crate::value::Value::R2($t) => $crate::value::Value::R2($body),
            $crate::value::Value::R3($t) => $crate::value::Value::R3($body),
            $crate::value::Value::R4($t) => $crate::value::Value::R4($body),
        }
    };
}
pub(crate) use each_rank;

impl Value {
    /// Dimensions, batch axis included.
    pub fn dims(&self) -> Vec<usize> {
        match self {
            Value::R2(t) => t.dims().to_vec(),
            Value::R3(t) => t.dims().to_vec(),
            Value::R4(t) => t.dims().to_vec(),
        }
    }

    /// Reshapes to `[N, rest...]` given the per-sample shape.
    pub fn reshape(self, sample: &[usize]) -> Value {
        let n = self.dims()[0];
        let flat = self.into_flat();
        match *sample {
            [f] => Value::R2(flat.reshape([n, f])),
            [c, l] => Value::R3(flat.reshape([n, c, l])),
            [c, h, w] => Value::R4(flat.reshape([n, c, h, w])),
            _ => unreachable!("shape inference admits ranks 1 to 3 per sample"),
        }
    }

    /// The values on the host, row-major with the batch axis first.
    pub fn to_vec(&self) -> Vec<f32> {
        let data = match self {
            Value::R2(t) => t.to_data(),
            Value::R3(t) => t.to_data(),
            Value::R4(t) => t.to_data(),
        };
        data.try_to_vec::<f32>().expect("tinyfit trains in f32")
    }

    /// `[N, prod(rest)]`.
    pub fn into_flat(self) -> Tensor<2> {
        match self {
            Value::R2(t) => t,
            Value::R3(t) => t.flatten::<2>(1, 2),
            Value::R4(t) => t.flatten::<2>(1, 3),
        }
    }

    /// `[N, C, positions]`: a vector as channels at one position, a feature map with its
    /// spatial axes flattened.
    pub fn channels_by_positions(self) -> Tensor<3> {
        match self {
            Value::R2(t) => t.unsqueeze_dim(2),
            Value::R3(t) => t,
            Value::R4(t) => t.flatten(2, 3),
        }
    }

    /// The `[N, F]` tensor of a rank-2 value.
    pub fn into_r2(self) -> Tensor<2> {
        match self {
            Value::R2(t) => t,
            other => unreachable!("shape inference guarantees rank 2, got {:?}", other.dims()),
        }
    }
}
