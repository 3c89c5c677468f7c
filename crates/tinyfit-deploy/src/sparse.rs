//! The sparse filter format of the generated C: per output channel, a bitmap of which weights
//! are non-zero, then the non-zero weights alone, row after row.
//!
//! A bitmap costs one bit a weight whatever the pattern, so at density d a row of n weights
//! takes n/8 + d·n bytes instead of n (rows padded to whole 32-bit words of mask, which the
//! kernels scan with one count-leading-zeros a stored weight): a saving from d < 7/8, two
//! thirds of the filter at d = 0.2. Index lists (CSR) cost a byte or two a non-zero and only pay below d ≈ 1/2; blocks
//! need structured sparsity that magnitude pruning does not give. The kernels
//! (`tf_conv2d_sparse`, `tf_fully_connected_sparse`) visit the set bits of each mask byte, so
//! their work follows the non-zeros, not the dense size.

/// Below this saving of filter bytes the sparse kernels' per-weight bit scan costs more time
/// than the flash is worth, and the generator keeps the dense filter and its faster kernels.
pub const MIN_SAVING: f64 = 0.25;

/// A filter of `rows` rows in the bitmap format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparseFilter {
    /// `rows × ceil(row / 32)` words; bit 31 − k (most significant first) of a row's word j
    /// says whether weight 32j + k is stored.
    pub mask: Vec<u32>,
    /// The non-zero weights in row-major order.
    pub values: Vec<i8>,
    /// Bytes the dense filter takes.
    pub dense_bytes: usize,
}

impl SparseFilter {
    /// Encodes `filter` (`rows` rows of equal length, row-major).
    pub fn encode(filter: &[i8], rows: usize) -> SparseFilter {
        let row = filter.len() / rows.max(1);
        let words = row.div_ceil(32);
        let mut mask = vec![0u32; rows * words];
        let mut values = Vec::new();
        for (r, weights) in filter.chunks(row.max(1)).enumerate().take(rows) {
            for (k, &w) in weights.iter().enumerate() {
                if w != 0 {
                    mask[r * words + k / 32] |= 1 << (31 - k % 32);
                    values.push(w);
                }
            }
        }
        SparseFilter {
            mask,
            values,
            dense_bytes: filter.len(),
        }
    }

    /// Encodes `filter` when the format saves at least [`MIN_SAVING`] of its bytes.
    pub fn worth_it(filter: &[i8], rows: usize) -> Option<SparseFilter> {
        let sparse = SparseFilter::encode(filter, rows);
        (sparse.bytes() as f64 <= (1.0 - MIN_SAVING) * sparse.dense_bytes as f64).then_some(sparse)
    }

    /// Bytes of mask and values.
    pub fn bytes(&self) -> usize {
        4 * self.mask.len() + self.values.len()
    }
}

/// Each row's bias with the input zero point's share folded in: `bias[r] − z_in · Σ_k w[r][k]`
/// in wrapping int32, so that a kernel summing `x · w` over stored weights only (inputs and
/// padding taps holding `z_in` unshifted) reaches TFLite's `bias + Σ (x − z_in) · w`.
pub fn folded_row_bias(filter: &[i8], rows: usize, bias: &[i32], zero_point: i32) -> Vec<i32> {
    let row = filter.len() / rows.max(1);
    (0..rows)
        .map(|r| {
            let sum: i32 = filter[r * row..(r + 1) * row]
                .iter()
                .map(|&w| i32::from(w))
                .sum();
            let b = bias.get(r).copied().unwrap_or(0);
            b.wrapping_sub(zero_point.wrapping_mul(sum))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dense filter back from its bitmap format.
    fn decode(s: &SparseFilter, rows: usize) -> Vec<i8> {
        let row = s.dense_bytes / rows;
        let words = row.div_ceil(32);
        let mut values = s.values.iter();
        let mut out = vec![0i8; s.dense_bytes];
        for r in 0..rows {
            for k in 0..row {
                if s.mask[r * words + k / 32] & (1 << (31 - k % 32)) != 0 {
                    out[r * row + k] = *values.next().expect("a value per set bit");
                }
            }
        }
        out
    }

    #[test]
    fn bitmap_round_trips_and_counts_bytes() {
        // Two rows of forty: masks take two words a row.
        let mut filter = vec![0i8; 80];
        filter[1] = 3;
        filter[33] = -7;
        filter[40 + 39] = 127;
        let s = SparseFilter::encode(&filter, 2);
        assert_eq!(s.mask, vec![1 << 30, 1 << 30, 0, 1 << 24]);
        assert_eq!(s.values, vec![3, -7, 127]);
        assert_eq!(s.bytes(), 19);
        assert_eq!(decode(&s, 2), filter);
        assert!(SparseFilter::worth_it(&filter, 2).is_some());
        // Dense rows never pay.
        let dense: Vec<i8> = (1..=80).map(|v| v as i8).collect();
        assert!(SparseFilter::worth_it(&dense, 2).is_none());
    }

    #[test]
    fn folded_bias_removes_the_zero_point_share() {
        let filter = [1i8, -2, 3, 4, 0, 0];
        let bias = [10, -5];
        let folded = folded_row_bias(&filter, 2, &bias, 3);
        assert_eq!(folded, vec![10 - 3 * 2, -5 - 3 * 4]);
        // Σ (x − z) w + b == Σ x w + folded for any x.
        let x = [7i32, -128, 100];
        for r in 0..2 {
            let w = &filter[r * 3..(r + 1) * 3];
            let exact: i32 = bias[r]
                + x.iter()
                    .zip(w)
                    .map(|(x, &w)| (x - 3) * w as i32)
                    .sum::<i32>();
            let fast: i32 = folded[r] + x.iter().zip(w).map(|(x, &w)| x * w as i32).sum::<i32>();
            assert_eq!(exact, fast);
        }
    }
}
