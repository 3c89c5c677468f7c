//! Speech Commands: the MFCC front-end against an independent NumPy restatement of TensorFlow's
//! formulas, speaker-disjoint splits, and errors on bad clips.

use std::path::{Path, PathBuf};
use std::process::Command;

use tinyfit_data::audio::{Features, FrontEnd, read_wav_i16};
use tinyfit_data::{DataConfig, SpeechCommandsConfig};

fn speech_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/speech_commands_v0.02_test")
}

#[test]
fn mfcc_matches_numpy_reference_within_1e_3() {
    let clips: Vec<PathBuf> = [
        "yes/022cd682_nohash_0.wav",
        "stop/0c40e715_nohash_0.wav",
        "left/022cd682_nohash_1.wav",
        "_silence_/1024.wav",
        "_unknown_/backward_0c540988_nohash_0.wav",
    ]
    .iter()
    .map(|c| speech_dir().join(c))
    .collect();
    for c in &clips {
        assert!(c.is_file(), "missing clip {}", c.display());
    }
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference/mfcc_reference.py");
    let out = Command::new("python3")
        .arg(&script)
        .args(&clips)
        .output()
        .expect("python3 runs (CI installs it with numpy)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let fe = FrontEnd::new();
    for clip in &clips {
        let ours = fe
            .compute(&read_wav_i16(clip, 16_000).unwrap(), Features::Mfcc)
            .unwrap();
        let theirs: Vec<f64> = reference[clip.to_str().unwrap()]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(ours.len(), theirs.len());
        let worst = ours
            .iter()
            .zip(&theirs)
            .map(|(a, b)| (*a as f64 - b).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-3, "{}: max |diff| {worst}", clip.display());
    }
}

#[test]
fn splits_are_speaker_disjoint() {
    let config = DataConfig::SpeechCommands(SpeechCommandsConfig::new(speech_dir()));
    let splits = config.load(None).unwrap();
    assert_eq!(splits.train.sample_shape, vec![1, 49, 10]);
    assert_eq!(
        splits.train.len() + splits.val.len() + splits.test.len(),
        4_890
    );
    let (train, val, test) = (
        splits.train.group_ids(),
        splits.val.group_ids(),
        splits.test.group_ids(),
    );
    for g in &val {
        assert!(
            !train.contains(g) && !test.contains(g),
            "speaker {g} in two splits"
        );
    }
    for g in &test {
        assert!(!train.contains(g), "speaker {g} in train and test");
    }
    // About 10 % of the clips each go to validation and test.
    for part in [&splits.val, &splits.test] {
        assert!((300..=700).contains(&part.len()), "{} clips", part.len());
    }
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, to).unwrap();
}

/// A two-class layout in a temporary folder with one clip per class.
fn tiny_layout(dir: &Path) -> SpeechCommandsConfig {
    copy(
        &speech_dir().join("yes/022cd682_nohash_0.wav"),
        &dir.join("yes/a_nohash_0.wav"),
    );
    copy(
        &speech_dir().join("no/03401e93_nohash_0.wav"),
        &dir.join("no/b_nohash_0.wav"),
    );
    let mut c = SpeechCommandsConfig::new(dir);
    c.labels = vec!["yes".into(), "no".into()];
    c
}

#[test]
fn truncated_wav_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_layout(dir.path());
    let clip = dir.path().join("no/b_nohash_0.wav");
    let bytes = std::fs::read(&clip).unwrap();
    std::fs::write(&clip, &bytes[..bytes.len() / 2 + 1]).unwrap();
    let err = config.load().unwrap_err().to_string();
    assert!(
        err.contains("b_nohash_0.wav") && err.contains("truncated"),
        "{err}"
    );
}

#[test]
fn wrong_sample_rate_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny_layout(dir.path());
    let clip = dir.path().join("yes/a_nohash_0.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&clip, spec).unwrap();
    for i in 0..8_000 {
        w.write_sample(((i % 100) * 100) as i16).unwrap();
    }
    w.finalize().unwrap();
    let err = config.load().unwrap_err().to_string();
    assert!(
        err.contains("a_nohash_0.wav") && err.contains("8000 Hz; expected 16000 Hz"),
        "{err}"
    );
}

#[test]
fn empty_class_folder_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = tiny_layout(dir.path());
    std::fs::create_dir(dir.path().join("up")).unwrap();
    config.labels.push("up".into());
    let err = config.load().unwrap_err().to_string();
    assert!(
        err.contains("class folder 'up' holds no .wav files"),
        "{err}"
    );
}

#[test]
fn augmentation_only_grows_training() {
    let plain = DataConfig::SpeechCommands(SpeechCommandsConfig::new(speech_dir()))
        .load(None)
        .unwrap();
    let mut config = SpeechCommandsConfig::new(speech_dir());
    config.augment = Some(tinyfit_data::audio::Augment {
        copies: 1,
        time_shift_ms: 100.0,
        noise_probability: 0.8,
        noise_volume: 0.1,
        seed: 0,
    });
    let augmented = DataConfig::SpeechCommands(config).load(None).unwrap();
    assert_eq!(augmented.train.len(), 2 * plain.train.len());
    assert_eq!(augmented.val.len(), plain.val.len());
    assert_eq!(augmented.test.len(), plain.test.len());
    assert_eq!(augmented.train.group_ids(), plain.train.group_ids());
}
