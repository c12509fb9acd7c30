//! Parameter tensors: seeded initialisation, and `.safetensors` load and save.
//!
//! Keys are PyTorch `state_dict` keys, as [`Op::params`](crate::ir::Op::params) names them,
//! so a checkpoint saved with `safetensors.torch.save_file(model.state_dict(), path)` loads
//! as is. Loading is all or nothing: a file that does not fit the network is one error
//! listing every missing, unexpected and mis-shaped tensor, so a network never runs with
//! some weights silently left at their initial values.
//!
//! Seeded tensors are generated when first read, not by [`Weights::init`]: the compiler
//! generates a convolution's weights straight into their packed order
//! ([`Weights::columns`]), so Inception-v4's 170 MB of initial weights are never held in
//! memory next to their packed copy. Batch-norm folding and sibling merging keep such
//! tensors lazy ([`Weights::scale_rows`], [`Weights::concat_rows`]); every other access
//! generates the tensor once and keeps it. The values do not depend on which happens.

mod stream;

use crate::error::{Error, Result};
use crate::ir::{Graph, ParamRole, ParamSpec};
use safetensors::tensor::{Metadata, TensorInfo};
use safetensors::{Dtype, SafeTensorError, SafeTensors};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use stream::{Dist, Stream};
pub use stream::{LANES, MAX_ROWS};

/// Longest list of tensors an error message prints before `... and N more`.
const MAX_LISTED: usize = 20;

/// A dense f32 tensor in row-major (C) order.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// The values; `data.len()` is the product of `shape` (checked where weights are used).
    pub data: Vec<f32>,
}

/// The parameter tensors of a network, by state-dict key.
///
/// Equality compares keys and values, generating lazy tensors as needed.
#[derive(Clone, Debug, Default)]
pub struct Weights {
    map: BTreeMap<String, Entry>,
}

impl PartialEq for Weights {
    fn eq(&self, other: &Weights) -> bool {
        self.map.len() == other.map.len()
            && self.map.iter().zip(&other.map).all(|((ka, a), (kb, b))| ka == kb && a.tensor() == b.tensor())
    }
}

impl Weights {
    /// No tensors.
    pub fn new() -> Weights {
        Weights::default()
    }

    /// The tensor named `key` (a lazy tensor is generated now, once, and kept).
    pub fn get(&self, key: &str) -> Option<&Tensor> {
        self.map.get(key).map(Entry::tensor)
    }

    /// The tensor stored under `key`, to change in place (generated first if lazy).
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Tensor> {
        self.map.get_mut(key).map(Entry::tensor_mut)
    }

    /// The tensor named `key` if its values are in memory, without generating them.
    pub fn resident(&self, key: &str) -> Option<&Tensor> {
        match self.map.get(key)? {
            Entry::Dense(t) => Some(t),
            Entry::Lazy { cache, .. } => cache.get(),
        }
    }

    /// The shape of tensor `key`, without generating it.
    pub fn shape(&self, key: &str) -> Option<&[usize]> {
        self.map.get(key).map(Entry::shape)
    }

    /// Every tensor's key and shape, by key in byte order, without generating any.
    pub fn shapes(&self) -> impl Iterator<Item = (&str, &[usize])> {
        self.map.iter().map(|(k, e)| (k.as_str(), e.shape()))
    }

    /// Adds or replaces the tensor named `key`, returning the one it replaced.
    pub fn insert(&mut self, key: impl Into<String>, tensor: Tensor) -> Option<Tensor> {
        self.map.insert(key.into(), Entry::Dense(tensor)).map(Entry::into_tensor)
    }

