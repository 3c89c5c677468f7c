//! tinyfit's deployment stage: quantised graphs in and out of TFLite, and lowered onto the
//! int8 runtime ([`tinyfit_micro`]) with a static memory plan.

pub mod boards;
pub mod codegen;
pub mod compact;
pub mod cost;
pub mod emulator;
mod host;
mod layout;
pub mod lower;
mod plan;
pub mod program;
pub mod routing;
pub mod switchable;
pub mod tflite;

pub use host::host_kernels;
pub use lower::{LowerError, lower};
pub use program::{MemoryPlan, OpReport, Program, RunError, to_channels_last};
pub use routing::{Chooser, Routing, RoutingError};
pub use switchable::{Budget, Policy, RouteCost, SwitchError};
