//! Google Speech Commands in its published layout: one folder per label of 16 kHz WAV clips
//! named `SPEAKER_nohash_N.wav`.
//!
//! Each clip becomes `[1, 49, 10]` MFCCs (or `[1, 49, 40]` log-mel energies) from the MLPerf
//! Tiny front-end. Splits are speaker-disjoint: a clip goes to validation, test or training by
//! the SHA-1 of its speaker id, exactly as the dataset's own `which_set` does, so every clip of
//! a speaker lands in the same split.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

use crate::audio::{Augment, Augmenter, Features, FrontEnd, read_wav_i16};
use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::split::HeldOut;

/// Where the clips are and how to featurise and split them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeechCommandsConfig {
    /// Folder with one sub-folder per label.
    pub path: PathBuf,
    /// Labels (sub-folder names) in class order; the MLPerf Tiny KWS order by default.
    #[serde(default = "default_labels")]
    pub labels: Vec<String>,
    /// Front-end output.
    #[serde(default)]
    pub features: Features,
    /// How speakers are assigned to splits.
    #[serde(default)]
    pub split: SpeakerSplitMethod,
    /// Percentage of speakers (by hash) for validation.
    #[serde(default = "ten")]
    pub validation_percent: f64,
    /// Percentage of speakers (by hash) for test.
    #[serde(default = "ten")]
    pub test_percent: f64,
    /// Training-set augmentation (time shift, background noise); none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub augment: Option<Augment>,
    /// The label whose clips are background noise for augmentation.
    #[serde(default = "silence")]
    pub noise_label: String,
}

fn silence() -> String {
    "_silence_".into()
}

fn default_labels() -> Vec<String> {
    [
        "down",
        "go",
        "left",
        "no",
        "off",
        "on",
        "right",
        "stop",
        "up",
        "yes",
        "_silence_",
        "_unknown_",
    ]
    .map(String::from)
    .to_vec()
}

/// How a speaker's hash picks its split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SpeakerSplitMethod {
    /// A SHA-1 bucket of the speaker id independent of Google's: it also divides a folder that
    /// Google's rule already filled from one bucket, such as the canonical test set.
    #[default]
    Hash,
    /// Google's `which_set`, the dataset's canonical split (for the full dataset).
    WhichSet,
}

fn ten() -> f64 {
    10.0
}

/// The split a clip belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetName {
    /// Training.
    Training,
    /// Validation.
    Validation,
    /// Test.
    Testing,
}

/// The speaker of a clip: the hash before `_nohash_` (`022cd682_nohash_0.wav`), without the
/// word prefix that the test set's `_unknown_` folder adds (`backward_0c540988_nohash_0.wav`);
/// a name without `_nohash_` (the `_silence_` clips) is its own speaker.
pub fn speaker_of(file_name: &str) -> &str {
    match file_name.split_once("_nohash_") {
        Some((prefix, _)) => prefix.rsplit('_').next().unwrap_or(prefix),
        None => file_name,
    }
}

/// Google's `which_set`: SHA-1 of the speaker id, taken modulo 2^27 as a percentage. The
/// speaker id is [`speaker_of`] the file name, so a speaker's `_unknown_` clips follow the rest.
pub fn which_set(file_name: &str, validation_percent: f64, test_percent: f64) -> SetName {
    set_for(
        which_set_percentage(file_name),
        validation_percent,
        test_percent,
    )
}

fn which_set_percentage(file_name: &str) -> f64 {
    const MAX_NUM_WAVS_PER_CLASS: u64 = (1 << 27) - 1;
    let digest = Sha1::digest(speaker_of(file_name).as_bytes());
    // int(hexdigest, 16) % 2^27 keeps the low 27 bits of the big-endian digest.
    let low = u32::from_be_bytes([digest[16], digest[17], digest[18], digest[19]]) as u64;
    let bucket = low % (MAX_NUM_WAVS_PER_CLASS + 1);
    bucket as f64 * (100.0 / MAX_NUM_WAVS_PER_CLASS as f64)
}

fn set_for(percentage: f64, validation_percent: f64, test_percent: f64) -> SetName {
    if percentage < validation_percent {
        SetName::Validation
    } else if percentage < validation_percent + test_percent {
        SetName::Testing
    } else {
        SetName::Training
    }
}