    /// Keeps only the tensors whose key satisfies `keep`.
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.map.retain(|k, _| keep(k));
    }

    /// All tensors, by key in byte order (lazy ones are generated and kept).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.map.iter().map(|(k, e)| (k.as_str(), e.tensor()))
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when there are no tensors.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Tensor `key` (seen as `[shape[0]][rest]`), to read in blocks of up to [`MAX_ROWS`]
    /// rows column by column ([`ColumnReader`]): the order of the packed convolution
    /// weights, a group of output channels per column. A lazy tensor is generated straight
    /// into that order, and not kept.
    pub fn columns(&self, key: &str) -> Result<ColumnReader<'_>> {
        let e = self.entry(key)?;
        let (rows, len) = (n_rows(e.shape()), row_len(e.shape()));
        let source = match e {
            Entry::Lazy { recipe, cache, .. } if cache.get().is_none() => Source::Lazy(recipe),
            _ => {
                let data = &e.tensor().data;
                if data.len() != rows * len {
                    return Err(Error::Invalid(format!(
                        "tensor `{key}` holds {} values, not {}",
                        data.len(),
                        dims(e.shape())
                    )));
                }
                Source::Dense(data)
            }
        };
        Ok(ColumnReader { rows, len, source })
    }

    /// Multiplies row `r` of tensor `key` (seen as `[scale.len()][rest]`) by `scale[r]`,
    /// each value as `v * scale[r] as f32` (one f32 multiply). A lazy tensor stays lazy when the rows
    /// are its first dimension and it was not scaled before.
    pub fn scale_rows(&mut self, key: &str, scale: &[f64]) -> Result<()> {
        let e = self.map.get_mut(key).ok_or_else(|| missing_tensor(key))?;
        let n = match e {
            Entry::Dense(t) => t.data.len(),
            Entry::Lazy { shape, .. } => shape.iter().product(),
        };
        if scale.is_empty() || !n.is_multiple_of(scale.len()) {
            return Err(Error::Invalid(format!(
                "tensor `{key}` {} has no {} rows to scale",
                dims(e.shape()),
                scale.len()
            )));
        }
        if let Entry::Lazy { shape, recipe, cache } = e
            && cache.get().is_none()
            && n_rows(shape) == scale.len()
            && recipe.parts.iter().all(|p| p.scale.is_none())
        {
            let mut first = 0;
            for p in &mut recipe.parts {
                p.scale = Some(scale[first..first + p.rows].iter().map(|&s| s as f32).collect());
                first += p.rows;
            }
            return Ok(());
        }
        let t = e.tensor_mut();
        for (chunk, &s) in t.data.chunks_exact_mut(n / scale.len()).zip(scale) {
            let s = s as f32;
            chunk.iter_mut().for_each(|v| *v *= s);
        }
        Ok(())
    }

    /// Inserts under `key` the tensors `parts` concatenated along their first dimension
    /// (their other dimensions must be equal). Lazy when every part is lazy.
    pub fn concat_rows(&mut self, key: impl Into<String>, parts: &[&str]) -> Result<()> {
        let entries = parts.iter().map(|k| self.entry(k)).collect::<Result<Vec<_>>>()?;
        let Some(first) = entries.first() else {
            return Err(Error::Invalid("concatenation of no tensors".into()));
        };
        let rest = first.shape().get(1..).unwrap_or_default();
        if let Some(i) =
            entries.iter().position(|e| e.shape().get(1..).unwrap_or_default() != rest || e.shape().is_empty())
        {
            return Err(Error::Invalid(format!(
                "cannot concatenate tensor `{}` {} with `{}` {} along the first dimension",
                parts[i],
                dims(entries[i].shape()),
                parts[0],
                dims(first.shape())
            )));
        }
        let mut shape = first.shape().to_vec();
        shape[0] = entries.iter().map(|e| e.shape()[0]).sum();
        let lazy: Option<Vec<&Recipe>> = entries
            .iter()
            .map(|e| match e {
                Entry::Lazy { recipe, cache, .. } if cache.get().is_none() => Some(recipe),
                _ => None,
            })
            .collect();
        let entry = match lazy {
            Some(recipes) => Entry::Lazy {
                shape,
                recipe: Recipe { parts: recipes.iter().flat_map(|r| r.parts.iter().cloned()).collect() },
                cache: OnceLock::new(),
            },
            None => {
                let data = entries.iter().flat_map(|e| e.tensor().data.iter().copied()).collect();
                Entry::Dense(Tensor { shape, data })
            }
        };
        self.map.insert(key.into(), entry);
        Ok(())
    }

    fn entry(&self, key: &str) -> Result<&Entry> {
        self.map.get(key).ok_or_else(|| missing_tensor(key))
    }

    /// Deterministic weights for every parameter of `graph`, the same on every platform.
    ///
    /// Each tensor draws from its own stream, seeded by `seed` and a hash of its key, so
    /// adding or removing a layer leaves every other layer's values unchanged. Nothing is
    /// generated here: each tensor is when first read (see the module documentation).
    ///
    /// | role | values |
    /// |---|---|
    /// | conv / linear weight | mean 0, std `sqrt(2 / fan_in)` (He), near-normal (see `Dist::Normal`) |
    /// | bias | uniform in `±1/sqrt(fan_in)` (PyTorch's default) |
    /// | batch-norm gamma, running variance | uniform in `1 ± 0.1` |
    /// | batch-norm beta, running mean | uniform in `±0.1` |
    ///
    /// Batch norms are near, but not exactly, the identity so that tests of them can fail.
    pub fn init(graph: &Graph, seed: u64) -> Weights {
        let mut w = Weights::new();
        for spec in graph.params() {
            let fan_in = spec.fan_in.max(1) as f64;
            let dist = match spec.role {
                ParamRole::Weight => Dist::Normal { std: (2.0 / fan_in).sqrt() },
                ParamRole::Bias => Dist::Uniform { center: 0.0, half: 1.0 / fan_in.sqrt() },
                ParamRole::BnWeight | ParamRole::RunningVar => Dist::Uniform { center: 1.0, half: 0.1 },
                ParamRole::BnBias | ParamRole::RunningMean => Dist::Uniform { center: 0.0, half: 0.1 },
            };
            let part = Part { stream: Stream::for_key(seed, &spec.key, dist), rows: n_rows(&spec.shape), scale: None };
            let entry = Entry::Lazy { shape: spec.shape, recipe: Recipe { parts: vec![part] }, cache: OnceLock::new() };
            w.map.insert(spec.key, entry);
        }
        w
    }

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
fn to_f32(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
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
fn f16_to_f32(h: u16) -> f32 {
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

fn dims(shape: &[usize]) -> String {
    let d: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", d.join(", "))
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

/// A stored tensor: its values, or how to generate them.
#[derive(Clone, Debug)]
enum Entry {
    /// Values in memory.
    Dense(Tensor),
    /// Generated from `recipe` on first read and then kept in `cache`; rows can be
    /// generated without keeping them ([`Weights::columns`]).
    Lazy { shape: Vec<usize>, recipe: Recipe, cache: OnceLock<Tensor> },
}

impl Entry {
    fn shape(&self) -> &[usize] {
        match self {
            Entry::Dense(t) => &t.shape,
            Entry::Lazy { shape, .. } => shape,
        }
    }

    fn tensor(&self) -> &Tensor {
        match self {
            Entry::Dense(t) => t,
            Entry::Lazy { shape, recipe, cache } => cache.get_or_init(|| recipe.tensor(shape)),
        }
    }

    /// The values, in memory for good.
    fn tensor_mut(&mut self) -> &mut Tensor {
        if let Entry::Lazy { .. } = self {
            let dense = std::mem::replace(self, Entry::Dense(Tensor { shape: vec![], data: vec![] })).into_tensor();
            *self = Entry::Dense(dense);
        }
        match self {
            Entry::Dense(t) => t,
            Entry::Lazy { .. } => unreachable!("made dense above"),
        }
    }

    fn into_tensor(self) -> Tensor {
        match self {
            Entry::Dense(t) => t,
            Entry::Lazy { shape, recipe, mut cache } => cache.take().unwrap_or_else(|| recipe.tensor(&shape)),
        }
    }
}

/// A generated tensor: the rows (first dimension) of seeded streams, one after another.
#[derive(Clone, Debug)]
struct Recipe {
    parts: Vec<Part>,
}

/// Consecutive rows of a [`Recipe`]: the first `rows` rows of a stream's tensor.
#[derive(Clone, Debug)]
struct Part {
    stream: Stream,
    rows: usize,
    /// Row `r`'s values times `scale[r]` (one f32 multiply), from a folded batch norm.
    scale: Option<Arc<[f32]>>,
}

impl Recipe {
    fn tensor(&self, shape: &[usize]) -> Tensor {
        let mut data = vec![0.0; shape.iter().product()];
        self.fill(row_len(shape), 0..n_rows(shape), &mut data);
        Tensor { shape: shape.to_vec(), data }
    }

    /// Writes rows `rows` (of `len` values each) to `out`.
    fn fill(&self, len: usize, rows: Range<usize>, out: &mut [f32]) {
        let mut first = 0;
        let mut out = out;
        for p in &self.parts {
            let (lo, hi) = (rows.start.max(first), rows.end.min(first + p.rows));
            if lo < hi {
                let (here, rest) = std::mem::take(&mut out).split_at_mut((hi - lo) * len);
                p.stream.fill(((lo - first) * len) as u64, here);
                if let Some(scale) = &p.scale {
                    for (row, &s) in here.chunks_exact_mut(len.max(1)).zip(&scale[lo - first..hi - first]) {
                        row.iter_mut().for_each(|v| *v *= s);
                    }
                }
                out = rest;
            }
            first += p.rows;
        }
    }
}

/// A tensor resolved by [`Weights::columns`].
pub struct ColumnReader<'a> {
    rows: usize,
    /// Values per row.
    len: usize,
    source: Source<'a>,
}

enum Source<'a> {
    /// All the values, row after row.
    Dense(&'a [f32]),
    Lazy(&'a Recipe),
}

impl<'a> ColumnReader<'a> {
    /// Rows (the first dimension).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Values per row.
    pub fn row_len(&self) -> usize {
        self.len
    }

    /// Rows `rows` to read column by column, each column as `width` values: a multiple
    /// of [`LANES`], at most [`MAX_ROWS`], and at least as many as the rows.
    pub fn block(&self, rows: Range<usize>, width: usize) -> Result<RowBlock<'a>> {
        let n = rows.end.saturating_sub(rows.start);
        if rows.start > rows.end
            || n > width
            || width > MAX_ROWS
            || !width.is_multiple_of(LANES)
            || rows.end > self.rows
        {
            return Err(Error::Invalid(format!(
                "rows {rows:?} of a tensor of {} rows as a block {width} wide",
                self.rows
            )));
        }
        let source = match self.source {
            Source::Dense(data) => Block::Dense(&data[rows.start * self.len..rows.end * self.len]),
            Source::Lazy(recipe) => {
                let mut segments = Vec::new();
                let mut first = 0;
                for p in &recipe.parts {
                    let (lo, hi) = (rows.start.max(first), rows.end.min(first + p.rows));
                    if lo < hi {
                        let scale = std::array::from_fn(|k| match &p.scale {
                            Some(s) if (lo..hi).contains(&(rows.start + k)) => s[rows.start + k - first],
                            _ => 1.0,
                        });
                        // Lane k is row rows.start + k: row `rows.start - first` of this part
                        // (before its first, for a block that starts in an earlier part).
                        let index = (rows.start as u64).wrapping_sub(first as u64).wrapping_mul(self.len as u64);
                        segments.push(Segment {
                            stream: p.stream,
                            lanes: lo - rows.start..hi - rows.start,
                            index,
                            scale,
                        });
                    }
                    first += p.rows;
                }
                Block::Lazy(segments)
            }
        };
        Ok(RowBlock { n, width, len: self.len, source })
    }
}

/// Rows of a tensor, read column by column ([`ColumnReader::block`]).
pub struct RowBlock<'a> {
    /// Rows.
    n: usize,
    /// Values per column written.
    width: usize,
    /// Values per row.
    len: usize,
    source: Block<'a>,
}

enum Block<'a> {
    /// The rows' values.
    Dense(&'a [f32]),
    /// The lanes each part of the recipe gives.
    Lazy(Vec<Segment>),
}

/// The lanes `lanes` of a block, from one stream: lane `k`, column `c` is value `index + k *
/// len + c`, times `scale[k]`.
struct Segment {
    stream: Stream,
    lanes: Range<usize>,
    index: u64,
    scale: [f32; MAX_ROWS],
}

impl RowBlock<'_> {
    /// Writes columns `first`, `first + step`, ... (`count` of them) of the block, each as
    /// the block's `width` values starting at `out[t * out_step]` for the `t`-th; the lanes
    /// past the block's rows are zero, and `out` between the columns is left alone.
    pub fn read(&self, first: usize, step: usize, count: usize, out: &mut [f32], out_step: usize) -> Result<()> {
        let width = self.width;
        if count == 0 {
            return Ok(());
        }
        let last = first + (count - 1) * step;
        if last >= self.len || out_step < width || out.len() < (count - 1) * out_step + width {
            return Err(Error::Invalid(format!(
                "{count} columns from {first} by {step} of rows of {} values into {} values by {out_step}",
                self.len,
                out.len()
            )));
        }
        match &self.source {
            Block::Dense(values) => {
                for t in 0..count {
                    let column = &mut out[t * out_step..t * out_step + width];
                    for (k, v) in column.iter_mut().enumerate() {
                        *v = if k < self.n { values[k * self.len + first + t * step] } else { 0.0 };
                    }
                }
                return Ok(());
            }
            Block::Lazy(segments) => {
                let at = |index: u64, out_step| stream::Columns {
                    first: index.wrapping_add(first as u64),
                    stride: self.len as u64,
                    step: step as u64,
                    count,
                    width,
                    out_step,
                };
                if let [one] = segments.as_slice() {
                    one.stream.fill_columns(at(one.index, out_step), &one.scale, out);
                } else {
                    let mut spare = vec![0.0; count * width];
                    for seg in segments {
                        seg.stream.fill_columns(at(seg.index, width), &seg.scale, &mut spare);
                        for (t, s) in spare.chunks_exact(width).enumerate() {
                            out[t * out_step..][seg.lanes.clone()].copy_from_slice(&s[seg.lanes.clone()]);
                        }
                    }
                }
            }
        }
        if self.n < width {
            for t in 0..count {
                out[t * out_step + self.n..t * out_step + width].fill(0.0);
            }
        }
        Ok(())
    }
}

