//! The planner's state while it lowers a graph: the arena, the kernels and steps so far, the
//! packed parameters and the weight blocks left to pack.

use super::alloc::{Arena, BufId};
use super::{ArenaOffset, Arg, BB, KernelId, ParamOffset, Step, TileId, cpad};
use crate::error::{Error, Result};
use crate::ir::Precision;
use crate::ir::layout::BLOCK;
use crate::target::Tier;
use crate::target::codegen::kernel::KernelSpec;
use crate::target::pack::Pack;
use crate::target::params::Params;
use crate::target::tiled_conv::TiledConvSpec;
use crate::target::tileset::Tile;
use crate::target::winograd::WinogradSpec;
use crate::weights::Weights;
use std::collections::HashMap;

/// Where a tensor lives: `off` bytes into buffer `buf` (a concat operand written in place
/// or a channel slice is a view into a larger buffer).
#[derive(Clone, Copy, Debug)]
pub(super) struct View {
    pub buf: BufId,
    pub off: usize,
}

pub(super) struct Planner<'w> {
    pub tier: Tier,
    /// The arithmetic of convolutions and linear layers.
    pub precision: Precision,
    pub arena: Arena,
    pub tiles: Vec<Tile>,
    pub kernels: Vec<KernelSpec>,
    kernel_ids: HashMap<KernelSpec, KernelId>,
    pub steps: Vec<Step>,
    pub params: Params,
    /// Weight blocks reserved in `params`, packed after planning.
    pub packs: Vec<Pack<'w>>,
}

impl<'w> Planner<'w> {
    pub fn new(tier: Tier, precision: Precision, guard: bool, params: Params) -> Planner<'w> {
        Planner {
            tier,
            precision,
            arena: Arena::new(guard),
            tiles: Vec::new(),
            kernels: Vec::new(),
            kernel_ids: HashMap::new(),
            steps: Vec::new(),
            params,
            packs: Vec::new(),
        }
    }

    /// A new arena buffer of `size` bytes with `refs` readers; its offset too.
    pub fn scratch(&mut self, size: usize, refs: usize) -> (BufId, ArenaOffset) {
        let b = self.arena.new_buf(size, refs);
        (b, self.arena.offset(b))
    }

    /// Where a view is in the arena.
    pub fn at(&self, v: View) -> ArenaOffset {
        self.arena.offset(v.buf) + v.off
    }

    pub fn param(&mut self, data: &[f32]) -> Arg {
        self.param_with(data.len(), |d| d.copy_from_slice(data))
    }

    /// A parameter block of `n` floats, zeroed, then written by `fill` in place.
    pub fn param_with(&mut self, n: usize, fill: impl FnOnce(&mut [f32])) -> Arg {
        Arg::Param(ParamOffset(self.params.push_with(n, fill) * 4))
    }

    /// Reserves the packed weights of `spec` (a convolution of `ic` to `oc` channels, tensor
    /// `key` of `weights`, transformed first for `winograd`, rounded to bf16 values with
    /// `round_bf16`) and queues them to be packed
    /// after planning.
    pub fn pack_later(
        &mut self,
        spec: &TiledConvSpec,
        (oc, ic): (usize, usize),
        weights: &'w Weights,
        key: &str,
        winograd: Option<WinogradSpec>,
        round_bf16: bool,
    ) -> Arg {
        let at = self.params.reserve(spec.packed_floats());
        let key = key.to_string();
        self.packs.push(Pack { at, spec: spec.clone(), oc, ic, weights, key, winograd, round_bf16 });
        Arg::Param(ParamOffset(at * 4))
    }

    /// A tile argument.
    pub fn tile(&mut self, t: Tile) -> Arg {
        self.tiles.push(t);
        Arg::Tile(TileId::new(self.tiles.len() - 1))
    }

    /// A step running `spec` (one kernel per distinct spec) on `args`.
    pub fn kernel(&mut self, spec: KernelSpec, args: Vec<Arg>, flops: u64) {
        let items = spec.items();
        let kernel = match self.kernel_ids.get(&spec) {
            Some(&k) => k,
            None => {
                self.kernels.push(spec.clone());
                let k = KernelId::new(self.kernels.len() - 1);
                self.kernel_ids.insert(spec, k);
                k
            }
        };
        if items > 0 {
            self.steps.push(Step::Kernel { kernel, args, items, flops });
        }
    }

    /// Zeroes the padded channels `c..cpad(c)` (and the partial block holding channel `c`)
    /// of a map with `pix` pixels at `out`, for kernels that only write the real channels.
    pub fn zero_tail(&mut self, out: ArenaOffset, c: usize, pix: usize) {
        if !c.is_multiple_of(BLOCK) {
            let from = c / BLOCK * pix * BB;
            let to = cpad(c) * pix * 4;
            self.steps.push(Step::Zero { offset: out + from, len: to - from });
        }
    }
}

/// Fetches `<key>.<suffix>`.
pub(super) fn param<'a>(w: &'a Weights, key: &str, suffix: &str) -> Result<&'a [f32]> {
    let full = format!("{key}.{suffix}");
    w.get(&full).map(|t| t.data.as_slice()).ok_or_else(|| Error::Invalid(format!("no weight tensor `{full}`")))
}
