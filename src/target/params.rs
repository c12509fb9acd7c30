//! The packed parameters: every weight, bias and constant block the kernels read, 64-byte
//! aligned in one region adopted by the runtime without a copy.

use crate::target::mem::{Lines, as_f32, as_f32_mut};

/// The packed parameters: 64-byte aligned floats, every block starting on a [`Line`](crate::target::mem::Line)
/// (dereferences to all the floats, the padding between blocks included). Blocks are
/// written where they will stay, so the runtime adopts the storage without a copy; the
/// storage starts zero without being written ([`Lines`]), so padding costs nothing.
///
/// Blocks smaller than [`STAGED_FLOATS`] (biases, batch-norm factors) are written to a
/// staging buffer first and copied into place with the large ones ([`Params::take_staged`],
/// [`crate::target::pack::Queue`]): written in place while planning, each would make the planner
/// wait for the page it falls on to be mapped, one after another.
#[derive(Debug, Default)]
pub struct Params {
    mem: Lines,
    /// Lines in use.
    used: usize,
    /// Blocks not yet in place: offset in floats, values.
    staged: Vec<(usize, Vec<f32>)>,
}

/// Blocks below this many floats are staged (see [`Params`]).
pub const STAGED_FLOATS: usize = 1 << 16;

impl Params {
    pub(super) fn with_capacity(floats: usize) -> Params {
        Params { mem: Lines::zeroed(floats.div_ceil(16)), used: 0, staged: Vec::new() }
    }

    /// Appends `n` zeros and returns their offset in floats (for a block written later).
    pub(super) fn reserve(&mut self, n: usize) -> usize {
        let (at, lines) = (self.used, n.div_ceil(16));
        if at + lines > self.mem.len() {
            let mut grown = Lines::zeroed((at + lines).max(2 * self.mem.len()));
            grown[..at].copy_from_slice(&self.mem[..at]);
            self.mem = grown;
        }
        self.used += lines;
        at * 16
    }

    /// Appends `n` zeros, lets `fill` write them (in place, or staged if small), and returns
    /// their offset in floats.
    pub(super) fn push_with(&mut self, n: usize, fill: impl FnOnce(&mut [f32])) -> usize {
        let at = self.reserve(n);
        if n < STAGED_FLOATS {
            let mut block = vec![0.0; n];
            fill(&mut block);
            self.staged.push((at, block));
        } else {
            fill(&mut self[at..at + n]);
        }
        at
    }

    /// The staged blocks, to be copied to their offsets (in floats) before the parameters
    /// are read.
    pub fn take_staged(&mut self) -> Vec<(usize, Vec<f32>)> {
        std::mem::take(&mut self.staged)
    }

    /// The storage, as lines (those in use, then zero lines up to its capacity). Staged
    /// blocks must have been copied into place.
    pub fn into_lines(self) -> Lines {
        debug_assert!(self.staged.is_empty(), "{} staged parameter blocks were not copied", self.staged.len());
        self.mem
    }
}

impl std::ops::Deref for Params {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        as_f32(&self.mem[..self.used])
    }
}

impl std::ops::DerefMut for Params {
    fn deref_mut(&mut self) -> &mut [f32] {
        as_f32_mut(&mut self.mem[..self.used])
    }
}

impl<'a> IntoIterator for &'a Params {
    type Item = &'a f32;
    type IntoIter = std::slice::Iter<'a, f32>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}
