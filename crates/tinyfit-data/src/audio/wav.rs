//! 16-bit mono WAV files via `hound`, with errors that name the file.

use std::path::Path;

use crate::error::{DataError, Result};

/// Reads a mono 16-bit PCM WAV recorded at `rate` Hz.
pub fn read_wav_i16(path: &Path, rate: u32) -> Result<Vec<i16>> {
    let invalid = |message: String| DataError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let reader = hound::WavReader::open(path)
        .map_err(|e| invalid(format!("not a readable WAV file: {e}")))?;
    let spec = reader.spec();
    if spec.sample_rate != rate {
        return Err(invalid(format!(
            "sampled at {} Hz; expected {rate} Hz",
            spec.sample_rate
        )));
    }
    if spec.channels != 1
        || spec.bits_per_sample != 16
        || spec.sample_format != hound::SampleFormat::Int
    {
        return Err(invalid(format!(
            "{} channel(s) of {}-bit {:?} samples; expected mono 16-bit PCM",
            spec.channels, spec.bits_per_sample, spec.sample_format
        )));
    }
    let declared = reader.len() as usize;
    let samples = reader
        .into_samples::<i16>()
        .collect::<std::result::Result<Vec<i16>, _>>()
        .map_err(|e| invalid(format!("truncated or corrupt sample data: {e}")))?;
    if samples.len() != declared {
        return Err(invalid(format!(
            "holds {} samples but its header declares {declared} (truncated file)",
            samples.len()
        )));
    }
    Ok(samples)
}
