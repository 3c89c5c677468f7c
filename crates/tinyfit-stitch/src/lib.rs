//! SN-Net model stitching (Pan, Cai and Zhuang, CVPR 2023; `shared/reference/snnet.md`).
//!
//! Anchors — trained models of one family at different sizes — are joined by stitching
//! layers: the front of a smaller anchor up to block `j`, a linear map between activation
//! spaces, then the rest of a larger anchor from block `k`. [`space`] enumerates the
//! `(j, k)` stitches and which stitching layer each uses, as the reference code does;
//! [`least_squares`] initialises a stitching layer from paired activations; [`anchor`] cuts a
//! model into blocks and [`model`] runs every route of an SN-Net as one trainable module, which
//! [`train`] trains jointly (one route drawn per step) and evaluates route by route;
//! [`route_model`] gives each route as a standalone graph for analysis, quantisation and
//! deployment.

pub mod anchor;
pub mod config;
pub mod frontier;
pub mod least_squares;
pub mod model;
pub mod route_model;
pub mod space;
pub mod train;
