//! Any user's labelled data in common file formats, each plain or gzipped (NPY/NPZ raw):
//!
//! | `format.kind` | layout |
//! |---|---|
//! | `csv` | one sample per row: a label column, an optional group column, the sample's values |
//! | `csv_series` | one series per file: `CLASS/*.csv`, rows are time steps, columns channels |
//! | `ucr_tsv` | UCR 2018 archive: label, then the values, tab-separated, one series per row |
//! | `ts` | sktime/UEA `.ts`: `@` header, then `dim1:dim2:...:label` rows of comma-separated values |
//! | `npy` | `x` (`[N, ...]` floats) and `y` (`[N]` integers) files, optional `groups` |
//! | `npz` | one archive with arrays `x`, `y` and optionally `groups` |
//!
//! Splits: a separate test file (UCR's `_TEST` files) or a share of the groups, and a share of
//! the training groups for validation. Groups come from a group column / array; without one every
//! sample is its own group, which makes the split random rather than subject-disjoint.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::normalize::ChannelNorm;
use crate::split::{HeldOut, Splits};
use crate::text::read_text;

/// How to hold data out of training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSplit {
    /// A test file of the same format; when absent, `test_percent` of the groups are held out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<PathBuf>,
    /// Share of the (training) groups for validation.
    #[serde(default = "twenty")]
    pub val_percent: f64,
    /// Share of the groups for test when there is no test file.
    #[serde(default = "twenty")]
    pub test_percent: f64,
    /// Seed of the group assignment.
    #[serde(default)]
    pub seed: u64,
}

impl Default for FileSplit {
    fn default() -> Self {
        FileSplit {
            test: None,
            val_percent: twenty(),
            test_percent: twenty(),
            seed: 0,
        }
    }
}

fn twenty() -> f64 {
    20.0
}

/// A column named by header or by 0-based index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Column {
    /// 0-based position.
    Index(usize),
    /// Header name.
    Name(String),
}

/// Which format a [`FilesConfig`] reads, with its own options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FileFormat {
    /// One sample per row.
    Csv {
        /// The label column (default: the one headed `label`).
        #[serde(default = "label_column")]
        label_column: Column,
        /// The column of subject / group ids, for group-disjoint splits.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group_column: Option<Column>,
        /// Per-sample shape (channels first); default `[1, values]`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shape: Option<Vec<usize>>,
    },
    /// One series per file in class folders.
    CsvSeries,
    /// UCR 2018 `.tsv`.
    UcrTsv,
    /// sktime / UEA `.ts`.
    Ts,
    /// `.npy` arrays: `path` holds `x`; `y` and `groups` are named here.
    Npy {
        /// Labels file.
        y: PathBuf,
        /// Group ids file.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        groups: Option<PathBuf>,
    },
    /// `.npz` archive with `x`, `y` and optionally `groups`.
    Npz,
}

fn label_column() -> Column {
    Column::Name("label".into())
}

/// A labelled dataset in files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesConfig {
    /// The training file (or folder for `csv_series`), or the only one when the split draws the
    /// test set from it.
    pub path: PathBuf,
    /// The format and its options, e.g. `format = { kind = "csv", group_column = "subject" }`.
    pub format: FileFormat,
    /// Class names in label order; default: the distinct labels, numerically sorted when they
    /// are all numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<String>>,
    /// How to hold data out.
    #[serde(default)]
    pub split: FileSplit,
}

/// Rows as read: per sample its values, its label text and its group.
#[derive(Default)]
struct Rows {
    shape: Vec<usize>,
    x: Vec<f32>,
    labels: Vec<String>,
    groups: Vec<Option<String>>,
}

