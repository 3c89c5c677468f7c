//! The HAPT reader on the real recordings in `../shared/data/hapt`.

use std::path::{Path, PathBuf};

use tinyfit_data::{HaptConfig, Splits};

fn hapt_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/hapt")
}

#[test]
fn uci_har_protocol_splits_by_user() {
    let config = HaptConfig::new(hapt_dir());
    let data = config.load().unwrap();
    assert_eq!(data.sample_shape, vec![6, 128]);
    assert_eq!(data.class_names[0], "WALKING");
    assert_eq!(data.class_names[5], "LAYING");
    assert_eq!(data.group_ids(), (1..=30).collect::<Vec<u32>>());
    let splits = Splits::by_group(&data, &config.test_users, &config.val_users, None).unwrap();
    assert_eq!(
        splits.train.len() + splits.val.len() + splits.test.len(),
        data.len()
    );
    assert_eq!(splits.test.group_ids(), config.test_users);
    assert_eq!(splits.val.group_ids(), config.val_users);
    for g in splits.train.group_ids() {
        assert!(!config.test_users.contains(&g) && !config.val_users.contains(&g));
    }
    // UCI-HAR has 10,299 windows; windows cut inside labelled segments come close to it.
    assert!(
        (9_500..=10_600).contains(&data.len()),
        "{} windows",
        data.len()
    );
    // Training-split statistics standardise the training split.
    let mean0: f64 = (0..splits.train.len())
        .map(|i| {
            splits.train.sample(i)[..128]
                .iter()
                .map(|&v| v as f64)
                .sum::<f64>()
        })
        .sum::<f64>()
        / (splits.train.len() * 128) as f64;
    assert!(mean0.abs() < 1e-4, "{mean0}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn missing_folder_is_named() {
    let err = HaptConfig::new("/nonexistent/hapt")
        .load()
        .unwrap_err()
        .to_string();
    assert_eq!(err, "HAPT folder not found: /nonexistent/hapt");
}

#[test]
fn malformed_line_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&hapt_dir(), dir.path());
    // Replace one recording with a plain file whose third line lacks a column.
    let raw = dir.path().join("RawData");
    std::fs::remove_file(raw.join("gyro_exp01_user01.txt.gz")).unwrap();
    std::fs::write(
        raw.join("gyro_exp01_user01.txt"),
        "0.1 0.2 0.3\n0.1 0.2 0.3\n0.1 0.2\n",
    )
    .unwrap();
    let err = HaptConfig::new(dir.path()).load().unwrap_err().to_string();
    assert!(
        err.ends_with("gyro_exp01_user01.txt, line 3: expected 3 numbers, found 2: '0.1 0.2'"),
        "{err}"
    );
}
