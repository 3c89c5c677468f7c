//! Step 2 of DiTMoS: diverse training-data splitting. A strong model's features (the flattened
//! output of one layer, its last convolution block in the reference) are clustered by k-means
//! into m groups, and classifier i pre-trains on the training samples of cluster i with their
//! true labels.
//!
//! As the reference (scikit-learn's `KMeans(m, n_init=50, random_state=0)`): k-means++ seeds,
//! Lloyd iterations (at most 300, tolerance 1e-4), the best of 50 restarts by inertia, features
//! not standardised. The clustering is linfa-clustering's; the restarts are seeded from
//! `seed`, so a split is reproducible.

use linfa::DatasetBase;
use linfa::traits::{Fit, Predict};
use linfa_clustering::KMeans;
use ndarray::Array2;
use rand_xoshiro::Xoshiro256Plus;
use rand_xoshiro::rand_core::SeedableRng;
use serde::{Deserialize, Serialize};
use tinyfit_data::Dataset;
use tinyfit_train::{GraphModel, Value, batch};

/// How to split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitConfig {
    /// Number of clusters m (one per classifier).
    pub clusters: usize,
    /// The strong model's layer (a node name) whose flattened output is the feature.
    pub feature_layer: String,
    /// k-means restarts; the run of lowest inertia wins (the reference: 50).
    pub restarts: usize,
    /// Seed of the k-means++ initialisations.
    pub seed: u64,
}

/// Why a split failed.
#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    /// The feature layer is not a node of the strong model.
    #[error("the strong model '{model}' has no layer '{layer}' to take features from")]
    NoSuchLayer {
        /// The strong model's name.
        model: String,
        /// The layer asked for.
        layer: String,
    },
    /// Fewer training samples than clusters, or no cluster asked for.
    #[error("cannot cut {samples} training samples into {clusters} clusters")]
    TooFewSamples {
        /// Training samples.
        samples: usize,
        /// Clusters asked for.
        clusters: usize,
    },
    /// The clustering itself failed.
    #[error("k-means: {0}")]
    KMeans(String),
}

/// The clusters of the training samples and of held-out samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSplit {
    /// Cluster of each training sample.
    pub train: Vec<usize>,
    /// Cluster of each held-out sample (nearest centroid), to monitor pre-training.
    pub held_out: Vec<usize>,
    /// Training samples per cluster.
    pub sizes: Vec<usize>,
    /// Sum of squared distances of the training features to their centroids (k-means only).
    pub inertia: Option<f64>,
}

impl DataSplit {
    /// The training samples of cluster `c`, in order.
    pub fn members(&self, c: usize) -> Vec<usize> {
        (0..self.train.len())
            .filter(|&i| self.train[i] == c)
            .collect()
    }
}

/// The flattened output of node `layer` of `model` (built on [`tinyfit_train::cpu`], so in
/// inference mode) for every sample of `data`, as an `[N, D]` matrix.
pub fn features(
    model: &GraphModel,
    layer: &str,
    data: &Dataset,
    batch_size: usize,
) -> Result<Array2<f32>, SplitError> {
    let graph = model.graph();
    let node = graph
        .nodes
        .iter()
        .position(|n| n.name == layer)
        .ok_or_else(|| SplitError::NoSuchLayer {
            model: graph.name.clone(),
            layer: layer.to_string(),
        })?;
    let device = tinyfit_train::cpu();
    let all: Vec<usize> = (0..data.len()).collect();
    let mut rows: Vec<f32> = Vec::new();
    let mut width = 0;
    for indices in all.chunks(batch_size.max(1)) {
        let (_, mut values) = model.forward_all(vec![batch::inputs(data, indices, &device)]);
        let v: Value = values.swap_remove(node);
        width = v.dims()[1..].iter().product();
        rows.extend(v.to_vec());
    }
    Ok(Array2::from_shape_vec((data.len(), width), rows).expect("N rows of D values"))
}