impl SpeechCommandsConfig {
    /// The MLPerf labels and MFCC features on the dataset at `path`, 10 % / 10 % of speakers held out.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SpeechCommandsConfig {
            path: path.into(),
            labels: default_labels(),
            features: Features::default(),
            split: SpeakerSplitMethod::default(),
            validation_percent: ten(),
            test_percent: ten(),
            augment: None,
            noise_label: silence(),
        }
    }

    /// The split of a clip, by its speaker.
    pub fn set_of(&self, file_name: &str) -> SetName {
        let percentage = match self.split {
            SpeakerSplitMethod::WhichSet => which_set_percentage(file_name),
            SpeakerSplitMethod::Hash => {
                // The first 8 digest bytes: Google's rule uses the last 27 bits.
                let digest = Sha1::digest(speaker_of(file_name).as_bytes());
                let high = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
                high as f64 / u64::MAX as f64 * 100.0
            }
        };
        set_for(percentage, self.validation_percent, self.test_percent)
    }

    /// Reads and featurises every clip; `groups` number the speakers. Also returns the
    /// speakers that `which_set` assigns to validation and to test.
    pub fn load(&self) -> Result<(Dataset, HeldOut)> {
        if !self.path.is_dir() {
            return Err(DataError::Missing {
                what: "Speech Commands folder",
                path: self.path.clone(),
            });
        }
        let fe = FrontEnd::new();
        let [frames, coefficients] = self.features.shape();
        let mut data = Dataset::empty(vec![1, frames, coefficients], self.labels.clone());
        let mut speakers: HashMap<String, u32> = HashMap::new();
        let mut split = HeldOut::default();
        let noise = match &self.augment {
            Some(_) => self.training_noise()?,
            None => Vec::new(),
        };
        let mut augmenter = self
            .augment
            .as_ref()
            .map(|a| (a.copies, Augmenter::new(a, &noise)));
        for (label, name) in self.labels.iter().enumerate() {
            let folder = self.path.join(name);
            let clips = wav_files(&folder)?;
            if clips.is_empty() {
                return Err(DataError::Invalid {
                    path: folder,
                    message: format!("class folder '{name}' holds no .wav files"),
                });
            }
            for clip in clips {
                let samples = read_wav_i16(&clip, 16_000)?;
                let features =
                    fe.compute(&samples, self.features)
                        .ok_or_else(|| DataError::Invalid {
                            path: clip.clone(),
                            message: format!(
                                "{} samples; expected at most 16000 (1 s)",
                                samples.len()
                            ),
                        })?;
                let file = clip
                    .file_name()
                    .and_then(|f| f.to_str())
                    .unwrap_or_default();
                let next = speakers.len() as u32;
                let speaker = *speakers.entry(speaker_of(file).to_string()).or_insert(next);
                if speaker == next {
                    match self.set_of(file) {
                        SetName::Validation => split.validation.push(speaker),
                        SetName::Testing => split.test.push(speaker),
                        SetName::Training => {}
                    }
                }
                data.push(&features, label as u32, speaker);
                if let Some((copies, aug)) = &mut augmenter
                    && self.set_of(file) == SetName::Training
                {
                    for _ in 0..*copies {
                        let perturbed = aug.perturb(&samples, 16_000);
                        let features = fe
                            .compute(&perturbed, self.features)
                            .expect("a perturbed clip keeps its length");
                        data.push(&features, label as u32, speaker);
                    }
                }
            }
        }
        Ok((data, split))
    }
}

impl SpeechCommandsConfig {
    /// The noise clips of training speakers, for augmentation.
    fn training_noise(&self) -> Result<Vec<Vec<i16>>> {
        wav_files(&self.path.join(&self.noise_label))?
            .into_iter()
            .filter(|clip| {
                let file = clip
                    .file_name()
                    .and_then(|f| f.to_str())
                    .unwrap_or_default();
                self.set_of(file) == SetName::Training
            })
            .map(|clip| read_wav_i16(&clip, 16_000))
            .collect()
    }
}

/// The `.wav` files of a folder, sorted by name.
fn wav_files(folder: &Path) -> Result<Vec<PathBuf>> {
    if !folder.is_dir() {
        return Err(DataError::Missing {
            what: "class folder",
            path: folder.to_path_buf(),
        });
    }
    let entries = std::fs::read_dir(folder).map_err(|source| DataError::Io {
        path: folder.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("wav")))
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speaker_is_the_hash_prefix() {
        assert_eq!(speaker_of("022cd682_nohash_0.wav"), "022cd682");
        assert_eq!(speaker_of("backward_0c540988_nohash_0.wav"), "0c540988");
        assert_eq!(speaker_of("1024.wav"), "1024.wav");
    }

    #[test]
    fn which_set_matches_the_reference_arithmetic() {
        // sha1("022cd682") ends in ...; the bucket arithmetic is checked against a direct
        // big-integer computation of int(hexdigest, 16) % 2^27.
        let digest = Sha1::digest(b"022cd682");
        let mut rem: u64 = 0;
        for byte in digest.iter() {
            rem = (rem * 256 + *byte as u64) % (1 << 27);
        }
        let pct = rem as f64 * (100.0 / ((1u64 << 27) - 1) as f64);
        let want = if pct < 10.0 {
            SetName::Validation
        } else if pct < 20.0 {
            SetName::Testing
        } else {
            SetName::Training
        };
        assert_eq!(which_set("022cd682_nohash_3.wav", 10.0, 10.0), want);
    }
}
