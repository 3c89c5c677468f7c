//! The methods' own config files as `tinyfit run` uses them: read as TOML, their relative
//! paths made absolute (the stage folders they are written to are elsewhere), values set by
//! the run (its board and budget, the stages they read, the quick preset).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Keys whose string values (or lists of strings) are paths relative to the config's folder.
const PATH_KEYS: [&str; 10] = [
    "path",
    "graph",
    "teacher",
    "strong",
    "selector",
    "classifier",
    "source",
    "student",
    "anchors",
    "baselines",
];

/// A method's config.
#[derive(Debug, Clone)]
pub struct MethodConfig {
    /// The file it was read from.
    pub source: PathBuf,
    table: toml::Table,
}

impl MethodConfig {
    /// Reads `path`, making its relative paths absolute.
    pub fn load(path: &Path) -> Result<MethodConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the method config {}", path.display()))?;
        let mut table: toml::Table = toml::from_str(&text)
            .with_context(|| format!("{} is not valid TOML", path.display()))?;
        let folder = crate::run_dir::config_folder(path);
        let base = std::path::absolute(folder)
            .with_context(|| format!("cannot resolve {}", folder.display()))?;
        for (key, value) in table.iter_mut() {
            absolutize(key, value, &base);
        }
        Ok(MethodConfig {
            source: path.to_path_buf(),
            table,
        })
    }

    /// Sets the value at a dotted key (`train.epochs`, `stitch.anchors`, `step.0.epochs` for
    /// the first `[[step]]`), creating tables on the way; refuses to descend into a value
    /// that is neither a table nor, by index, a list.
    pub fn set(&mut self, dotted: &str, value: toml::Value) -> Result<()> {
        let parts: Vec<&str> = dotted.split('.').collect();
        let mut root = toml::Value::Table(std::mem::take(&mut self.table));
        let done = set_in(&mut root, &parts, value);
        if let toml::Value::Table(t) = root {
            self.table = t;
        }
        done.ok_or_else(|| {
            anyhow::anyhow!(
                "{}: cannot set {dotted}: a part of it is neither a table nor an index into a list",
                self.source.display()
            )
        })
    }

    /// The value at a dotted key, if any.
    pub fn get(&self, dotted: &str) -> Option<&toml::Value> {
        let mut value: Option<&toml::Value> = None;
        let mut table = Some(&self.table);
        for part in dotted.split('.') {
            value = table?.get(part);
            table = value.and_then(|v| v.as_table());
        }
        value
    }

    /// The config as TOML text.
    pub fn text(&self) -> String {
        toml::to_string(&self.table).expect("a TOML table serialises")
    }
}

/// Sets `parts` (a dotted key split) under `at` to `value`; `None` where the path does not
/// lead through tables and list indices.
fn set_in(at: &mut toml::Value, parts: &[&str], value: toml::Value) -> Option<()> {
    match (at, parts) {
        (toml::Value::Table(t), [last]) => {
            t.insert(last.to_string(), value);
            Some(())
        }
        (toml::Value::Table(t), [head, rest @ ..]) => {
            let next = t
                .entry(head.to_string())
                .or_insert_with(|| toml::Value::Table(Default::default()));
            set_in(next, rest, value)
        }
        (toml::Value::Array(items), [head, rest @ ..]) if !rest.is_empty() => {
            set_in(items.get_mut(head.parse::<usize>().ok()?)?, rest, value)
        }
        _ => None,
    }
}

/// Makes `value` (under `key`) absolute against `base` where `key` names a path.
fn absolutize(key: &str, value: &mut toml::Value, base: &Path) {
    let join = |s: &mut String| {
        let p = Path::new(s.as_str());
        if p.is_relative() {
            *s = base.join(p).display().to_string();
        }
    };
    match value {
        toml::Value::String(s) if PATH_KEYS.contains(&key) => join(s),
        toml::Value::Array(items) if PATH_KEYS.contains(&key) => {
            for item in items.iter_mut() {
                if let toml::Value::String(s) = item {
                    join(s);
                }
            }
        }
        toml::Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                absolutize(k, v, base);
            }
        }
        toml::Value::Array(items) => {
            for item in items.iter_mut() {
                if let toml::Value::Table(t) = item {
                    for (k, v) in t.iter_mut() {
                        absolutize(k, v, base);
                    }
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_absolute_and_values_are_set_by_dotted_keys() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.toml");
        std::fs::write(
            &file,
            "source = \"../runs/a\"\n[data]\npath = \"d\"\nwindow = 128\n[[step]]\nstudent = \"g.json\"\n[stitch]\nanchors = [\"a\", \"/abs\"]\n",
        )
        .unwrap();
        let mut c = MethodConfig::load(&file).unwrap();
        let base = dir.path().display().to_string();
        assert_eq!(
            c.get("data.path").unwrap().as_str().unwrap(),
            format!("{base}/d")
        );
        assert_eq!(
            c.get("source").unwrap().as_str().unwrap(),
            format!("{base}/../runs/a")
        );
        assert_eq!(c.get("data.window").unwrap().as_integer(), Some(128));
        let text = c.text();
        assert!(
            text.contains(&format!("student = \"{base}/g.json\"")),
            "{text}"
        );
        assert!(text.contains("\"/abs\""), "{text}");
        c.set("train.epochs", toml::Value::Integer(3)).unwrap();
        assert_eq!(c.get("train.epochs").unwrap().as_integer(), Some(3));
        assert!(c.set("data.window.x", toml::Value::Integer(1)).is_err());
        c.set("step.0.epochs", toml::Value::Integer(2)).unwrap();
        assert!(c.text().contains("epochs = 2"), "{}", c.text());
        assert!(c.set("step.5.epochs", toml::Value::Integer(2)).is_err());
    }
}