/// Rows of a tensor of `shape` seen as `[shape[0]][rest]` (a scalar is one row).
fn n_rows(shape: &[usize]) -> usize {
    shape.first().copied().unwrap_or(1)
}

/// Values per row of a tensor of `shape` (see [`n_rows`]).
fn row_len(shape: &[usize]) -> usize {
    shape.get(1..).unwrap_or_default().iter().product()
}

fn missing_tensor(key: &str) -> Error {
    Error::Invalid(format!("no weight tensor `{key}`"))
}

/// A seeded random input of `n` values, uniform in [-1, 1) (the CLI's default input).
pub fn random_input(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed ^ 0x6a09_e667_f3bc_c908;
    (0..n)
        .map(|_| {
            // splitmix64
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::diag::Span;
    use crate::ir::infer::infer;
    use crate::ir::{BatchNorm, Conv2d, Linear, NodeId, Op, Pad, Shape};

    /// Adds `op` on `operands` with its inferred shape.
    pub(crate) fn add(g: &mut Graph, op: Op, operands: &[NodeId]) -> NodeId {
        let shapes: Vec<Shape> = operands.iter().map(|&o| g.node(o).shape.clone()).collect();
        let refs: Vec<&Shape> = shapes.iter().collect();
        let shape = infer(&op, &refs).expect("a valid test graph");
        let name = format!("n{}", g.node_ids().len());
        g.add(op, shape, Span::default(), name, operands)
    }

    /// A graph with one input of `shape`.
    pub(crate) fn with_input(shape: Shape) -> (Graph, NodeId) {
        let mut g = Graph::new("test");
        let x = g.add(Op::Input, shape, Span::default(), "x", &[]);
        g.inputs.push(x);
        (g, x)
    }

    pub(crate) fn conv(key: &str, cin: usize, cout: usize, k: [usize; 2], bias: bool) -> Op {
        Op::Conv2d(Conv2d {
            out_channels: cout,
            in_channels: cin,
            kernel: k,
            stride: [1, 1],
            pad: Pad::default(),
            groups: 1,
            key: key.into(),
            bias,
            epilogue: Default::default(),
            winograd: None,
        })
    }

    /// conv(3->4, 3x3, bias) -> bn -> flatten -> linear(4*4*4 -> 5).
    fn small_net() -> Graph {
        let (mut g, x) = with_input(Shape::nchw(3, 6, 6));
        let c = add(&mut g, conv("features.conv", 3, 4, [3, 3], true), &[x]);
        let b = add(&mut g, Op::BatchNorm(BatchNorm { channels: 4, eps: 1e-3, key: "features.bn".into() }), &[c]);
        let f = add(&mut g, Op::Flatten, &[b]);
        let l = add(
            &mut g,
            Op::Linear(Linear { in_features: 64, out_features: 5, key: "fc".into(), bias: true, relu: false }),
            &[f],
        );
        g.outputs.push(("logits".into(), l));
        g
    }

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().expect("temporary directory")
    }

    /// Writes `tensors` (name, dtype, shape, little-endian bytes) with the safetensors crate.
    fn write_raw(path: &Path, tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) {
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
            .iter()
            .map(|(n, d, s, b)| (n.to_string(), safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap()))
            .collect();
        std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
    }

    fn f32_bytes(n: usize) -> Vec<u8> {
        (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect()
    }

    /// Every tensor of `g` as F32 bytes, except those for which `skip` is true.
    fn tensors_of(g: &Graph, skip: impl Fn(&str) -> bool) -> Vec<(String, Dtype, Vec<usize>, Vec<u8>)> {
        g.params()
            .into_iter()
            .filter(|p| !skip(&p.key))
            .map(|p| {
                let n = p.shape.iter().product();
                (p.key, Dtype::F32, p.shape, f32_bytes(n))
            })
            .collect()
    }

    fn load_error(path: &Path, g: &Graph) -> String {
        match Weights::load_safetensors(path, g) {
            Err(Error::Weights { path: p, message }) => {
                assert_eq!(p, path.display().to_string());
                message
            }
            other => panic!("expected a weights error, got {other:?}"),
        }
    }

    fn as_refs(v: &[(String, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> {
        v.iter().map(|(n, d, s, b)| (n.as_str(), *d, s.clone(), b.clone())).collect()
    }

    #[test]
    fn init_is_deterministic_keyed_and_has_the_right_statistics() {
        let g = small_net();
        let a = Weights::init(&g, 7);
        assert_eq!(a, Weights::init(&g, 7));
        assert_ne!(a.get("fc.weight"), Weights::init(&g, 8).get("fc.weight"));
        assert_eq!(a.len(), 2 + 4 + 2);
        for p in g.params() {
            let t = a.get(&p.key).unwrap();
            assert_eq!(t.shape, p.shape);
            assert_eq!(t.data.len(), p.shape.iter().product::<usize>());
        }
        // Adding a layer leaves the others' values alone.
        let mut g2 = g.clone();
        let out = g2.outputs[0].1;
        let extra = add(
            &mut g2,
            Op::Linear(Linear { in_features: 5, out_features: 2, key: "head".into(), bias: false, relu: false }),
            &[out],
        );
        g2.outputs[0].1 = extra;
        let b = Weights::init(&g2, 7);
        assert_eq!(b.len(), a.len() + 1);
        for (k, t) in a.iter() {
            assert_eq!(b.get(k), Some(t), "{k}");
        }
        // Bit-exact values, pinned so that a platform or refactoring change shows up.
        let w = &a.get("features.conv.weight").unwrap().data;
        let pinned: Vec<u32> = w[..3].iter().map(|v| v.to_bits()).collect();
        assert_eq!(pinned, PINNED_CONV_WEIGHT_BITS);
        // He-normal: std sqrt(2/27) for the 3x3x3 conv. 108 samples: within 25%.
        let std = (w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32).sqrt();
        assert!((std / (2.0f32 / 27.0).sqrt() - 1.0).abs() < 0.25, "std {std}");
        let bias = &a.get("features.conv.bias").unwrap().data;
        assert!(bias.iter().all(|b| b.abs() <= 1.0 / 27f32.sqrt()));
        let gamma = &a.get("features.bn.weight").unwrap().data;
        let var = &a.get("features.bn.running_var").unwrap().data;
        let mean = &a.get("features.bn.running_mean").unwrap().data;
        for v in gamma.iter().chain(var) {
            assert!((0.9..=1.1).contains(v) && *v != 1.0, "{v}");
        }
        assert!(mean.iter().all(|m| m.abs() <= 0.1) && mean.iter().any(|m| *m != 0.0));
    }

    const PINNED_CONV_WEIGHT_BITS: [u32; 3] = [3201431406, 1049708768, 3188855700];

    /// `a` with every tensor generated now (a copy whose tensors are all dense).
    fn dense_copy(a: &Weights) -> Weights {
        let mut d = Weights::new();
        for (k, t) in a.clone().iter() {
            d.insert(k, t.clone());
        }
        d
    }

    /// Rows `rows` of `key` read through [`Weights::columns`] in blocks `width` wide, as
    /// rows (`[row][column]`).
    fn rows_of_by(w: &Weights, key: &str, rows: Range<usize>, width: usize) -> Vec<f32> {
        let reader = w.columns(key).unwrap();
        let len = reader.row_len();
        let mut columns = vec![f32::NAN; len * width];
        reader.block(rows.clone(), width).unwrap().read(0, 1, len, &mut columns, width).unwrap();
        let n = rows.len();
        assert!(columns.chunks_exact(width).all(|c| c[n..].iter().all(|&v| v == 0.0)), "lanes past the rows are zero");
        (0..n).flat_map(|k| (0..len).map(move |c| (k, c))).map(|(k, c)| columns[c * width + k]).collect()
    }

    /// [`rows_of_by`] one vector wide.
    fn rows_of(w: &Weights, key: &str, rows: Range<usize>) -> Vec<f32> {
        rows_of_by(w, key, rows, LANES)
    }

    #[test]
    fn lazy_tensors_read_scale_and_concatenate_like_dense_ones() {
        let g = small_net();
        let mut lazy = Weights::init(&g, 11);
        let mut dense = dense_copy(&lazy);
        assert!(lazy.resident("features.conv.weight").is_none(), "init generates nothing");
        assert!(dense.resident("features.conv.weight").is_some());
        // Rows of a lazy tensor are generated without being kept.
        for w in [&lazy, &dense] {
            assert_eq!(
                rows_of(w, "features.conv.weight", 1..3),
                dense.get("features.conv.weight").unwrap().data[27..81]
            );
        }
        assert!(lazy.resident("features.conv.weight").is_none());
        let reader = lazy.columns("features.conv.weight").unwrap();
        assert!(reader.block(3..5, LANES).is_err());
        assert!(reader.block(0..2, 8).is_err() && reader.block(0..2, 80).is_err());
        let block = reader.block(0..2, LANES).unwrap();
        assert!(block.read(0, 1, 28, &mut [0.0; 28 * LANES], LANES).is_err(), "27 columns");
        assert!(block.read(0, 1, 2, &mut [0.0; LANES + 15], LANES).is_err(), "too short");
        // Every other column, into every third vector.
        let mut strided = vec![-1.0; 3 * 3 * LANES];
        block.read(1, 2, 3, &mut strided, 3 * LANES).unwrap();
        let rows = rows_of(&lazy, "features.conv.weight", 0..2);
        for t in 0..3 {
            assert_eq!(strided[t * 3 * LANES..][..2], [rows[1 + 2 * t], rows[27 + 1 + 2 * t]]);
            assert!(strided[t * 3 * LANES + LANES..][..2 * LANES].iter().all(|&v| v == -1.0), "left alone");
        }
        // Scaling and concatenating give the same values lazily and eagerly, and scaling a
        // second time (which generates the tensor) rounds after each scale, as eagerly.
        for w in [&mut lazy, &mut dense] {
            w.scale_rows("features.conv.weight", &[0.5, 3.0, -1.25, 1e-3]).unwrap();
            w.concat_rows("both", &["features.conv.weight", "features.conv.weight"]).unwrap();
            w.concat_rows("three", &["features.conv.weight", "features.conv.weight", "features.conv.weight"]).unwrap();
            w.concat_rows("twice", &["both", "both"]).unwrap();
            w.scale_rows("both", &[1.5; 8]).unwrap();
            w.concat_rows("biases", &["features.conv.bias", "fc.bias"]).unwrap();
            w.scale_rows("fc.weight", &[0.25]).unwrap();
            assert!(w.scale_rows("fc.bias", &[1.0; 3]).is_err());
            assert!(w.concat_rows("bad", &["fc.weight", "features.conv.weight"]).is_err());
        }
        assert!(lazy.resident("features.conv.weight").is_none() && lazy.resident("biases").is_none());
        assert!(lazy.resident("three").is_none() && lazy.resident("twice").is_none());
        assert!(lazy.resident("both").is_some(), "scaled twice: generated");
        assert_eq!(lazy.shape("twice"), Some(&[16, 3, 3, 3][..]));
        assert_eq!(lazy.get("biases").unwrap().shape, [9]);
        // Blocks within one part and across parts.
        for (key, rows) in [("both", 3..6), ("three", 2..12), ("three", 3..5), ("twice", 0..16), ("twice", 7..8)] {
            let want = &dense.get(key).unwrap().data[rows.start * 27..rows.end * 27];
            assert_eq!(rows_of(&lazy, key, rows.clone()), want, "{key} {rows:?}");
            for width in [32, MAX_ROWS] {
                assert_eq!(rows_of_by(&lazy, key, rows.clone(), width), want, "{key} {rows:?} {width}");
                assert_eq!(rows_of_by(&dense, key, rows.clone(), width), want, "{key} {rows:?} {width}");
            }
        }
        assert_eq!(lazy, dense);
        // A mutated tensor is dense from then on.
        lazy.get_mut("fc.bias").unwrap().data[0] = 7.0;
        assert_eq!(lazy.resident("fc.bias").unwrap().data[0], 7.0);
    }

    #[test]
    fn save_then_load_round_trips() {
        let g = small_net();
        let w = Weights::init(&g, 3);
        let dir = tmp();
        let p = dir.path().join("w.safetensors");
        w.save_safetensors(&p).unwrap();
        assert_eq!(Weights::load_safetensors(&p, &g).unwrap(), w);
        // The crate reads it back too, with every tensor as F32.
        let bytes = std::fs::read(&p).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(st.len(), w.len());
        assert!(st.iter().all(|(_, v)| v.dtype() == Dtype::F32));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file is left");
    }

    #[test]
    fn saving_is_atomic() {
        let g = small_net();
        let w = Weights::init(&g, 3);
        let dir = tmp();
        let p = dir.path().join("w.safetensors");
        w.save_safetensors(&p).unwrap();
        let before = std::fs::read(&p).unwrap();
        let mut bad = w.clone();
        bad.insert("broken", Tensor { shape: vec![2, 2], data: vec![1.0] });
        let e = bad.save_safetensors(&p).unwrap_err().to_string();
        assert!(e.contains("`broken` of shape [2, 2] has 1 values"), "{e}");
        let e = w.save_safetensors(dir.path().join("missing/dir/w.safetensors")).unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e:?}");
        assert_eq!(std::fs::read(&p).unwrap(), before);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn num_batches_tracked_is_ignored_and_half_precision_converted() {
        let g = small_net();
        let dir = tmp();
        let p = dir.path().join("w.safetensors");
        let mut t = tensors_of(&g, |k| k == "features.bn.weight");
        // f16 bit patterns: 1.0, -2.0, 65504 (largest), 2^-24 (smallest subnormal).
        let halves: Vec<u8> = [0x3c00u16, 0xc000, 0x7bff, 0x0001].iter().flat_map(|h| h.to_le_bytes()).collect();
        t.push(("features.bn.weight".into(), Dtype::F16, vec![4], halves));
        t.push(("features.bn.num_batches_tracked".into(), Dtype::I64, vec![], 5i64.to_le_bytes().to_vec()));
        write_raw(&p, &as_refs(&t));
        let w = Weights::load_safetensors(&p, &g).unwrap();
        assert_eq!(w.get("features.bn.weight").unwrap().data, [1.0, -2.0, 65504.0, 2f32.powi(-24)]);
        assert_eq!(w.get("fc.bias").unwrap().data, [0.0, 1.0, 2.0, 3.0, 4.0]);
        assert!(w.get("features.bn.num_batches_tracked").is_none());
    }

    #[test]
    fn f16_and_bf16_convert_exactly() {
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x03ff), 1023.0 * 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x0400), 2f32.powi(-14));
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert_eq!(f16_to_f32(0xfc00), f32::NEG_INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        let bf = to_f32(Dtype::BF16, &[0x80, 0x3f, 0x49, 0xc0]).unwrap();
        assert_eq!(bf, [1.0, -3.140625]);
    }

    #[test]
    fn a_mismatch_lists_everything_at_once() {
        let g = small_net();
        let dir = tmp();
        let p = dir.path().join("w.safetensors");
        let mut t =
            tensors_of(&g, |k| k == "fc.bias" || k == "features.bn.running_var" || k.starts_with("features.conv"));
        t.push(("features.conv.weight".into(), Dtype::F32, vec![4, 3, 1, 1], f32_bytes(12)));
        t.push(("features.conv.bias".into(), Dtype::I64, vec![4], vec![0; 32]));
        t.push(("classifier.weight".into(), Dtype::F32, vec![2, 2], f32_bytes(4)));
        t.push(("bn.num_batches_tracked".into(), Dtype::F32, vec![], f32_bytes(1)));
        write_raw(&p, &as_refs(&t));
        let m = load_error(&p, &g);
        let expected = "the weights do not fit network `test`
  2 missing tensors:
    `features.bn.running_var` F32 [4]
    `fc.bias` F32 [5]
  2 unexpected tensors:
    `bn.num_batches_tracked` F32 []
    `classifier.weight` F32 [2, 2]
  2 tensors with the wrong shape or dtype (F16, BF16 and F64 are converted):
    `features.conv.weight`: expected F32 [4, 3, 3, 3], found F32 [4, 3, 1, 1]
    `features.conv.bias`: expected F32 [4], found I64 [4]";
        assert_eq!(m, expected);
    }

    #[test]
    fn long_lists_are_cut_at_twenty() {
        let (mut g, x) = with_input(Shape::nchw(1, 4, 4));
        let mut last = x;
        for i in 0..25 {
            last = add(&mut g, conv(&format!("c{i:02}"), 1, 1, [1, 1], false), &[last]);
        }
        g.outputs.push(("y".into(), last));
        let dir = tmp();
        let p = dir.path().join("w.safetensors");
        write_raw(&p, &[]);
        let m = load_error(&p, &g);
        assert!(m.contains("25 missing tensors"), "{m}");
        assert!(m.contains("`c19.weight` F32 [1, 1, 1, 1]\n    ... and 5 more"), "{m}");
        assert!(!m.contains("c20"), "{m}");
    }

    #[test]
    fn corrupt_files_are_clear_errors() {
        let g = small_net();
        let dir = tmp();
        let p = dir.path().join("w.safetensors");
        Weights::init(&g, 1).save_safetensors(&p).unwrap();
        let good = std::fs::read(&p).unwrap();
        let header_len = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
        let header = std::str::from_utf8(&good[8..8 + header_len]).unwrap().to_string();
        let with_header = |h: &str, data_len: usize| with_raw_header(h.as_bytes(), data_len);
        fn with_raw_header(h: &[u8], data_len: usize) -> Vec<u8> {
            let mut v = (h.len() as u64).to_le_bytes().to_vec();
            v.extend(h);
            v.extend(vec![0u8; data_len]);
            v
        }
        let mut huge = u64::MAX.to_le_bytes().to_vec();
        huge.extend(b"{}");
        let data_len = good.len() - 8 - header_len;
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![], "shorter than the 8-byte header length"),
            (b"GIF89a\x01\x00\x01\x00\x00\x00\x00".to_vec(), "runs past the end of the file"),
            (huge, "runs past the end of the file"),
            (good[..good.len() - 3].to_vec(), "truncated or extended"),
            (good[..8 + header_len / 2].to_vec(), "runs past the end of the file"),
            ([good.clone(), vec![0; 4]].concat(), "truncated or extended"),
            (with_header("this is not json", 0), "not a safetensors JSON header"),
            (with_raw_header(b"{\"\xff\xfe\": 1}", 0), "not UTF-8"),
            (
                with_header(r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,1000000]}}"#, 8),
                "do not match its shape",
            ),
            (with_header(r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, 4), "truncated or extended"),
            (
                with_header(r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, 12),
                "tensor `a` has data offsets",
            ),
            (
                with_header(
                    r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}}"#,
                    8,
                ),
                "too large",
            ),
            (with_header(r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, 8), "do not match its shape"),
            (with_header(&header.replace("F32", "Q99"), data_len), "not a safetensors JSON header"),
        ];
        for (bytes, expected) in cases {
            std::fs::write(&p, &bytes).unwrap();
            let m = load_error(&p, &g);
            assert!(m.contains(expected), "{m:?} should mention {expected:?}");
        }
    }

    #[test]
    fn unreadable_paths_are_io_errors_naming_them() {
        let g = small_net();
        let e = Weights::load_safetensors("/no/such/w.safetensors", &g).unwrap_err();
        assert!(matches!(&e, Error::Io { path, .. } if path == "/no/such/w.safetensors"), "{e:?}");
        let dir = tmp();
        let e = Weights::load_safetensors(dir.path(), &g).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }

    #[test]
    fn check_reports_missing_and_mis_shaped_tensors() {
        let g = small_net();
        let mut w = Weights::init(&g, 1);
        assert!(w.check(&g).is_ok());
        w.insert("unused", Tensor { shape: vec![1], data: vec![0.0] });
        assert!(w.check(&g).is_ok(), "extra tensors are allowed");
        w.map.remove("fc.bias");
        w.insert("fc.weight", Tensor { shape: vec![5, 64], data: vec![0.0; 3] });
        let e = w.check(&g).unwrap_err().to_string();
        assert!(e.contains("1 missing tensor:\n    `fc.bias` F32 [5]"), "{e}");
        assert!(e.contains("`fc.weight`: shape [5, 64] holds 320 values, the tensor has 3"), "{e}");
    }
}
