//! Turning dataset rows into burn batches.

use burn::tensor::{Device, Int, Tensor, TensorData};
use tinyfit_data::Dataset;

use crate::value::Value;

/// The samples at `indices` as one `[N, shape...]` batch.
pub fn inputs(data: &Dataset, indices: &[usize], device: &Device) -> Value {
    let mut x = Vec::with_capacity(indices.len() * data.sample_len());
    for &i in indices {
        x.extend_from_slice(data.sample(i));
    }
    let n = indices.len();
    let flat = Tensor::<2>::from_data(TensorData::new(x, [n, data.sample_len()]), device);
    Value::R2(flat).reshape(&data.sample_shape)
}

/// The labels at `indices` as an integer tensor `[N]`.
pub fn labels(data: &Dataset, indices: &[usize], device: &Device) -> Tensor<1, Int> {
    let y: Vec<i64> = indices.iter().map(|&i| data.y[i] as i64).collect();
    Tensor::from_data(TensorData::new(y, [indices.len()]), device)
}
