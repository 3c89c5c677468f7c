//! Float weights of a graph, stored as safetensors beside the graph file.
//!
//! Tensor names are `{node}.{param}` with PyTorch's parameter names (`weight`, `bias`,
//! `running_mean`, `running_var`) and PyTorch's layouts (`[out, in/groups, k...]` for
//! convolutions, `[out, in]` for linear layers), so weights move to and from PyTorch by name.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::{GraphError, Result};
use crate::graph::{Analysis, Graph};

/// A named f32 tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

/// All weights of a graph, by tensor name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Weights {
    /// Tensors by `{node}.{param}` name.
    pub tensors: BTreeMap<String, Tensor>,
}

impl Weights {
    /// Reads a safetensors file of f32 tensors.
    pub fn load(path: &Path) -> Result<Weights> {
        let err = |message: String| GraphError::Weights {
            path: path.to_path_buf(),
            message,
        };
        let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        let file = SafeTensors::deserialize(&bytes).map_err(|e| err(e.to_string()))?;
        let mut tensors = BTreeMap::new();
        for (name, view) in file.tensors() {
            if view.dtype() != Dtype::F32 {
                return Err(err(format!(
                    "tensor '{name}' is {:?}; expected F32",
                    view.dtype()
                )));
            }
            let data = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            tensors.insert(
                name,
                Tensor {
                    shape: view.shape().to_vec(),
                    data,
                },
            );
        }
        Ok(Weights { tensors })
    }

    /// Writes a safetensors file atomically (a temporary file renamed over the target).
    pub fn save(&self, path: &Path) -> Result<()> {
        let err = |message: String| GraphError::Weights {
            path: path.to_path_buf(),
            message,
        };
        let bytes: BTreeMap<&str, Vec<u8>> = self
            .tensors
            .iter()
            .map(|(n, t)| {
                (
                    n.as_str(),
                    t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
                )
            })
            .collect();
        let views = self
            .tensors
            .iter()
            .map(|(n, t)| {
                TensorView::new(Dtype::F32, t.shape.clone(), &bytes[n.as_str()])
                    .map(|v| (n.as_str(), v))
                    .map_err(|e| err(e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        let data = safetensors::serialize(views, None).map_err(|e| err(e.to_string()))?;
        crate::write_atomic(path, &data).map_err(|e| err(e.to_string()))
    }

    /// Checks that the weights hold exactly the tensors `graph` needs, with the right shapes.
    pub fn check(&self, graph: &Graph, analysis: &Analysis, path: &Path) -> Result<()> {
        let err = |message: String| GraphError::Weights {
            path: path.to_path_buf(),
            message,
        };
        let mut expected = 0;
        for (node, info) in graph.nodes.iter().zip(&analysis.nodes) {
            for p in &info.shape.tensors {
                expected += 1;
                let name = format!("{}.{}", node.name, p.name);
                match self.tensors.get(&name) {
                    None => {
                        return Err(err(format!(
                            "missing tensor '{name}' (shape {:?})",
                            p.shape
                        )));
                    }
                    Some(t) if t.shape != p.shape => {
                        return Err(err(format!(
                            "tensor '{name}' has shape {:?}; layer '{}' needs {:?}",
                            t.shape, node.name, p.shape
                        )));
                    }
                    Some(_) => {}
                }
            }
        }
        if self.tensors.len() != expected {
            let extra: Vec<&String> = self
                .tensors
                .keys()
                .filter(|k| {
                    !graph.nodes.iter().zip(&analysis.nodes).any(|(n, a)| {
                        a.shape
                            .tensors
                            .iter()
                            .any(|p| **k == format!("{}.{}", n.name, p.name))
                    })
                })
                .collect();
            return Err(err(format!("tensors the graph does not use: {extra:?}")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safetensors_round_trip() {
        let mut w = Weights::default();
        w.tensors.insert(
            "fc.weight".into(),
            Tensor {
                shape: vec![2, 3],
                data: vec![1.0, -2.5, 3.0, 0.0, 1e-7, -0.0],
            },
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        w.save(&path).unwrap();
        assert_eq!(Weights::load(&path).unwrap(), w);
    }

    #[test]
    fn garbage_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        std::fs::write(&path, b"not a safetensors file").unwrap();
        let err = Weights::load(&path).unwrap_err().to_string();
        assert!(err.contains("w.safetensors"), "{err}");
    }
}
