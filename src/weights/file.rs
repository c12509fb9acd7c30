//! Checking weights against a graph, and loading and saving them as `.safetensors` files.

use super::{Entry, Tensor, Weights, dims};
use crate::error::{Error, Result};
use crate::ir::{Graph, ParamSpec};
use safetensors::tensor::{Metadata, TensorInfo};
use safetensors::{Dtype, SafeTensorError, SafeTensors};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

/// Longest list of tensors an error message prints before `... and N more`.
const MAX_LISTED: usize = 20;

impl Weights {
    /// Checks that every parameter of `graph` is present with its exact shape and with as
    /// many values as its shape holds. Extra tensors are allowed here (a pass may have
    /// removed the layer that used them); [`Weights::load_safetensors`] is stricter.
    /// Generates nothing.
    pub fn check(&self, graph: &Graph) -> Result<()> {
        let mut report = Report::default();
        for spec in unique_params(graph) {
            match self.map.get(&spec.key) {
                None => report.missing(&spec),
                Some(e) if e.shape() != spec.shape => report.wrong(&spec, "F32", e.shape()),
                Some(Entry::Dense(t)) if t.data.len() != spec.shape.iter().product::<usize>() => {
                    report.wrong.push(format!(
                        "`{}`: shape {} holds {} values, the tensor has {}",
                        spec.key,
                        dims(&t.shape),
                        spec.shape.iter().product::<usize>(),
                        t.data.len()
                    ));
                }
                Some(_) => {}
            }
        }
        match report.render(&graph.name) {
            None => Ok(()),
            Some(message) => Err(Error::Invalid(message)),
        }
    }

    /// Loads the parameters of `graph` from a `.safetensors` file.
    ///
    /// Every parameter must be present with its exact shape, and nothing else may be there
    /// except integer `*num_batches_tracked` counters, which are ignored. `F32` tensors are
    /// read as is; `F16`, `BF16` (exactly) and `F64` (rounded) are converted to `F32`; any
    /// other dtype is refused. A file that does not fit is one [`Error::Weights`] listing
    /// all the differences; a corrupt file is an [`Error::Weights`] saying what is wrong.
    pub fn load_safetensors(path: impl AsRef<Path>, graph: &Graph) -> Result<Weights> {
        let path = path.as_ref();
        let fail = |message: String| Error::Weights { path: path.display().to_string(), message };
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let meta = file.metadata().map_err(|e| Error::io(path, e))?;
        if !meta.is_file() {
            return Err(Error::io(path, "not a regular file"));
        }
        // SAFETY: the map is read-only and lives only for this call: every tensor is copied
        // out of it before it is dropped. Like every mmap-based loader, we rely on no other
        // process truncating or rewriting the file meanwhile (our own writers only ever
        // replace files by renaming, which leaves this mapping intact).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let bytes: &[u8] = &map;
        let Some(len_bytes) = bytes.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()) else {
            return Err(fail(format!(
                "not a safetensors file: {} bytes is shorter than the 8-byte header length",
                bytes.len()
            )));
        };
        let header_len = u64::from_le_bytes(len_bytes);
        if header_len > (bytes.len() - 8) as u64 {
            return Err(fail(format!(
                "not a safetensors file, or truncated: its header length {header_len} runs past \
                 the end of the file ({} bytes)",
                bytes.len()
            )));
        }
        let st = SafeTensors::deserialize(bytes).map_err(|e| fail(describe(e)))?;

        let mut report = Report::default();
        let mut found: BTreeMap<&str, _> = BTreeMap::new();
        for (name, view) in st.iter() {
            let integer = matches!(
                view.dtype(),
                Dtype::I8 | Dtype::I16 | Dtype::I32 | Dtype::I64 | Dtype::U8 | Dtype::U16 | Dtype::U32 | Dtype::U64
            );
            if !(integer && name.ends_with("num_batches_tracked")) {
                found.insert(name, view);
            }
        }
        let mut weights = Weights::new();
        for spec in unique_params(graph) {
            let Some(view) = found.remove(spec.key.as_str()) else {
                report.missing(&spec);
                continue;
            };
            if view.shape() != spec.shape.as_slice() {
                report.wrong(&spec, &view.dtype().to_string(), view.shape());
                continue;
            }
            match to_f32(view.dtype(), view.data()) {
                Some(data) => {
                    let tensor = Tensor { shape: spec.shape.clone(), data };
                    weights.insert(spec.key.clone(), tensor);
                }
                None => report.wrong(&spec, &view.dtype().to_string(), view.shape()),
            }
        }
        for (name, view) in found {
            report.unexpected.push(format!("`{name}` {} {}", view.dtype(), dims(view.shape())));
        }
        match report.render(&graph.name) {
            None => Ok(weights),
            Some(message) => Err(fail(message)),
        }
    }

    /// Saves every tensor as `F32` to a `.safetensors` file that PyTorch's
    /// `safetensors.torch.load_file` reads.
    ///
    /// The file is written to a temporary file in the same directory and renamed into place,
    /// so `path` is either the complete new file or untouched.
    pub fn save_safetensors(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let fail = |message: String| Error::Weights { path: path.display().to_string(), message };
        let mut infos = Vec::with_capacity(self.map.len());
        let mut offset = 0usize;
        for (key, t) in self.iter() {
            let n = t.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
            if n != Some(t.data.len()) {
                return Err(fail(format!("tensor `{key}` of shape {} has {} values", dims(&t.shape), t.data.len())));
            }
            let end = offset + 4 * t.data.len();
            infos.push((
                key.to_string(),
                TensorInfo { dtype: Dtype::F32, shape: t.shape.clone(), data_offsets: (offset, end) },
            ));
            offset = end;
        }
        // The crate's own `Metadata` writes the header, so its format is the crate's.
        let metadata = Metadata::new(None, infos).map_err(|e| fail(e.to_string()))?;
        let mut header = serde_json::to_vec(&metadata).map_err(|e| fail(e.to_string()))?;
        header.resize(header.len().next_multiple_of(8), b' ');
        crate::npy::write_atomic(path, |w| {
            w.write_all(&(header.len() as u64).to_le_bytes())?;
            w.write_all(&header)?;
            for (_, t) in self.iter() {
                for v in &t.data {
                    w.write_all(&v.to_le_bytes())?;
                }
            }
            Ok(())
        })
    }
}

