//! Lightweight block families and a hardware-aware search over them.
//!
//! - [`blocks`]: SqueezeNet fire modules, MobileNet depthwise-separable blocks and inverted
//!   residuals, ShuffleNet units, as builders of tinyfit graphs, 1-D and 2-D.
//! - [`Architecture`]: a network as a genome — input resolution, stem, stages of one family
//!   each — with EfficientNet's compound scaling ([`Architecture::compound_scaled`]).
//! - [`SearchSpace`]: the choices, random sampling and single-gene mutation.
//! - [`Plan`]: MnasNet's search loop with its reward ([`Reward`]), regularized evolution or
//!   random search ([`Strategy`]), candidates evaluated in parallel, every trial logged
//!   ([`TrialLog`]) so that a search resumes after a kill and shards merge ([`trials::merge`]).
//! - [`scale_widths`]: a hand-designed graph made narrower or wider, the baseline a searched
//!   model is compared with at the same latency.
//!
//! Costs and training are the caller's ([`Evaluate`]): the CLI measures each candidate on the
//! board's cost model (its int8 package profiled on the emulated core) and trains it briefly.

pub mod architecture;
pub mod blocks;
mod error;
pub mod reward;
pub mod search;
pub mod space;
pub mod trials;
mod widths;

pub use architecture::{Architecture, BlockKind, Compound, Stage, Stem};
pub use error::NasError;
pub use reward::Reward;
pub use search::{Evaluate, Evaluation, Fits, Plan, Proposal, Score, Strategy, best, pareto};
pub use space::SearchSpace;
pub use trials::{Cost, Shard, Trial, TrialLog};
pub use widths::scale_widths;
