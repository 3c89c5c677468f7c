//! tinyfit's int8 runtime for microcontrollers.
//!
//! `no_std` and allocation-free: everything a microcontroller runs lives here. Integer arithmetic
//! follows the TFLite quantization spec bit for bit, so a model gives the same int8 outputs here,
//! in LiteRT and in TFLite Micro. The `std` feature (host builds) only lets the hot kernels pick
//! an AVX2 copy at run time.

#![cfg_attr(not(feature = "std"), no_std)]

pub mod fixed_point;
pub mod interpreter;
pub mod kernels;
pub mod model;
pub mod planner;

pub use interpreter::{Checked, input_mut, invoke, output};
pub use model::{Constants, Error, Kernel, Model, Operation, Span, TensorInfo};
