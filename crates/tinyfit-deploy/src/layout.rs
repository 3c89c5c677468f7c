//! Moving int8 tensors between the graph's layouts (PyTorch: channels first) and the runtime's
//! and TFLite's (channels last).
//!
//! Every conversion tinyfit needs — OIHW ↔ OHWI filters, depthwise `[O, kh·kw]` ↔ `[kh·kw, O]`,
//! and the columns of a linear layer reading a flattened `[C, H, W]` map (CHW ↔ HWC order) — is
//! the same operation: each of a run of `[a][b]` blocks becomes `[b][a]`.

/// Transposes each of the consecutive `[a][b]` blocks of `data` into `[b][a]`.
pub(crate) fn transpose_blocks<T: Copy>(data: &[T], a: usize, b: usize) -> Vec<T> {
    let block = a * b;
    if block == 0 {
        return data.to_vec();
    }
    let mut out = Vec::with_capacity(data.len());
    for chunk in data.chunks(block) {
        for j in 0..b {
            for i in 0..a {
                out.push(chunk[i * b + j]);
            }
        }
    }
    out
}

/// Whether flattening a map of `channels` × `pixels` orders its elements differently
/// channels-first (the graph) and channels-last (the runtime, TFLite).
pub(crate) fn flattening_reorders(channels: usize, pixels: usize) -> bool {
    channels > 1 && pixels > 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposing_twice_restores_the_data() {
        // Two [2][3] blocks.
        let data = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
        let t = transpose_blocks(&data, 2, 3);
        assert_eq!(t, [1, 4, 2, 5, 3, 6, 7, 10, 8, 11, 9, 12]);
        assert_eq!(transpose_blocks(&t, 3, 2), data);
    }
}
