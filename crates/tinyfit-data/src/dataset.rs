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

    /// Every sample resampled to `steps` positions along its time axis (the first axis after
    /// the channels: a window's samples, a spectrogram's frames) by linear interpolation with
    /// the end points kept, as a sensor sampled at another rate over the same window would see
    /// it. The input resolution a model search varies for time series.
    ///
    /// `steps` must be at least 2 and samples need a time axis; both are checked by callers
    /// ([`Splits::resampled`](crate::Splits::resampled)).
    pub fn resampled(&self, steps: usize) -> Dataset {
        let (channels, length) = (self.sample_shape[0], self.sample_shape[1]);
        let inner: usize = self.sample_shape[2..].iter().product();
        let mut shape = self.sample_shape.clone();
        shape[1] = steps;
        let mut out = Dataset::empty(shape, self.class_names.clone());
        let scale = (length - 1) as f64 / (steps - 1).max(1) as f64;
        let taps: Vec<(usize, usize, f32)> = (0..steps)
            .map(|t| {
                let at = t as f64 * scale;
                let lo = (at.floor() as usize).min(length - 1);
                let hi = (lo + 1).min(length - 1);
                (lo, hi, (at - lo as f64) as f32)
            })
            .collect();
        let mut sample = vec![0f32; channels * steps * inner];
        for i in 0..self.len() {
            let x = self.sample(i);
            for c in 0..channels {
                for (t, &(lo, hi, w)) in taps.iter().enumerate() {
                    let (a, b) = ((c * length + lo) * inner, (c * length + hi) * inner);
                    let dst = (c * steps + t) * inner;
                    for k in 0..inner {
                        sample[dst + k] = x[a + k] * (1.0 - w) + x[b + k] * w;
                    }
                }
            }
            out.push(&sample, self.y[i], self.groups[i]);
        }
        out
    }

    /// The distinct groups, sorted.
    pub fn group_ids(&self) -> Vec<u32> {
        let mut g = self.groups.clone();
        g.sort_unstable();
        g.dedup();
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampling_interpolates_along_the_time_axis_only() {
        // Two channels of a ramp over 5 steps, each step holding 2 values (a [2, 5, 2] sample).
        let mut data = Dataset::empty(vec![2, 5, 2], vec!["a".into()]);
        let sample: Vec<f32> = (0..2)
            .flat_map(|c| (0..5).flat_map(move |t| [(10 * c + t) as f32, -(t as f32)]))
            .collect();
        data.push(&sample, 0, 7);
        let r = data.resampled(9);
        assert_eq!(r.sample_shape, vec![2, 9, 2]);
        assert_eq!((r.y[0], r.groups[0]), (0, 7));
        let x = r.sample(0);
        for c in 0..2 {
            for t in 0..9 {
                let at = t as f32 * 0.5;
                let at_c = &x[(c * 9 + t) * 2..][..2];
                assert!((at_c[0] - (10.0 * c as f32 + at)).abs() < 1e-6, "{at_c:?}");
                assert!((at_c[1] + at).abs() < 1e-6, "{at_c:?}");
            }
        }
        let down = data.resampled(3);
        assert_eq!(&down.sample(0)[..6], &[0.0, 0.0, 2.0, -2.0, 4.0, -4.0]);
    }
}
