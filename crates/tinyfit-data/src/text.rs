//! Reading text files that users keep both plain and gzipped.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::error::{DataError, Result};

/// Reads `path`, or `path.gz` when only the gzipped copy exists. Returns the path actually
/// read (for error messages) and the text.
pub fn read_text(path: &Path, what: &'static str) -> Result<(PathBuf, String)> {
    let gz = {
        let mut s = path.as_os_str().to_owned();
        s.push(".gz");
        PathBuf::from(s)
    };
    let (found, zipped) = if path.is_file() {
        (
            path.to_path_buf(),
            path.extension().is_some_and(|e| e == "gz"),
        )
    } else if gz.is_file() {
        (gz, true)
    } else {
        return Err(DataError::Missing {
            what,
            path: path.to_path_buf(),
        });
    };
    let io = |source| DataError::Io {
        path: found.clone(),
        source,
    };
    let bytes = std::fs::read(&found).map_err(io)?;
    let mut text = String::new();
    if zipped {
        MultiGzDecoder::new(&bytes[..])
            .read_to_string(&mut text)
            .map_err(io)?;
    } else {
        text = String::from_utf8(bytes)
            .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
    }
    Ok((found, text))
}

/// Parses whitespace-separated numbers, one row per non-empty line, each row exactly `columns`
/// wide. Errors name the file and the 1-based line.
pub fn parse_table<T: std::str::FromStr>(
    path: &Path,
    text: &str,
    columns: usize,
) -> Result<Vec<Vec<T>>> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parse_err = |message: String| DataError::Parse {
            path: path.to_path_buf(),
            line: i + 1,
            message,
        };
        let row = line
            .split_whitespace()
            .map(|tok| {
                tok.parse::<T>()
                    .map_err(|_| parse_err(format!("'{tok}' is not a number")))
            })
            .collect::<Result<Vec<T>>>()?;
        if row.len() != columns {
            return Err(parse_err(format!(
                "expected {columns} numbers, found {}: '{}'",
                row.len(),
                line.trim()
            )));
        }
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_gzip_when_plain_is_absent() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("a.txt");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, b"1 2\n3 4\n").unwrap();
        std::fs::write(dir.path().join("a.txt.gz"), enc.finish().unwrap()).unwrap();
        let (found, text) = read_text(&plain, "test file").unwrap();
        assert!(found.ends_with("a.txt.gz"));
        assert_eq!(
            parse_table::<f32>(&found, &text, 2).unwrap(),
            vec![vec![1.0, 2.0], vec![3.0, 4.0]]
        );
    }

    #[test]
    fn malformed_line_names_file_and_line() {
        let err = parse_table::<f32>(Path::new("x.txt"), "1 2 3\n1 2\n", 3)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "x.txt, line 2: expected 3 numbers, found 2: '1 2'");
        let err = parse_table::<f32>(Path::new("x.txt"), "1 2 3\n1 zz 3\n", 3)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "x.txt, line 2: 'zz' is not a number");
    }
}
