//! DiTMoS: diverse tiny-model selection (Ma et al., PerCom 2024; `shared/reference/ditmos.md`).
//!
//! A tiny selector routes each input to one of m weak classifiers that read the selector's
//! feature maps as well (feature aggregation); the classifiers are made diverse by pre-training
//! each on one k-means cluster of a strong model's features ([`split`]) and by adversarial
//! alternating training. [`selection`] holds the selector's training targets and the
//! method's metrics (routed and union accuracy, the histogram of right classifiers), [`cka`]
//! the similarity of models' features. Training runs the m classifiers as one grouped
//! network ([`grouped`], [`classifiers`]).

pub mod checkpoint;
pub mod cka;
pub mod classifiers;
pub mod config;
pub mod grouped;
pub mod merge;
pub mod model;
pub mod selection;
pub mod split;
pub mod train;
