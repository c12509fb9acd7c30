//! Reading a tensor in blocks of rows, column by column: the order of packed convolution weights.

use super::stream::{self, Stream};
use super::{Entry, LANES, MAX_ROWS, Recipe, Weights, dims, n_rows, row_len};
use crate::error::{Error, Result};
use std::ops::Range;

impl Weights {
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