impl FilesConfig {
    /// Resolves relative paths against `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.path);
        if let Some(t) = &mut self.split.test {
            fix(t);
        }
        if let FileFormat::Npy { y, groups } = &mut self.format {
            fix(y);
            if let Some(g) = groups {
                fix(g);
            }
        }
    }

    /// Reads the data and splits it; normalises with `norm` or with training statistics.
    pub fn load(&self, norm: Option<ChannelNorm>) -> Result<Splits> {
        let (data, held_out) = self.load_dataset()?;
        Splits::by_group(&data, &held_out.test, &held_out.validation, norm)
    }

    /// Every sample (the test file's too) with the groups held out of training.
    pub fn load_dataset(&self) -> Result<(Dataset, HeldOut)> {
        let mut rows = self.read(&self.path)?;
        if rows.shape.contains(&0) {
            return Err(DataError::Invalid {
                path: self.path.clone(),
                message: format!("samples of shape {:?} hold no values", rows.shape),
            });
        }
        let test_rows = match &self.split.test {
            Some(t) => Some(self.read(t)?),
            None => None,
        };
        if let Some(t) = test_rows {
            if t.shape != rows.shape {
                return Err(DataError::Invalid {
                    path: self.split.test.clone().unwrap_or_default(),
                    message: format!(
                        "samples of shape {:?}; the training file's are {:?}",
                        t.shape, rows.shape
                    ),
                });
            }
            rows.x.extend(t.x);
            rows.labels.extend(t.labels);
            // Test-file samples get groups of their own namespace.
            rows.groups.extend(
                t.groups
                    .into_iter()
                    .map(|g| Some(format!("test:{}", g.unwrap_or_default()))),
            );
        }
        let classes = match &self.classes {
            Some(c) => c.clone(),
            None => sorted_labels(&rows.labels),
        };
        let mut data = Dataset::empty(rows.shape.clone(), classes.clone());
        // Group keys in first-seen order, with a map for the lookup (one group per sample is
        // common: a linear search would be quadratic).
        let mut group_ids: Vec<String> = Vec::new();
        let mut group_index: HashMap<String, usize> = HashMap::new();
        let n = data.sample_len();
        for (i, label) in rows.labels.iter().enumerate() {
            let y = classes
                .iter()
                .position(|c| c == label)
                .ok_or_else(|| DataError::Invalid {
                    path: self.path.clone(),
                    message: format!(
                        "label '{label}' is not among the configured classes {classes:?}"
                    ),
                })?;
            let key = rows.groups[i].clone().unwrap_or_else(|| format!("#{i}"));
            let g = *group_index.entry(key.clone()).or_insert_with(|| {
                group_ids.push(key);
                group_ids.len() - 1
            });
            data.push(&rows.x[i * n..(i + 1) * n], y as u32, g as u32);
        }
        let mut held_out = HeldOut::default();
        for (g, key) in group_ids.iter().enumerate() {
            let pct = bucket(key, self.split.seed);
            let to_test = match self.split.test {
                Some(_) => key.starts_with("test:"),
                None => pct < self.split.test_percent,
            };
            if to_test {
                held_out.test.push(g as u32);
            } else if pct >= 100.0 - self.split.val_percent {
                held_out.validation.push(g as u32);
            }
        }
        Ok((data, held_out))
    }

    fn read(&self, path: &Path) -> Result<Rows> {
        match &self.format {
            FileFormat::Csv {
                label_column,
                group_column,
                shape,
            } => read_csv(path, label_column, group_column.as_ref(), shape.as_deref()),
            FileFormat::CsvSeries => read_csv_series(path),
            FileFormat::UcrTsv => read_ucr(path),
            FileFormat::Ts => read_ts(path),
            FileFormat::Npy { y, groups } => read_npy(path, y, groups.as_deref()),
            FileFormat::Npz => read_npz(path),
        }
    }
}

/// A group's position in [0, 100) from a seeded hash of its key (splitmix64 over FNV-1a), so
/// the split depends only on the group, not on the order of the rows.
fn bucket(key: &str, seed: u64) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in key.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h >> 11) as f64 / (1u64 << 53) as f64 * 100.0
}

/// Distinct labels, numerically sorted when all are numbers, else lexically.
fn sorted_labels(labels: &[String]) -> Vec<String> {
    let set: BTreeSet<&String> = labels.iter().collect();
    let mut v: Vec<String> = set.into_iter().cloned().collect();
    if v.iter().all(|l| l.parse::<f64>().is_ok()) {
        v.sort_by(|a, b| {
            a.parse::<f64>()
                .unwrap()
                .total_cmp(&b.parse::<f64>().unwrap())
        });
    }
    v
}

fn parse_value(path: &Path, line: usize, token: &str) -> Result<f32> {
    let v: f32 = token.trim().parse().map_err(|_| DataError::Parse {
        path: path.to_path_buf(),
        line,
        message: format!("'{}' is not a number", token.trim()),
    })?;
    if !v.is_finite() {
        return Err(DataError::Parse {
            path: path.to_path_buf(),
            line,
            message: format!(
                "value '{}' is not finite (missing values and variable-length series are not supported)",
                token.trim()
            ),
        });
    }
    Ok(v)
}

