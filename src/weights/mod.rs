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

mod columns;
mod file;
mod stream;

use crate::error::{Error, Result};
use crate::ir::{Graph, ParamRole};
pub use columns::{ColumnReader, RowBlock};
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, OnceLock};
use stream::{Dist, Stream};
pub use stream::{LANES, MAX_ROWS};

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
}

fn dims(shape: &[usize]) -> String {
    let d: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", d.join(", "))
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
pub(crate) mod tests;
