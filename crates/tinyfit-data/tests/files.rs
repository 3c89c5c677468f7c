//! Generic formats on small real files cut from the HAPT recordings: the same windows written
//! as CSV, CSV series, UCR `.tsv`, sktime `.ts`, NPY and NPZ must load to the same samples.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use npyz::WriterBuilder;
use tinyfit_data::{DataConfig, Dataset, HaptConfig};

/// 24 HAPT windows (4 per activity) of users 1 and 2, cut to 3 channels x 32 steps.
fn windows() -> Dataset {
    let hapt = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/hapt");
    let full = HaptConfig::new(hapt).load().unwrap();
    let mut picked = Dataset::empty(vec![3, 32], full.class_names.clone());
    for class in 0..6u32 {
        for user in [1u32, 2] {
            let idx: Vec<usize> = (0..full.len())
                .filter(|&i| full.y[i] == class && full.groups[i] == user)
                .take(2)
                .collect();
            for i in idx {
                let s = full.sample(i);
                let cut: Vec<f32> = (0..3)
                    .flat_map(|c| s[c * 128..c * 128 + 32].to_vec())
                    .collect();
                picked.push(&cut, class, user);
            }
        }
    }
    picked
}

fn config(toml_text: &str, base: &Path) -> DataConfig {
    let mut c: DataConfig = toml::from_str(toml_text).unwrap_or_else(|e| panic!("{e}"));
    c.resolve_paths(base);
    c
}

/// Loads every sample and checks it against the source windows (labels are activity numbers).
fn assert_same(c: &DataConfig, want: &Dataset) -> Dataset {
    let (got, _) = c.load_dataset().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.len(), want.len());
    assert_eq!(got.sample_len(), want.sample_len());
    for i in 0..got.len() {
        for (a, b) in got.sample(i).iter().zip(want.sample(i)) {
            assert!((a - b).abs() < 1e-6, "sample {i}: {a} vs {b}");
        }
        assert_eq!(
            got.class_names[got.y[i] as usize],
            format!("{}", want.y[i] + 1)
        );
    }
    got
}

fn fmt(v: f32) -> String {
    format!("{v:e}")
}

#[test]
fn csv_rows_with_groups() {
    let w = windows();
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("subject,label");
    for i in 0..96 {
        write!(text, ",v{i}").unwrap();
    }
    text.push('\n');
    for i in 0..w.len() {
        let values: Vec<String> = w.sample(i).iter().map(|&v| fmt(v)).collect();
        writeln!(text, "{},{},{}", w.groups[i], w.y[i] + 1, values.join(",")).unwrap();
    }
    std::fs::write(dir.path().join("har.csv"), text).unwrap();
    let c = config(
        "kind = \"files\"\npath = \"har.csv\"\nformat = { kind = \"csv\", group_column = \"subject\", shape = [3, 32] }\n[split]\nval_percent = 0\ntest_percent = 50\n",
        dir.path(),
    );
    let got = assert_same(&c, &w);
    assert_eq!(got.sample_shape, vec![3, 32]);
    // Two subjects: one group per subject, so a split keeps each subject whole.
    assert_eq!(got.group_ids().len(), 2);
}

#[test]
fn ucr_tsv_with_test_file() {
    let w = windows();
    let dir = tempfile::tempdir().unwrap();
    let mut train = String::new();
    let mut test = String::new();
    for i in 0..w.len() {
        let values: Vec<String> = w.sample(i)[..32].iter().map(|&v| fmt(v)).collect();
        let line = format!("{}\t{}\n", w.y[i] + 1, values.join("\t"));
        if w.groups[i] == 1 {
            train.push_str(&line)
        } else {
            test.push_str(&line)
        }
    }
    std::fs::write(dir.path().join("HAR_TRAIN.tsv"), train).unwrap();
    std::fs::write(dir.path().join("HAR_TEST.tsv"), test).unwrap();
    let c = config(
        "kind = \"files\"\npath = \"HAR_TRAIN.tsv\"\nformat = { kind = \"ucr_tsv\" }\n[split]\ntest = \"HAR_TEST.tsv\"\nval_percent = 25\n",
        dir.path(),
    );
    let splits = c.load(None).unwrap();
    assert_eq!(splits.test.len(), 12, "the test file's samples");
    assert_eq!(splits.train.len() + splits.val.len(), 12);
    assert_eq!(splits.train.sample_shape, vec![1, 32]);
}

