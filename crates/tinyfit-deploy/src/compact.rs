//! Compact filter formats of the generated C, for filters that int8 storage wastes: sparse ones
//! (magnitude pruning) and ones whose values need fewer than eight bits (4-bit, ternary and
//! binary quantisation). The runtime computes with the same int8 values; only storage differs.
//!
//! **Sparse**: per output channel, a bitmap of which weights are non-zero, then the non-zero
//! weights alone, row after row.
//!
//! A bitmap costs one bit a weight whatever the pattern, so at density d a row of n weights
//! takes n/8 + d·n bytes instead of n (rows padded to whole 32-bit words of mask, which the
//! kernels scan with one count-leading-zeros a stored weight): a saving from d < 7/8, two
//! thirds of the filter at d = 0.2. Index lists (CSR) cost a byte or two a non-zero and only pay below d ≈ 1/2; blocks
//! need structured sparsity that magnitude pruning does not give. The kernels
//! (`tf_conv2d_sparse`, `tf_fully_connected_sparse`) visit the set bits of each mask byte, so
//! their work follows the non-zeros, not the dense size.

//!
//! **Packed**: every weight in 1, 2 or 4 bits (two's complement; one bit stands for −1 or +1),
//! each row starting on a byte, when every value of the filter fits. Rows of 2 and 4 bits go in
//! groups of G = 32 / bits weights to a word, byte j holding weight 4m + j of the group in its
//! field m: shifting field m to the top of every byte then yields, byte for byte, the weights
//! that meet input word m of the group, which the DSP kernel multiplies two at a time.

/// Below this saving of filter bytes the compact kernels' per-weight decoding costs more time
/// than the flash is worth, and the generator keeps the dense filter and its faster kernels.
pub const MIN_SAVING: f64 = 0.25;

/// A filter in one of the compact formats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompactFilter {
    /// Bitmap and non-zero values.
    Sparse(SparseFilter),
    /// Fewer bits a weight.
    Packed(PackedFilter),
}

impl CompactFilter {
    /// The smallest compact encoding of `filter` (`rows` rows), if it saves at least
    /// [`MIN_SAVING`] of the dense bytes.
    pub fn choose(filter: &[i8], rows: usize) -> Option<CompactFilter> {
        let sparse = CompactFilter::Sparse(SparseFilter::encode(filter, rows));
        let packed = PackedFilter::encode(filter, rows).map(CompactFilter::Packed);
        let best = match packed {
            Some(p) if p.bytes() < sparse.bytes() => p,
            _ => sparse,
        };
        (best.bytes() as f64 <= (1.0 - MIN_SAVING) * filter.len() as f64).then_some(best)
    }

    /// Bytes stored.
    pub fn bytes(&self) -> usize {
        match self {
            CompactFilter::Sparse(s) => s.bytes(),
            CompactFilter::Packed(p) => p.data.len(),
        }
    }

    /// The format's name in reports: `sparse`, `packed4`, `packed2`, `packed1`.
    pub fn format(&self) -> String {
        match self {
            CompactFilter::Sparse(_) => "sparse".into(),
            CompactFilter::Packed(p) => format!("packed{}", p.bits),
        }
    }
}

/// A filter whose values all fit in `bits` bits, packed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedFilter {
    /// 1 (values −1 and +1 only), 2 ([−2, 1]) or 4 ([−8, 7]).
    pub bits: u32,
    /// The rows, each starting on a byte: for 1 bit, `ceil(row / 8)` bytes, weight k in bit
    /// `k % 8` of byte `k / 8`; for 2 and 4 bits, `4 · ceil(row / G)` bytes (G = 32 / bits),
    /// weight `G·g + 4m + j` in bits `m · bits ..` of byte `4g + j`.
    pub data: Vec<u8>,
}

