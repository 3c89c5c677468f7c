//! A 1×1 convolution between channel spaces — a matrix over channels and a bias, applied at
//! every position: FitNets' hint regressor ([`crate::hints`]) and SN-Net's stitching layer
//! (`tinyfit-stitch`) are both one.

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::value::Value;

/// `y[c_out, p] = Σ_c W[c_out, c] · x[c, p] + b[c_out]` at every position `p`.
#[derive(Module, Debug)]
pub struct ChannelMap {
    /// `[out channels, in channels]` (PyTorch's layout of a 1×1 convolution, without the
    /// kernel axes).
    pub weight: Param<Tensor<2>>,
    /// `[out channels]`.
    pub bias: Param<Tensor<1>>,
}

impl ChannelMap {
    /// PyTorch's default initialisation of a 1×1 convolution from `inputs` to `outputs`
    /// channels: U(−1/√inputs, 1/√inputs) for weight and bias, drawn from `seed`.
    pub fn pytorch_default(outputs: usize, inputs: usize, seed: u64, device: &Device) -> Self {
        let bound = 1.0 / (inputs as f32).sqrt();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut uniform =
            |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-bound..bound)).collect() };
        let weight = uniform(outputs * inputs);
        let bias = uniform(outputs);
        Self::from_host(weight, bias, device)
    }

    /// The map with `weight` (`[outputs, inputs]`, row-major) and `bias` (`[outputs]`).
    pub fn from_host(weight: Vec<f32>, bias: Vec<f32>, device: &Device) -> Self {
        let outputs = bias.len();
        let inputs = weight.len() / outputs.max(1);
        ChannelMap {
            weight: Param::from_tensor(Tensor::from_data(
                TensorData::new(weight, [outputs, inputs]),
                device,
            )),
            bias: Param::from_tensor(Tensor::from_data(TensorData::new(bias, [outputs]), device)),
        }
    }

    /// `[N, C_in, P]` → `[N, C_out, P]`.
    pub fn forward_positions(&self, v: Tensor<3>) -> Tensor<3> {
        let [n, _, p] = v.dims();
        let w = self.weight.val();
        let [t, s] = w.dims();
        let y = w.unsqueeze::<3>().expand([n, t, s]).matmul(v);
        y + self.bias.val().reshape([1, t, 1]).expand([n, t, p])
    }

    /// A graph value with `C_in` channels (a vector counts as channels at one position) as the
    /// same value with `C_out` channels.
    pub fn forward(&self, v: Value) -> Value {
        let mut sample = v.dims()[1..].to_vec();
        sample[0] = self.bias.dims()[0];
        Value::R3(self.forward_positions(v.channels_by_positions())).reshape(&sample)
    }
}
