//! Stress-Predict on the real recordings: the tag rule against the published per-second labels,
//! subject-disjoint windows, and errors on bad files.

use std::path::{Path, PathBuf};

use tinyfit_data::{Splits, StressConfig, read_text, stress_intervals};

fn stress_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/stress_predict")
}

/// `Processed_data`'s labels follow the tags for every subject but 6, 17, 18 and 30, whose
/// processed labels were set from other timings.
#[test]
fn tag_rule_reproduces_processed_labels() {
    let processed = stress_dir().join("Processed_data/Improved_All_Combined_hr_rsp_binary.csv");
    let (path, text) = read_text(&processed, "processed labels").unwrap();
    let mut intervals = std::collections::HashMap::new();
    let (mut checked, mut wrong) = (0, 0);
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split(',').collect();
        let subject: u32 = cols[0].parse().unwrap();
        if [6, 17, 18, 30].contains(&subject) {
            continue;
        }
        let t: f64 = cols[3].parse::<f64>().unwrap().floor();
        let label = cols[4].trim() == "1";
        let iv = intervals.entry(subject).or_insert_with(|| {
            let tags = stress_dir().join(format!("Raw_data/S{subject:02}/tags_S{subject:02}.csv"));
            stress_intervals(&tags).unwrap()
        });
        checked += 1;
        if iv.iter().any(|&(a, b)| a <= t && t < b) != label {
            wrong += 1;
        }
    }
    assert!(
        checked > 90_000,
        "{} rows checked in {}",
        checked,
        path.display()
    );
    assert_eq!(wrong, 0, "{wrong} of {checked} seconds disagree");
}

#[test]
fn windows_are_subject_disjoint_and_both_classes_occur() {
    let mut config = StressConfig::new(stress_dir());
    config.subjects = vec![1, 2, 3, 4, 5, 6];
    config.test_subjects = vec![2];
    config.val_subjects = vec![5];
    let data = config.load().unwrap();
    assert_eq!(data.sample_shape, vec![6, 480]);
    let counts = data.class_counts();
    assert!(counts[0] > 0 && counts[1] > 0, "{counts:?}");
    let splits =
        Splits::by_group(&data, &config.test_subjects, &config.val_subjects, None).unwrap();
    assert_eq!(splits.test.group_ids(), vec![2]);
    assert_eq!(splits.val.group_ids(), vec![5]);
    assert_eq!(splits.train.group_ids(), vec![1, 3, 4, 6]);
}

fn copy_subject(to: &Path, subject: &str) {
    let from = stress_dir().join("Raw_data").join(subject);
    let dst = to.join("Raw_data").join(subject);
    std::fs::create_dir_all(&dst).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dst.join(entry.file_name())).unwrap();
    }
}

#[test]
fn missing_rate_line_is_named() {
    let dir = tempfile::tempdir().unwrap();
    copy_subject(dir.path(), "S02");
    let eda = dir.path().join("Raw_data/S02/EDA.csv");
    std::fs::remove_file(eda.with_extension("csv.gz")).unwrap();
    // Start time, then samples straight away: the rate row is gone.
    std::fs::write(&eda, "1644227574.000000\n0.622764\n0.65\n0.66\n").unwrap();
    let mut config = StressConfig::new(dir.path());
    config.subjects = vec![2];
    let err = config.load().unwrap_err().to_string();
    assert!(
        err.contains("S02/EDA.csv, line 2: sample rate 0.622764 Hz"),
        "{err}"
    );
    assert!(err.contains("is the rate row missing?"), "{err}");
}

#[test]
fn reversed_task_tags_are_named() {
    let mut config = StressConfig::new(stress_dir());
    config.subjects = vec![17];
    let err = config.load().unwrap_err().to_string();
    assert!(err.contains("tags_S17.csv.gz, line 4: task end"), "{err}");
}