fn column_index(path: &Path, header: &[&str], column: &Column) -> Result<usize> {
    match column {
        Column::Index(i) if *i < header.len() => Ok(*i),
        Column::Index(i) => Err(DataError::Parse {
            path: path.to_path_buf(),
            line: 1,
            message: format!(
                "column {i} does not exist; rows have {} columns",
                header.len()
            ),
        }),
        Column::Name(name) => {
            header
                .iter()
                .position(|h| h.trim() == name)
                .ok_or_else(|| DataError::Parse {
                    path: path.to_path_buf(),
                    line: 1,
                    message: format!("no column headed '{name}' in {header:?}"),
                })
        }
    }
}

fn read_csv(
    path: &Path,
    label: &Column,
    group: Option<&Column>,
    shape: Option<&[usize]>,
) -> Result<Rows> {
    let (found, text) = read_text(path, "CSV file")?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header_line) = lines.next().ok_or_else(|| DataError::Invalid {
        path: found.clone(),
        message: "empty file; expected a header row and samples".into(),
    })?;
    let header: Vec<&str> = header_line.split(',').collect();
    let label_at = column_index(&found, &header, label)?;
    let group_at = group
        .map(|g| column_index(&found, &header, g))
        .transpose()?;
    let values = header.len() - 1 - group_at.is_some() as usize;
    let shape = shape
        .map(<[usize]>::to_vec)
        .unwrap_or_else(|| vec![1, values]);
    if shape.iter().product::<usize>() != values {
        return Err(DataError::Config(format!(
            "{}: shape {shape:?} holds {} values but rows have {values}",
            found.display(),
            shape.iter().product::<usize>()
        )));
    }
    let mut rows = Rows {
        shape,
        ..Default::default()
    };
    for (i, line) in lines {
        let cells: Vec<&str> = line.split(',').collect();
        if cells.len() != header.len() {
            return Err(DataError::Parse {
                path: found.clone(),
                line: i + 1,
                message: format!("{} columns; the header has {}", cells.len(), header.len()),
            });
        }
        for (c, cell) in cells.iter().enumerate() {
            if c != label_at && Some(c) != group_at {
                rows.x.push(parse_value(&found, i + 1, cell)?);
            }
        }
        rows.labels.push(cells[label_at].trim().to_string());
        rows.groups
            .push(group_at.map(|g| cells[g].trim().to_string()));
    }
    Ok(rows)
}

