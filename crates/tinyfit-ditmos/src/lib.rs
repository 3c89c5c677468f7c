//! DiTMoS: diverse tiny-model selection (Ma et al., PerCom 2024; `shared/reference/ditmos.md`).
//!
//! A tiny selector routes each input to one of m weak classifiers that read the selector's
//! feature maps as well (feature aggregation); the classifiers are made diverse by pre-training
//! each on one k-means cluster of a strong model's features ([`split`]) and by adversarial
//! alternating training.

pub mod split;
