"""Independent NumPy restatement of the MLPerf Tiny KWS front-end (TensorFlow's formulas).

Usage: python3 mfcc_reference.py CLIP.wav...   prints {"CLIP.wav": [49*10 floats], ...} as JSON.

Follows tf.signal.stft / linear_to_mel_weight_matrix / mfccs_from_log_mel_spectrograms as the
MLPerf Tiny reference feeds them, written from their definitions, not from tinyfit's code.
"""
import json
import sys
import wave

import numpy as np


def read_clip(path):
    with wave.open(path, "rb") as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2 and w.getframerate() == 16000
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def hertz_to_mel(f):
    return 1127.0 * np.log1p(f / 700.0)


def mel_weight_matrix(num_mel_bins=40, num_spectrogram_bins=257, sample_rate=16000,
                      lower_edge_hertz=20.0, upper_edge_hertz=4000.0):
    nyquist = sample_rate / 2.0
    linear_frequencies = np.linspace(0.0, nyquist, num_spectrogram_bins)[1:]
    spectrogram_bins_mel = hertz_to_mel(linear_frequencies)[:, np.newaxis]
    band_edges_mel = np.linspace(hertz_to_mel(lower_edge_hertz), hertz_to_mel(upper_edge_hertz),
                                 num_mel_bins + 2)
    lower = band_edges_mel[:-2][np.newaxis, :]
    center = band_edges_mel[1:-1][np.newaxis, :]
    upper = band_edges_mel[2:][np.newaxis, :]
    lower_slopes = (spectrogram_bins_mel - lower) / (center - lower)
    upper_slopes = (upper - spectrogram_bins_mel) / (upper - center)
    weights = np.maximum(0.0, np.minimum(lower_slopes, upper_slopes))
    return np.pad(weights, [[1, 0], [0, 0]])


def mfcc(samples):
    x = samples.astype(np.float64)
    x = x / np.max(x) if np.max(x) > 0 else x
    x = np.pad(x, (0, 16000 - len(x)))
    frames = np.stack([x[i * 320:i * 320 + 480] for i in range(1 + (16000 - 480) // 320)])
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(480) / 480)
    magnitude = np.abs(np.fft.rfft(frames * window, n=512, axis=-1))
    log_mel = np.log(magnitude @ mel_weight_matrix() + 1e-6)
    n = log_mel.shape[-1]
    k = np.arange(n)[:, np.newaxis]
    dct = 2.0 * np.cos(np.pi * k * (2 * np.arange(n)[np.newaxis, :] + 1) / (2.0 * n))
    return (log_mel @ dct.T / np.sqrt(2.0 * n))[:, :10]


if __name__ == "__main__":
    print(json.dumps({p: mfcc(read_clip(p)).ravel().tolist() for p in sys.argv[1:]}))