#[test]
fn sktime_ts_multivariate() {
    let w = windows();
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from(
        "# cut from UCI HAPT\n@problemName HAR\n@timeStamps false\n@univariate false\n@dimensions 3\n@equalLength true\n@seriesLength 32\n@classLabel true 1 2 3 4 5 6\n@data\n",
    );
    for i in 0..w.len() {
        let dims: Vec<String> = (0..3)
            .map(|c| {
                w.sample(i)[c * 32..(c + 1) * 32]
                    .iter()
                    .map(|&v| fmt(v))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        writeln!(text, "{}:{}", dims.join(":"), w.y[i] + 1).unwrap();
    }
    std::fs::write(dir.path().join("har.ts"), text).unwrap();
    let c = config(
        "kind = \"files\"\npath = \"har.ts\"\nformat = { kind = \"ts\" }\n",
        dir.path(),
    );
    assert_same(&c, &w);
}

#[test]
fn csv_series_folders() {
    let w = windows();
    let dir = tempfile::tempdir().unwrap();
    for i in 0..w.len() {
        let class_dir = dir.path().join("series").join(format!("{}", w.y[i] + 1));
        std::fs::create_dir_all(&class_dir).unwrap();
        let mut text = String::from("acc_x,acc_y,acc_z\n");
        for t in 0..32 {
            let row: Vec<String> = (0..3).map(|c| fmt(w.sample(i)[c * 32 + t])).collect();
            writeln!(text, "{}", row.join(",")).unwrap();
        }
        std::fs::write(class_dir.join(format!("{i:03}.csv")), text).unwrap();
    }
    let c = config(
        "kind = \"files\"\npath = \"series\"\nformat = { kind = \"csv_series\" }\n",
        dir.path(),
    );
    assert_same(&c, &w);
}

#[test]
fn npy_and_npz() {
    let w = windows();
    let dir = tempfile::tempdir().unwrap();
    let n = w.len() as u64;
    let write_npy = |name: &str, shape: &[u64], data: &[f32]| {
        let mut out = npyz::WriteOptions::new()
            .default_dtype()
            .shape(shape)
            .writer(std::fs::File::create(dir.path().join(name)).unwrap())
            .begin_nd()
            .unwrap();
        out.extend(data.iter().copied()).unwrap();
        out.finish().unwrap();
    };
    write_npy("x.npy", &[n, 3, 32], &w.x);
    let labels: Vec<i64> = w.y.iter().map(|&y| y as i64 + 1).collect();
    {
        let mut out = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&[n])
            .writer(std::fs::File::create(dir.path().join("y.npy")).unwrap())
            .begin_nd()
            .unwrap();
        out.extend(labels.iter().copied()).unwrap();
        out.finish().unwrap();
    }
    let c = config(
        "kind = \"files\"\npath = \"x.npy\"\nformat = { kind = \"npy\", y = \"y.npy\" }\n",
        dir.path(),
    );
    assert_same(&c, &w);

    let mut npz = npyz::npz::NpzWriter::create(dir.path().join("har.npz")).unwrap();
    let opts = npyz::zip::write::FileOptions::default();
    let mut x = npz
        .array::<f32>("x", opts)
        .unwrap()
        .default_dtype()
        .shape(&[n, 3, 32])
        .begin_nd()
        .unwrap();
    x.extend(w.x.iter().copied()).unwrap();
    x.finish().unwrap();
    let mut y = npz
        .array::<i64>("y", opts)
        .unwrap()
        .default_dtype()
        .shape(&[n])
        .begin_nd()
        .unwrap();
    y.extend(labels.iter().copied()).unwrap();
    y.finish().unwrap();
    drop(npz);
    let c = config(
        "kind = \"files\"\npath = \"har.npz\"\nformat = { kind = \"npz\" }\n",
        dir.path(),
    );
    assert_same(&c, &w);
}

#[test]
fn ragged_row_and_nan_are_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.csv"), "label,v0,v1\n1,0.5,0.25\n2,0.5\n").unwrap();
    let c = config(
        "kind = \"files\"\npath = \"a.csv\"\nformat = { kind = \"csv\" }\n",
        dir.path(),
    );
    let err = c.load_dataset().unwrap_err().to_string();
    assert!(
        err.ends_with("a.csv, line 3: 2 columns; the header has 3"),
        "{err}"
    );
    std::fs::write(
        dir.path().join("a.csv"),
        "label,v0,v1\n1,0.5,0.25\n2,0.5,NaN\n",
    )
    .unwrap();
    let err = c.load_dataset().unwrap_err().to_string();
    assert!(
        err.contains("a.csv, line 3: value 'NaN' is not finite"),
        "{err}"
    );
}
