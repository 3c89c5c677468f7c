//! Datasets in their published layouts, turned into fixed-shape labelled samples with
//! subject-disjoint splits and training-only normalisation.
//!
//! Readers accept every text file plain or gzipped, and every error names the file and line
//! at fault.

pub mod audio;
mod config;
mod dataset;
mod error;
mod files;
mod hapt;
mod normalize;
mod speech;
mod split;
mod stress;
mod text;

pub use config::DataConfig;
pub use dataset::Dataset;
pub use error::{DataError, Result};
pub use files::{Column, FileFormat, FileSplit, FilesConfig};
pub use hapt::HaptConfig;
pub use normalize::ChannelNorm;
pub use speech::{SetName, SpeakerSplitMethod, SpeechCommandsConfig, speaker_of, which_set};
pub use split::{HeldOut, SplitSizes, Splits};
pub use stress::{Signal, StressConfig, stress_intervals};
pub use text::{parse_table, read_text};
