//! One module per subcommand.

pub mod bench;
pub mod bench_infer;
pub mod bench_mcu;
pub mod compress;
pub mod data;
pub mod deploy;
pub mod ditmos;
pub mod eval;
pub mod inspect;
pub mod prune;
pub mod qat;
pub mod quantize;
pub mod run;
pub mod search;
pub mod search_cost;
pub mod stitch;
pub mod stitch_baselines;
pub mod stitch_int8;
pub mod train;