/// The parameters of `graph`, each key once (in topological order).
fn unique_params(graph: &Graph) -> Vec<ParamSpec> {
    let mut seen = std::collections::HashSet::new();
    graph.params().into_iter().filter(|p| seen.insert(p.key.clone())).collect()
}

/// Little-endian `bytes` of `dtype` as f32, or `None` for a non-float dtype.
pub(super) fn to_f32(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    let v = match dtype {
        Dtype::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
            .collect(),
        Dtype::F16 => bytes.chunks_exact(2).map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]]))).collect(),
        Dtype::BF16 => {
            bytes.chunks_exact(2).map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16)).collect()
        }
        _ => return None,
    };
    Some(v)
}

/// IEEE half precision to single precision (exact).
pub(super) fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h & 0x8000) as u32) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let magnitude = match exp {
        // Zero and subnormals: man * 2^-24, exact in f32.
        0 => man as f32 * f32::from_bits(0x3380_0000),
        // Infinity and NaN (payload kept).
        31 => f32::from_bits(0x7f80_0000 | (man << 13)),
        // Normal: rebias the exponent from 15 to 127.
        _ => f32::from_bits(((exp + 112) << 23) | (man << 13)),
    };
    f32::from_bits(magnitude.to_bits() | sign)
}

/// Words for what the `safetensors` crate found wrong with a file.
fn describe(e: SafeTensorError) -> String {
    let what = match e {
        SafeTensorError::HeaderTooLarge => "its header is larger than the 100 MB the format allows".into(),
        SafeTensorError::HeaderTooSmall | SafeTensorError::InvalidHeaderLength => {
            "its header length does not fit the file".into()
        }
        SafeTensorError::InvalidHeader(_) => "its header is not UTF-8 text".into(),
        SafeTensorError::InvalidHeaderDeserialization(e) | SafeTensorError::JsonError(e) => {
            format!("its header is not a safetensors JSON header ({e})")
        }
        SafeTensorError::InvalidOffset(name) => {
            format!("tensor `{name}` has data offsets that overlap, leave gaps or run out of order")
        }
        SafeTensorError::TensorInvalidInfo => "a tensor's data offsets do not match its shape and dtype".into(),
        SafeTensorError::MetadataIncompleteBuffer => {
            "the file's size does not match the tensors its header lists (truncated or extended?)".into()
        }
        SafeTensorError::ValidationOverflow => "a tensor's shape is too large (its size overflows)".into(),
        other => other.to_string(),
    };
    format!("not a valid safetensors file: {what}")
}

/// The differences between a set of tensors and what a graph needs.
#[derive(Default)]
struct Report {
    missing: Vec<String>,
    unexpected: Vec<String>,
    wrong: Vec<String>,
}

impl Report {
    fn missing(&mut self, spec: &ParamSpec) {
        self.missing.push(format!("`{}` F32 {}", spec.key, dims(&spec.shape)));
    }

    fn wrong(&mut self, spec: &ParamSpec, dtype: &str, shape: &[usize]) {
        self.wrong.push(format!("`{}`: expected F32 {}, found {dtype} {}", spec.key, dims(&spec.shape), dims(shape)));
    }

    /// The error message, or `None` when the tensors fit.
    fn render(&self, network: &str) -> Option<String> {
        if self.missing.is_empty() && self.unexpected.is_empty() && self.wrong.is_empty() {
            return None;
        }
        let mut m = format!("the weights do not fit network `{network}`");
        let lists = [
            (&self.missing, "missing tensor", ""),
            (&self.unexpected, "unexpected tensor", ""),
            (&self.wrong, "tensor", " with the wrong shape or dtype (F16, BF16 and F64 are converted)"),
        ];
        for (list, noun, rest) in lists {
            if list.is_empty() {
                continue;
            }
            let plural = if list.len() == 1 { "" } else { "s" };
            let _ = write!(m, "\n  {} {noun}{plural}{rest}:", list.len());
            for line in list.iter().take(MAX_LISTED) {
                let _ = write!(m, "\n    {line}");
            }
            if list.len() > MAX_LISTED {
                let _ = write!(m, "\n    ... and {} more", list.len() - MAX_LISTED);
            }
        }
        Some(m)
    }
}
