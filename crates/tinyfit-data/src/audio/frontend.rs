//! The MLPerf Tiny keyword-spotting front-end, exactly as TensorFlow computes it.
//!
//! 1. int16 samples as floats divided by their (signed) maximum, zero-padded to 1 s;
//! 2. 49 frames of 480 samples, hop 320, no end padding, each times a periodic Hann window;
//! 3. `|rfft|` with 512 points → 257 bins;
//! 4. TensorFlow's `linear_to_mel_weight_matrix` (40 bands, 20–4000 Hz, mel = 1127·ln(1 + f/700),
//!    triangles over `linspace(0, 8000, 257)[1:]`, the DC bin weighted zero);
//! 5. `log(mel + 1e-6)` — the log-mel (LFBE) features, 49×40;
//! 6. `tf.signal.mfccs_from_log_mel_spectrograms`: unnormalised DCT-II times `1/√(2·40)`, first
//!    10 coefficients — the MFCC features, 49×10.
//!
//! Computed in f64 from a plan built once; the FFT comes from `realfft`.

use std::f64::consts::PI;
use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};
use serde::{Deserialize, Serialize};

const RATE: f64 = 16_000.0;
const CLIP: usize = 16_000;
const FRAME: usize = 480;
const HOP: usize = 320;
const FFT: usize = 512;
const BINS: usize = FFT / 2 + 1;
const FRAMES: usize = 1 + (CLIP - FRAME) / HOP;
const MELS: usize = 40;
const MFCCS: usize = 10;
const LOWER_HZ: f64 = 20.0;
const UPPER_HZ: f64 = 4_000.0;

/// Which features the front-end produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Features {
    /// 49×10 MFCCs (the MLPerf Tiny KWS input).
    #[default]
    Mfcc,
    /// 49×40 log-mel filterbank energies.
    LogMel,
}

impl Features {
    /// Shape of one clip's features, `[frames, coefficients]`.
    pub fn shape(self) -> [usize; 2] {
        match self {
            Features::Mfcc => [FRAMES, MFCCS],
            Features::LogMel => [FRAMES, MELS],
        }
    }
}

/// A precomputed front-end plan.
pub struct FrontEnd {
    window: Vec<f64>,
    /// Per FFT bin, its non-zero mel weights as `(band, weight)` (each bin feeds at most two
    /// overlapping triangles, so this is ~20x less work than the dense matrix).
    mel: Vec<Vec<(usize, f64)>>,
    /// `[MFCCS][MELS]` DCT-II rows, scaled.
    dct: Vec<[f64; MELS]>,
    fft: Arc<dyn RealToComplex<f64>>,
}

impl Default for FrontEnd {
    fn default() -> Self {
        Self::new()
    }
}

impl FrontEnd {
    /// The MLPerf Tiny KWS front-end for 1-second 16 kHz clips.
    pub fn new() -> Self {
        let window = (0..FRAME)
            .map(|n| 0.5 - 0.5 * (2.0 * PI * n as f64 / FRAME as f64).cos())
            .collect();
        let dct = (0..MFCCS)
            .map(|k| {
                let mut row = [0.0; MELS];
                for (n, w) in row.iter_mut().enumerate() {
                    *w = 2.0 * (PI * k as f64 * (2 * n + 1) as f64 / (2 * MELS) as f64).cos()
                        / ((2 * MELS) as f64).sqrt();
                }
                row
            })
            .collect();
        FrontEnd {
            window,
            mel: mel_matrix()
                .iter()
                .map(|row| {
                    row.iter()
                        .copied()
                        .enumerate()
                        .filter(|&(_, w)| w > 0.0)
                        .collect()
                })
                .collect(),
            dct,
            fft: RealFftPlanner::<f64>::new().plan_fft_forward(FFT),
        }
    }

