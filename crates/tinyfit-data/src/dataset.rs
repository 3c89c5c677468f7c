//! An in-memory labelled dataset of fixed-shape samples.

/// Labelled samples of one shape, each tagged with the subject (or speaker) it came from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dataset {
    /// Shape of one sample, channels first (`[C, L]` or `[C, H, W]`).
    pub sample_shape: Vec<usize>,
    /// All samples, row-major, one after another.
    pub x: Vec<f32>,
    /// Class index of each sample.
    pub y: Vec<u32>,
    /// Subject / speaker of each sample, for group-disjoint splits.
    pub groups: Vec<u32>,
    /// Class names, indexed by label.
    pub class_names: Vec<String>,
}

impl Dataset {
    /// An empty dataset with this sample shape and these classes.
    pub fn empty(sample_shape: Vec<usize>, class_names: Vec<String>) -> Self {
        Dataset {
            sample_shape,
            class_names,
            ..Default::default()
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Values per sample.
    pub fn sample_len(&self) -> usize {
        self.sample_shape.iter().product()
    }

    /// The values of sample `i`.
    pub fn sample(&self, i: usize) -> &[f32] {
        let n = self.sample_len();
        &self.x[i * n..(i + 1) * n]
    }

    /// Appends one sample.
    pub fn push(&mut self, sample: &[f32], label: u32, group: u32) {
        debug_assert_eq!(sample.len(), self.sample_len());
        self.x.extend_from_slice(sample);
        self.y.push(label);
        self.groups.push(group);
    }

    /// The samples at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Dataset {
        let mut out = Dataset::empty(self.sample_shape.clone(), self.class_names.clone());
        for &i in indices {
            out.push(self.sample(i), self.y[i], self.groups[i]);
        }
        out
    }

    /// The samples whose group satisfies `keep`.
    pub fn filter_groups(&self, keep: impl Fn(u32) -> bool) -> Dataset {
        let idx: Vec<usize> = (0..self.len()).filter(|&i| keep(self.groups[i])).collect();
        self.select(&idx)
    }

    /// Number of samples of each class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.class_names.len()];
        for &y in &self.y {
            counts[y as usize] += 1;
        }
        counts
    }

    /// The distinct groups, sorted.
    pub fn group_ids(&self) -> Vec<u32> {
        let mut g = self.groups.clone();
        g.sort_unstable();
        g.dedup();
        g
    }
}