/// `FOLDER/CLASS/*.csv`: each file one series, rows time steps, columns channels (a header row
/// of names is skipped when present).
fn read_csv_series(folder: &Path) -> Result<Rows> {
    let mut rows = Rows::default();
    let mut classes: Vec<PathBuf> = std::fs::read_dir(folder)
        .map_err(|_| DataError::Missing {
            what: "CSV series folder",
            path: folder.to_path_buf(),
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    classes.sort();
    for class in classes {
        let name = class
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&class)
            .map_err(|source| DataError::Io {
                path: class.clone(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let n = p.to_string_lossy();
                n.ends_with(".csv") || n.ends_with(".csv.gz")
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(DataError::Invalid {
                path: class,
                message: format!("class folder '{name}' holds no .csv files"),
            });
        }
        for file in files {
            let (found, text) = read_text(&file, "CSV series")?;
            let mut series: Vec<Vec<f32>> = Vec::new();
            for (i, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let cells: Vec<&str> = line.split(',').collect();
                if i == 0 && cells.iter().any(|c| c.trim().parse::<f32>().is_err()) {
                    continue; // a header row
                }
                let row = cells
                    .iter()
                    .map(|c| parse_value(&found, i + 1, c))
                    .collect::<Result<Vec<f32>>>()?;
                if let Some(first) = series.first()
                    && first.len() != row.len()
                {
                    return Err(DataError::Parse {
                        path: found.clone(),
                        line: i + 1,
                        message: format!(
                            "{} columns; earlier rows have {}",
                            row.len(),
                            first.len()
                        ),
                    });
                }
                series.push(row);
            }
            let shape = vec![series.first().map_or(0, Vec::len), series.len()];
            if rows.labels.is_empty() {
                rows.shape = shape.clone();
            } else if shape != rows.shape {
                return Err(DataError::Invalid {
                    path: found,
                    message: format!(
                        "{} channels x {} steps; earlier files are {} x {}",
                        shape[0], shape[1], rows.shape[0], rows.shape[1]
                    ),
                });
            }
            for c in 0..shape[0] {
                rows.x.extend(series.iter().map(|r| r[c]));
            }
            rows.labels.push(name.clone());
            rows.groups.push(None);
        }
    }
    Ok(rows)
}

/// UCR 2018: `label<TAB>v1<TAB>v2...`, univariate.
fn read_ucr(path: &Path) -> Result<Rows> {
    let (found, text) = read_text(path, "UCR .tsv file")?;
    let mut rows = Rows::default();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let cells: Vec<&str> = line.split('\t').collect();
        let values = cells[1..]
            .iter()
            .map(|c| parse_value(&found, i + 1, c))
            .collect::<Result<Vec<f32>>>()?;
        push_series(
            &mut rows,
            &found,
            i + 1,
            vec![1, values.len()],
            values,
            cells[0],
        )?;
    }
    nonempty(rows, &found)
}

fn push_series(
    rows: &mut Rows,
    path: &Path,
    line: usize,
    shape: Vec<usize>,
    values: Vec<f32>,
    label: &str,
) -> Result<()> {
    if rows.labels.is_empty() {
        rows.shape = shape;
    } else if shape != rows.shape {
        return Err(DataError::Parse {
            path: path.to_path_buf(),
            line,
            message: format!(
                "series of shape {shape:?}; earlier rows are {:?}",
                rows.shape
            ),
        });
    }
    rows.x.extend(values);
    rows.labels.push(label.trim().to_string());
    rows.groups.push(None);
    Ok(())
}

fn nonempty(rows: Rows, path: &Path) -> Result<Rows> {
    if rows.labels.is_empty() {
        return Err(DataError::Invalid {
            path: path.to_path_buf(),
            message: "no samples".into(),
        });
    }
    Ok(rows)
}

/// sktime `.ts`: `@`-header lines (`@data` ends them), `#` comments, then rows of
/// `v,v,...:v,v,...:label`, one `:`-separated field per dimension.
fn read_ts(path: &Path) -> Result<Rows> {
    let (found, text) = read_text(path, ".ts file")?;
    let mut rows = Rows::default();
    let mut in_data = false;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !in_data {
            let lower = line.to_ascii_lowercase();
            if lower.starts_with("@data") {
                in_data = true;
            } else if lower.starts_with("@classlabel") && lower.contains("false") {
                return Err(DataError::Parse {
                    path: found.clone(),
                    line: i + 1,
                    message: "@classLabel false: the file has no class labels".into(),
                });
            } else if !line.starts_with('@') {
                return Err(DataError::Parse {
                    path: found.clone(),
                    line: i + 1,
                    message: format!("expected an @ header line or @data, found '{line}'"),
                });
            }
            continue;
        }
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() < 2 {
            return Err(DataError::Parse {
                path: found.clone(),
                line: i + 1,
                message: "expected 'values:...:label'".into(),
            });
        }
        let (label, dims) = fields.split_last().expect("two or more fields");
        let mut values = Vec::new();
        let mut length = None;
        for dim in dims {
            let v = dim
                .split(',')
                .map(|c| parse_value(&found, i + 1, c))
                .collect::<Result<Vec<f32>>>()?;
            if length.is_some_and(|l| l != v.len()) {
                return Err(DataError::Parse {
                    path: found.clone(),
                    line: i + 1,
                    message: "dimensions of unequal length".into(),
                });
            }
            length = Some(v.len());
            values.extend(v);
        }
        let shape = vec![dims.len(), length.unwrap_or(0)];
        push_series(&mut rows, &found, i + 1, shape, values, label)?;
    }
    nonempty(rows, &found)
}

/// Reads any numeric NPY array as f64 with its shape.
fn npy_numbers<R: std::io::Read>(
    file: npyz::NpyFile<R>,
    path: &Path,
) -> Result<(Vec<usize>, Vec<f64>)> {
    use npyz::TypeChar;
    let shape: Vec<usize> = file.shape().iter().map(|&d| d as usize).collect();
    let err = |message: String| DataError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    if file.order() != npyz::Order::C {
        return Err(err(
            "Fortran-ordered array; save it C-ordered (np.ascontiguousarray)".into(),
        ));
    }
    let npyz::DType::Plain(ts) = file.dtype() else {
        return Err(err(
            "structured array; expected a plain numeric array".into()
        ));
    };
    let values = match (ts.type_char(), ts.size_field()) {
        (TypeChar::Float, 4) => widen(file, <f64 as From<f32>>::from),
        (TypeChar::Float, 8) => widen(file, |v: f64| v),
        (TypeChar::Int, 1) => widen(file, <f64 as From<i8>>::from),
        (TypeChar::Int, 2) => widen(file, <f64 as From<i16>>::from),
        (TypeChar::Int, 4) => widen(file, <f64 as From<i32>>::from),
        (TypeChar::Int, 8) => widen(file, |v: i64| v as f64),
        (TypeChar::Uint, 1) => widen(file, <f64 as From<u8>>::from),
        (TypeChar::Uint, 2) => widen(file, <f64 as From<u16>>::from),
        (TypeChar::Uint, 4) => widen(file, <f64 as From<u32>>::from),
        (TypeChar::Uint, 8) => widen(file, |v: u64| v as f64),
        _ => {
            return Err(err(format!(
                "dtype {ts}; expected an integer or float array"
            )));
        }
    }
    .map_err(|e| err(e.to_string()))?;
    Ok((shape, values))
}

/// Reads every element as `T` and widens it to f64.
fn widen<T: npyz::Deserialize, R: std::io::Read>(
    file: npyz::NpyFile<R>,
    to_f64: impl Fn(T) -> f64,
) -> std::io::Result<Vec<f64>> {
    Ok(file.into_vec::<T>()?.into_iter().map(to_f64).collect())
}

/// Builds rows from `x` (`[N, ...]`), `y` (`[N]`) and optional groups (`[N]`).
fn rows_from_arrays(
    x: (Vec<usize>, Vec<f64>),
    y: (Vec<usize>, Vec<f64>),
    groups: Option<(Vec<usize>, Vec<f64>)>,
    path: &Path,
) -> Result<Rows> {
    let err = |message: String| DataError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let n =
        *x.0.first()
            .ok_or_else(|| err("x is a scalar; expected [samples, ...]".into()))?;
    let mut shape = x.0[1..].to_vec();
    if shape.len() == 1 {
        shape.insert(0, 1);
    }
    if shape.is_empty() || shape.len() > 3 {
        return Err(err(format!(
            "x has shape {:?}; expected [N, L], [N, C, L] or [N, C, H, W]",
            x.0
        )));
    }
    if y.0 != [n] {
        return Err(err(format!(
            "y has shape {:?}; expected [{n}] to match x",
            y.0
        )));
    }
    if let Some(g) = &groups
        && g.0 != [n]
    {
        return Err(err(format!("groups has shape {:?}; expected [{n}]", g.0)));
    }
    if let Some(bad) = x.1.iter().position(|v| !v.is_finite()) {
        return Err(err(format!(
            "x holds a non-finite value at flat index {bad}"
        )));
    }
    Ok(Rows {
        shape,
        x: x.1.into_iter().map(|v| v as f32).collect(),
        labels: y.1.iter().map(|v| format!("{v}")).collect(),
        groups: (0..n)
            .map(|i| groups.as_ref().map(|g| format!("{}", g.1[i])))
            .collect(),
    })
}

fn read_npy(x: &Path, y: &Path, groups: Option<&Path>) -> Result<Rows> {
    let open = |p: &Path| -> Result<(Vec<usize>, Vec<f64>)> {
        let bytes = std::fs::read(p).map_err(|_| DataError::Missing {
            what: "NPY file",
            path: p.to_path_buf(),
        })?;
        let file = npyz::NpyFile::new(&bytes[..]).map_err(|e| DataError::Invalid {
            path: p.to_path_buf(),
            message: format!("not an NPY file: {e}"),
        })?;
        npy_numbers(file, p)
    };
    rows_from_arrays(open(x)?, open(y)?, groups.map(open).transpose()?, x)
}

fn read_npz(path: &Path) -> Result<Rows> {
    let err = |message: String| DataError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    if !path.is_file() {
        return Err(DataError::Missing {
            what: "NPZ file",
            path: path.to_path_buf(),
        });
    }
    let mut archive =
        npyz::npz::NpzArchive::open(path).map_err(|e| err(format!("not an NPZ archive: {e}")))?;
    let mut array = |name: &str| -> Result<Option<(Vec<usize>, Vec<f64>)>> {
        match archive.by_name(name).map_err(|e| err(e.to_string()))? {
            Some(file) => npy_numbers(file, path).map(Some),
            None => Ok(None),
        }
    };
    let x = array("x")?.ok_or_else(|| err("no array named 'x'".into()))?;
    let y = array("y")?.ok_or_else(|| err("no array named 'y'".into()))?;
    let groups = array("groups")?;
    rows_from_arrays(x, y, groups, path)
}