    /// Features of one clip of at most 16,000 samples, row-major `[frames, coefficients]`.
    ///
    /// Returns `None` for a clip longer than one second (the caller names the file).
    pub fn compute(&self, samples: &[i16], features: Features) -> Option<Vec<f32>> {
        if samples.len() > CLIP {
            return None;
        }
        let peak = samples.iter().copied().max().unwrap_or(0);
        // A clip with no positive sample has no scale to divide by; it stays as recorded.
        let scale = if peak > 0 { peak as f64 } else { 1.0 };
        let mut signal = vec![0f64; CLIP];
        for (s, &x) in signal.iter_mut().zip(samples) {
            *s = x as f64 / scale;
        }
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut out = Vec::with_capacity(FRAMES * features.shape()[1]);
        for f in 0..FRAMES {
            let frame = &signal[f * HOP..f * HOP + FRAME];
            input.iter_mut().for_each(|v| *v = 0.0);
            for ((dst, &x), &w) in input.iter_mut().zip(frame).zip(&self.window) {
                *dst = x * w;
            }
            self.fft
                .process(&mut input, &mut spectrum)
                .expect("buffers come from the plan");
            let mut log_mel = [0f64; MELS];
            for (bin, c) in spectrum.iter().enumerate() {
                let magnitude = c.norm();
                for &(band, w) in &self.mel[bin] {
                    log_mel[band] += magnitude * w;
                }
            }
            log_mel.iter_mut().for_each(|m| *m = (*m + 1e-6).ln());
            match features {
                Features::LogMel => out.extend(log_mel.iter().map(|&v| v as f32)),
                Features::Mfcc => {
                    out.extend(self.dct.iter().map(|row| {
                        row.iter().zip(&log_mel).map(|(a, b)| a * b).sum::<f64>() as f32
                    }))
                }
            }
        }
        Some(out)
    }
}

fn hz_to_mel(hz: f64) -> f64 {
    1127.0 * (1.0 + hz / 700.0).ln()
}

/// TensorFlow's `linear_to_mel_weight_matrix(40, 257, 16000, 20, 4000)` as `[bin][band]`.
fn mel_matrix() -> Vec<[f64; MELS]> {
    let (lo, hi) = (hz_to_mel(LOWER_HZ), hz_to_mel(UPPER_HZ));
    let edges: Vec<f64> = (0..MELS + 2)
        .map(|i| lo + (hi - lo) * i as f64 / (MELS + 1) as f64)
        .collect();
    let mut matrix = vec![[0.0; MELS]; BINS];
    // Bin 0 (DC) keeps zero weights; bins 1.. sit at linspace(0, nyquist, BINS)[1..].
    for (bin, row) in matrix.iter_mut().enumerate().skip(1) {
        let mel = hz_to_mel(bin as f64 * (RATE / 2.0) / (BINS - 1) as f64);
        for (band, w) in row.iter_mut().enumerate() {
            let (left, center, right) = (edges[band], edges[band + 1], edges[band + 2]);
            let rising = (mel - left) / (center - left);
            let falling = (right - mel) / (right - center);
            *w = rising.min(falling).max(0.0);
        }
    }
    matrix
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_silence() {
        let fe = FrontEnd::new();
        let mfcc = fe.compute(&[0; 16_000], Features::Mfcc).unwrap();
        assert_eq!(mfcc.len(), 49 * 10);
        // All-zero input: every log-mel is ln(1e-6); only c0 is non-zero.
        let c0 = 2.0 * 40.0 * (1e-6f64).ln() / 80f64.sqrt();
        assert!((mfcc[0] as f64 - c0).abs() < 1e-4);
        assert!(mfcc[1].abs() < 1e-4);
        assert!(fe.compute(&[0; 16_001], Features::Mfcc).is_none());
        assert_eq!(
            fe.compute(&[1; 800], Features::LogMel).unwrap().len(),
            49 * 40
        );
    }

    #[test]
    fn mel_bands_are_triangles_that_peak_at_one() {
        let m = mel_matrix();
        assert!(m[0].iter().all(|&w| w == 0.0));
        for band in 0..MELS {
            let peak = m.iter().map(|r| r[band]).fold(0.0, f64::max);
            assert!(peak > 0.5 && peak <= 1.0, "band {band} peaks at {peak}");
        }
        // Nothing above 4 kHz (bin 128 = 4 kHz).
        assert!(m[129..].iter().all(|r| r.iter().all(|&w| w == 0.0)));
    }
}