impl PackedFilter {
    /// Packs `filter` (`rows` rows) in the fewest bits its values need, if fewer than eight.
    pub fn encode(filter: &[i8], rows: usize) -> Option<PackedFilter> {
        let bits = if filter.iter().all(|&w| w == -1 || w == 1) {
            1
        } else if filter.iter().all(|&w| (-2..=1).contains(&w)) {
            2
        } else if filter.iter().all(|&w| (-8..=7).contains(&w)) {
            4
        } else {
            return None;
        };
        let row = filter.len() / rows.max(1);
        let group = 32 / bits as usize;
        let row_bytes = if bits == 1 {
            row.div_ceil(8)
        } else {
            4 * row.div_ceil(group)
        };
        let mut data = vec![0u8; rows * row_bytes];
        for (r, weights) in filter.chunks(row.max(1)).enumerate().take(rows) {
            for (k, &w) in weights.iter().enumerate() {
                let code = if bits == 1 {
                    u8::from(w > 0)
                } else {
                    (w as u8) & ((1 << bits) - 1)
                };
                let (byte, shift) = if bits == 1 {
                    (k / 8, k % 8)
                } else {
                    (k / group * 4 + k % 4, bits as usize * (k % group / 4))
                };
                data[r * row_bytes + byte] |= code << shift;
            }
        }
        Some(PackedFilter { bits, data })
    }
}

/// A filter of `rows` rows in the bitmap format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparseFilter {
    /// `rows × ceil(row / 32)` words; bit 31 − k (most significant first) of a row's word j
    /// says whether weight 32j + k is stored.
    pub mask: Vec<u32>,
    /// The non-zero weights in row-major order.
    pub values: Vec<i8>,
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
        SparseFilter { mask, values }
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
    fn decode(s: &SparseFilter, rows: usize, len: usize) -> Vec<i8> {
        let row = len / rows;
        let words = row.div_ceil(32);
        let mut values = s.values.iter();
        let mut out = vec![0i8; len];
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
        assert_eq!(decode(&s, 2, 80), filter);
        assert!(matches!(
            CompactFilter::choose(&filter, 2),
            Some(CompactFilter::Sparse(_))
        ));
        // Dense rows of wide values never pay.
        let dense: Vec<i8> = (1..=80).map(|v| v as i8).collect();
        assert!(CompactFilter::choose(&dense, 2).is_none());
    }

    #[test]
    fn packing_takes_the_fewest_bits_the_values_need() {
        let packed = |f: &[i8], rows| PackedFilter::encode(f, rows).unwrap();
        // Binary: bit set for +1; rows of three start on their own byte.
        let b = packed(&[1, -1, 1, -1, -1, 1], 2);
        assert_eq!((b.bits, b.data.clone()), (1, vec![0b101, 0b100]));
        // Ternary fits two bits: 1 → 01, 0 → 00, −1 → 11; sixteen to a word, byte j holding
        // weights j, j + 4, j + 8, j + 12.
        let t = packed(&[1, 0, -1, 1, -1], 1);
        assert_eq!(
            (t.bits, t.data.clone()),
            (2, vec![0b11_01, 0b00, 0b11, 0b01])
        );
        // Four bits in groups of eight: byte j holds weights j and j + 4; 7 → 0111, −8 → 1000.
        let f = packed(&[7, -8, -1, 0, 1, 2, 3, 4, 5], 1);
        assert_eq!(
            (f.bits, f.data.clone()),
            (4, vec![0x17, 0x28, 0x3f, 0x40, 0x05, 0, 0, 0])
        );
        assert!(PackedFilter::encode(&[8, 0], 1).is_none());
        // Dense 4-bit weights pack to half; a mostly-zero filter prefers the bitmap.
        let four: Vec<i8> = (0..64).map(|k| (k % 15) as i8 - 7).collect();
        assert_eq!(CompactFilter::choose(&four, 2).unwrap().format(), "packed4");
        let mut sparse = vec![0i8; 64];
        sparse[5] = 3;
        assert_eq!(
            CompactFilter::choose(&sparse, 2).unwrap().format(),
            "sparse"
        );
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
