//! `tinyfit data inspect PATH|CONFIG`: what a dataset holds before any training.

use std::path::Path;

use anyhow::{Result, bail};
use tinyfit_data::{DataConfig, Dataset};

use crate::experiment::Experiment;
use crate::report::thousands;

/// Prints classes, per-split counts, the sample shape and per-channel value ranges.
pub fn inspect(path: &Path) -> Result<()> {
    let config = if path.is_dir() {
        match DataConfig::detect(path) {
            Some(c) => c,
            None => bail!(
                "{}: not a known dataset layout (HAPT RawData/, Stress-Predict Raw_data/, or Speech Commands class folders)",
                path.display()
            ),
        }
    } else {
        Experiment::load_data(path)?
    };
    let (data, held_out) = config.load_dataset()?;
    println!("dataset: {} at {}", config.kind(), config.path().display());
    println!("rate: {}", config.rate_note());
    println!("protocol: {}", serde_json::to_string(&config)?);
    println!(
        "{} samples of shape {:?}, {} classes, {} subjects/speakers",
        thousands(data.len() as u64),
        data.sample_shape,
        data.class_names.len(),
        data.group_ids().len()
    );
    let in_split = |groups: &[u32]| data.filter_groups(|g| groups.contains(&g));
    let val = in_split(&held_out.validation);
    let test = in_split(&held_out.test);
    let train =
        data.filter_groups(|g| !held_out.validation.contains(&g) && !held_out.test.contains(&g));
    let width = data
        .class_names
        .iter()
        .map(|c| c.len())
        .max()
        .unwrap_or(5)
        .max(5);
    println!(
        "{:<width$} {:>8} {:>8} {:>8}",
        "class", "train", "val", "test"
    );
    let counts = [
        train.class_counts(),
        val.class_counts(),
        test.class_counts(),
    ];
    for (c, name) in data.class_names.iter().enumerate() {
        println!(
            "{name:<width$} {:>8} {:>8} {:>8}",
            counts[0][c], counts[1][c], counts[2][c]
        );
    }
    println!(
        "{:<width$} {:>8} {:>8} {:>8}",
        "total",
        train.len(),
        val.len(),
        test.len()
    );
    let list = |ids: Vec<u32>| match ids.len() {
        0..=20 => format!("{ids:?}"),
        n => format!("{n} groups"),
    };
    println!(
        "held out: validation {}, test {}; training keeps {} groups",
        list(val.group_ids()),
        list(test.group_ids()),
        train.group_ids().len()
    );
    print_ranges(&data);
    Ok(())
}

/// Min, max, mean and standard deviation of each channel over every sample.
fn print_ranges(data: &Dataset) {
    let channels = data.sample_shape[0];
    let per_channel = data.sample_len() / channels;
    let mut stats = vec![(f32::INFINITY, f32::NEG_INFINITY, 0f64, 0f64); channels];
    for (i, chunk) in data.x.chunks_exact(per_channel).enumerate() {
        let s = &mut stats[i % channels];
        for &v in chunk {
            s.0 = s.0.min(v);
            s.1 = s.1.max(v);
            s.2 += v as f64;
            s.3 += (v as f64) * (v as f64);
        }
    }
    let n = (data.len() * per_channel).max(1) as f64;
    println!(
        "{:>8} {:>12} {:>12} {:>12} {:>12}",
        "channel", "min", "max", "mean", "std"
    );
    for (c, (lo, hi, sum, sq)) in stats.into_iter().enumerate() {
        let mean = sum / n;
        let std = (sq / n - mean * mean).max(0.0).sqrt();
        println!("{c:>8} {lo:>12.4} {hi:>12.4} {mean:>12.4} {std:>12.4}");
    }
}
