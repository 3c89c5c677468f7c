//! burn modules for the graph ops that hold weights.
//!
//! Convolution and linear layers call burn's functional ops with the graph's resolved padding;
//! batch norm is written here because PyTorch updates the running variance with the
//! *unbiased* batch variance (normalising with the biased one), which burn's `BatchNorm` does
//! not.

use burn::module::{Module, Param, RunningState};
use burn::nn::Dropout;
use burn::tensor::{Device, Tensor, TensorData};
use tinyfit_graph::Tensor as HostTensor;

/// A module per graph node; ops without weights hold [`Stateless`].
#[derive(Module, Debug)]
pub enum Layer {
    /// 1-D convolution weights.
    Conv1d(ConvWeights<3>),
    /// 2-D convolution weights.
    Conv2d(ConvWeights<4>),
    /// Batch normalisation.
    BatchNorm(BatchNorm),
    /// Fully connected layer.
    Linear(Linear),
    /// Dropout.
    Dropout(Dropout),
    /// An op without weights.
    Stateless(Stateless),
}

/// Placeholder module for ops without weights.
#[derive(Module, Debug, Default)]
pub struct Stateless;

/// Convolution weights `[out, in/groups, k...]` and optional bias `[out]`.
#[derive(Module, Debug)]
pub struct ConvWeights<const D: usize> {
    /// Kernel in PyTorch layout.
    pub weight: Param<Tensor<D>>,
    /// Per-output-channel bias.
    pub bias: Option<Param<Tensor<1>>>,
}

impl<const D: usize> ConvWeights<D> {
    /// Loads a kernel and optional bias from host tensors.
    pub fn new(weight: &HostTensor, bias: Option<&HostTensor>, device: &Device) -> Self {
        ConvWeights {
            weight: param(weight, device),
            bias: bias.map(|b| param(b, device)),
        }
    }

    /// Hands `weight` and, if present, `bias` to `put` as host tensors.
    pub fn export(&self, mut put: impl FnMut(&str, HostTensor)) {
        put("weight", to_host(&self.weight.val()));
        if let Some(b) = &self.bias {
            put("bias", to_host(&b.val()));
        }
    }
}

/// Fully connected weights stored `[in, out]` (burn's layout; PyTorch's transposed).
#[derive(Module, Debug)]
pub struct Linear {
    /// `[in, out]`.
    pub weight: Param<Tensor<2>>,
    /// `[out]`.
    pub bias: Option<Param<Tensor<1>>>,
}

/// Batch normalisation with PyTorch's training semantics.
#[derive(Module, Debug)]
pub struct BatchNorm {
    /// γ.
    pub gamma: Param<Tensor<1>>,
    /// β.
    pub beta: Param<Tensor<1>>,
    /// Running mean used at inference.
    pub running_mean: RunningState<Tensor<1>>,
    /// Running (unbiased) variance used at inference.
    pub running_var: RunningState<Tensor<1>>,
    /// Added to the variance.
    pub eps: f64,
    /// Weight of the batch statistic in the running averages.
    pub momentum: f64,
    /// Normalise with the running averages in training too, and leave them as they are:
    /// fine-tuning that must not move the statistics other paths through the layer rely on
    /// (SN-Net's joint training, where stitched routes feed an anchor's layers).
    pub frozen: bool,
}

impl BatchNorm {
    /// Normalises over every axis but the channel axis (1). Training (an autodiff input)
    /// uses batch statistics and updates the running averages, unless [`BatchNorm::frozen`];
    /// inference uses the averages.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        if !x.device().is_autodiff() || self.frozen {
            return burn::tensor::module::batch_norm(
                x,
                self.gamma.val(),
                self.beta.val(),
                self.running_mean.value(),
                self.running_var.value(),
                self.eps,
            );
        }
        let dims = x.dims();
        let count: usize = dims.iter().product::<usize>() / dims[1];
        let out =
            burn::tensor::module::batch_norm_train(x, self.gamma.val(), self.beta.val(), self.eps);
        let unbiased = if count > 1 {
            count as f64 / (count - 1) as f64
        } else {
            1.0
        };
        let m = self.momentum;
        let mean = self
            .running_mean
            .value_sync()
            .mul_scalar(1.0 - m)
            .add(out.mean.detach().mul_scalar(m));
        let var = self
            .running_var
            .value_sync()
            .mul_scalar(1.0 - m)
            .add(out.variance.detach().mul_scalar(m * unbiased));
        self.running_mean.update(mean.detach());
        self.running_var.update(var.detach());
        out.output
    }
}

/// Creates a parameter tensor of rank `D` from host data.
pub fn param<const D: usize>(t: &HostTensor, device: &Device) -> Param<Tensor<D>> {
    Param::from_tensor(tensor(t, device))
}

/// Creates a tensor of rank `D` from host data.
pub fn tensor<const D: usize>(t: &HostTensor, device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(t.data.clone(), t.shape.clone()), device)
}

/// Copies a tensor to the host.
pub fn to_host<const D: usize>(t: &Tensor<D>) -> HostTensor {
    let data = t.to_data();
    HostTensor {
        shape: t.dims().to_vec(),
        data: data
            .as_slice::<f32>()
            .expect("tinyfit trains in f32")
            .to_vec(),
    }
}