/// Clusters `train` (`[N, D]` features) into `config.clusters` groups and assigns `held_out`
/// to the nearest centroid.
pub fn cluster(
    train: &Array2<f32>,
    held_out: &Array2<f32>,
    config: &SplitConfig,
) -> Result<DataSplit, SplitError> {
    let (n, m) = (train.nrows(), config.clusters);
    if m == 0 || n < m {
        return Err(SplitError::TooFewSamples {
            samples: n,
            clusters: m,
        });
    }
    let x = train.mapv(f64::from);
    let rng = Xoshiro256Plus::seed_from_u64(config.seed);
    let model = KMeans::params_with_rng(m, rng)
        .n_runs(config.restarts.max(1))
        .max_n_iterations(300)
        .tolerance(1e-4)
        .fit(&DatasetBase::from(x.clone()))
        .map_err(|e| SplitError::KMeans(e.to_string()))?;
    let assign = |features: &Array2<f64>| -> Vec<usize> { model.predict(features).to_vec() };
    let train_clusters = assign(&x);
    let mut sizes = vec![0; m];
    for &c in &train_clusters {
        sizes[c] += 1;
    }
    Ok(DataSplit {
        held_out: if held_out.nrows() == 0 {
            Vec::new()
        } else {
            assign(&held_out.mapv(f64::from))
        },
        train: train_clusters,
        sizes,
        inertia: Some(model.inertia()),
    })
}

/// Equal random parts of `n` training samples (sizes differ by at most one), and random parts
/// for `held_out` samples: the ablation without diverse splitting.
pub fn random(
    n: usize,
    held_out: usize,
    clusters: usize,
    seed: u64,
) -> Result<DataSplit, SplitError> {
    use rand::SeedableRng;
    use rand::seq::SliceRandom;
    if clusters == 0 || n < clusters {
        return Err(SplitError::TooFewSamples {
            samples: n,
            clusters,
        });
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut parts = |count: usize| -> Vec<usize> {
        let mut p: Vec<usize> = (0..count).map(|i| i % clusters).collect();
        p.shuffle(&mut rng);
        p
    };
    let train = parts(n);
    let held_out = parts(held_out);
    let mut sizes = vec![0; clusters];
    for &c in &train {
        sizes[c] += 1;
    }
    Ok(DataSplit {
        train,
        held_out,
        sizes,
        inertia: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three well separated blobs in 2-D (synthetic: a test of the clustering, not of DiTMoS).
    fn blobs() -> (Array2<f32>, Vec<usize>) {
        let centres = [(0.0, 0.0), (10.0, 10.0), (-10.0, 10.0)];
        let mut state = 7u32;
        let mut noise = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        let mut rows = Vec::new();
        let mut truth = Vec::new();
        for i in 0..90 {
            let (cx, cy) = centres[i % 3];
            rows.extend([cx + noise(), cy + noise()]);
            truth.push(i % 3);
        }
        (Array2::from_shape_vec((90, 2), rows).unwrap(), truth)
    }

    #[test]
    fn separated_blobs_come_back_as_clusters() {
        let (x, truth) = blobs();
        let config = SplitConfig {
            clusters: 3,
            feature_layer: String::new(),
            restarts: 5,
            seed: 0,
        };
        let split = cluster(&x, &x, &config).unwrap();
        assert_eq!(split.sizes, vec![30, 30, 30]);
        // Same partition as the truth, whatever the cluster numbering.
        for i in 0..90 {
            for j in 0..90 {
                assert_eq!(split.train[i] == split.train[j], truth[i] == truth[j]);
            }
        }
        assert_eq!(split.held_out, split.train);
        assert_eq!(split.members(split.train[0]).len(), 30);
        // Reproducible from the seed.
        assert_eq!(cluster(&x, &x, &config).unwrap(), split);
        let too_many = SplitConfig {
            clusters: 91,
            ..config
        };
        assert!(matches!(
            cluster(&x, &x, &too_many),
            Err(SplitError::TooFewSamples { .. })
        ));
    }

    #[test]
    fn random_parts_are_equal_and_seeded() {
        let split = random(10, 4, 3, 1).unwrap();
        assert_eq!(split.sizes, vec![4, 3, 3]);
        assert_eq!(split.held_out.len(), 4);
        assert_eq!(random(10, 4, 3, 1).unwrap().train, split.train);
        assert_ne!(random(10, 4, 3, 2).unwrap().train, split.train);
        assert!(random(2, 0, 3, 1).is_err());
    }
}
