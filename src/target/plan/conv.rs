//! The convolution strategy: direct on the portable f32x4 tile or on an ISA's tiles, or by
//! Winograd transforms where `select-winograd` asked for them and the tiles fit.

use super::planner::Planner;
use super::{ArenaOffset, Arg, BB, cpad};
use crate::error::{Error, Result};
use crate::ir::Precision;
use crate::ir::layout::BLOCK;
use crate::ir::op::padded_extent;
use crate::target::codegen::bf16::ToBf16;
use crate::target::codegen::kernel::KernelSpec;
use crate::target::isa::Isa;
use crate::target::portable::conv::{ConvProvider, ConvSpec, DEFAULT_CONV};
use crate::target::tile::Dtype;
use crate::target::tiled_conv::{TiledConvSpec, choose_tile, max_m};
use crate::target::tileset::Tile;
use crate::target::winograd::{MAX_N, WinogradSpec};
use crate::weights::Weights;

/// A grouped weight `[oc][ic/g][kh][kw]` as the dense block-diagonal `[oc][ic][kh][kw]`.
pub(super) fn dense_conv_weight<'a>(c: &crate::ir::Conv2d, w: &'a [f32]) -> std::borrow::Cow<'a, [f32]> {
    if c.groups <= 1 {
        return std::borrow::Cow::Borrowed(w);
    }
    let [kh, kw] = c.kernel;
    let (ipg, opg) = (c.in_channels / c.groups, c.out_channels / c.groups);
    let k = kh * kw;
    let mut d = vec![0.0f32; c.out_channels * c.in_channels * k];
    for o in 0..c.out_channels {
        let g = o / opg;
        for i in 0..ipg {
            let src = &w[(o * ipg + i) * k..(o * ipg + i + 1) * k];
            let ci = g * ipg + i;
            d[(o * c.in_channels + ci) * k..(o * c.in_channels + ci + 1) * k].copy_from_slice(src);
        }
    }
    std::borrow::Cow::Owned(d)
}

pub(super) struct ConvIn<'a> {
    pub src: ArenaOffset,
    /// `src` is a [`Compact`] input already padded for this convolution.
    pub src_compact: bool,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// top, bottom, left, right
    pub pad: [usize; 4],
    pub oc: usize,
    pub oh: usize,
    pub ow: usize,
    pub weight: ConvWeight<'a>,
    pub bias: Option<&'a [f32]>,
    pub residual: Option<(f32, Arg)>,
    pub relu: bool,
    pub out: ArenaOffset,
    /// Output tile of a Winograd convolution (honoured on the wide tiers).
    pub winograd: Option<[usize; 2]>,
}

/// A convolution's dense `[oc][ic][kh][kw]` weights.
pub(super) enum ConvWeight<'w> {
    /// At hand (a grouped convolution's, made dense).
    Values(std::borrow::Cow<'w, [f32]>),
    /// Tensor `<key>.weight` of the weights; the wide tier packs it after planning, reading
    /// 16 output channels at a time ([`Weights::columns`]), so a seeded tensor is never held
    /// in memory whole.
    Tensor(&'w Weights, String),
}

impl<'w> ConvWeight<'w> {
    /// The weight of layer `key`, which must exist.
    pub(super) fn tensor(weights: &'w Weights, key: &str) -> Result<ConvWeight<'w>> {
        let full = format!("{key}.weight");
        match weights.shape(&full) {
            Some(_) => Ok(ConvWeight::Tensor(weights, full)),
            None => Err(Error::Invalid(format!("no weight tensor `{full}`"))),
        }
    }

    /// All the values (a seeded tensor is generated, and kept, now).
    fn dense(&self) -> Result<&[f32]> {
        match self {
            ConvWeight::Values(v) => Ok(v),
            ConvWeight::Tensor(w, key) => {
                w.get(key).map(|t| t.data.as_slice()).ok_or_else(|| Error::Invalid(format!("no weight tensor `{key}`")))
            }
        }
    }
}

/// The bias of `c` as `ocb` blocks of 16, zero past its channels (or all zero).
fn bias(p: &mut Planner, c: &ConvIn, ocb: usize) -> Arg {
    p.param_with(ocb * BLOCK, |d| {
        if let Some(b) = c.bias {
            d[..c.oc].copy_from_slice(&b[..c.oc]);
        }
    })
}

/// Pad step (if the layer pads; in bf16 a conversion step, always), packed weights and the
/// conv step.
pub(super) fn conv<'w>(p: &mut Planner<'w>, c: ConvIn<'w>) -> Result<()> {
    let bf16 = p.precision == Precision::Bf16;
    if bf16 && p.tier.isa().is_none() {
        return Err(Error::Invalid(format!("a bf16 convolution needs the avx512 tier, planned for {}", p.tier.name())));
    }
    // A compact (stem) input in bf16 runs the f32 tiles on values rounded to bf16, input
    // in place and weights as packed: the same products, exact in f32.
    let round_stem = bf16 && c.src_compact;
    let bf16 = bf16 && !c.src_compact;
    // Winograd is f32 only (crate::ir::precision): in bf16 every convolution runs direct.
    if let (Some(m), Some(isa), false) = (c.winograd, p.tier.isa(), bf16)
        && let Some(spec) = winograd_spec(&c, m, isa)?
    {
        return winograd(p, c, spec, isa);
    }
    let (cb_in, lanes) = if c.src_compact { (1, c.c) } else { (cpad(c.c) / BLOCK, BLOCK) };
    let [top, _, left, _] = c.pad;
    let [kh, kw] = c.kernel;
    let [sh, sw] = c.stride;
    // The extent a compact input was sized by, too.
    let (hp, wp) = padded_extent([c.h, c.w], [c.oh, c.ow], c.kernel, c.stride, c.pad);
    let padded = hp != c.h || wp != c.w;
    if round_stem {
        let n = (hp * wp * c.c * 4).div_ceil(BB) * BB / 16; // the compact buffer's vectors
        p.kernel(KernelSpec::RoundBf16 { n }, vec![Arg::Arena(c.src), Arg::Arena(c.src)], n as u64 * 4);
    }
    let (input, scratch) = if bf16 {
        let (sb, so) = p.scratch(cb_in * hp * wp * BLOCK * 2, 1);
        let to = ToBf16 { cb: cb_in, h: c.h, w: c.w, top, left, hp, wp };
        let tile = p.tile(Tile::ToBf16 { pixels: c.w });
        p.kernel(
            KernelSpec::ToBf16(to),
            vec![Arg::Arena(so), Arg::Arena(c.src), tile],
            (cb_in * hp * wp * BLOCK) as u64,
        );
        (so, Some(sb))
    } else if padded && !c.src_compact {
        let (sb, so) = p.scratch(cb_in * hp * wp * BB, 1);
        p.kernel(
            KernelSpec::Pad { cb: cb_in, h: c.h, w: c.w, top, left, hp, wp, fill: 0 },
            vec![Arg::Arena(so), Arg::Arena(c.src)],
            (cb_in * hp * wp * BLOCK) as u64,
        );
        (so, Some(sb))
    } else {
        (c.src, None)
    };
    // 1x1, stride 1 on an unpadded input: pixels are independent, so whole groups of rows
    // form one long row (fewer remainder tiles).
    let (mut oh, mut ow, mut ihp, mut iwp) = (c.oh, c.ow, hp, wp);
    if kh == 1 && kw == 1 && sh == 1 && sw == 1 && !padded && !c.src_compact {
        let r = (1..=c.oh).rev().find(|r| c.oh.is_multiple_of(*r) && r * c.ow <= 512).unwrap_or(1);
        oh = c.oh / r;
        ow = c.ow * r;
        ihp = oh;
        iwp = ow;
    }
    let (kernel, args, flops) = if let Some(isa) = p.tier.isa() {
        let ocb = cpad(c.oc) / BLOCK;
        let dtype = if bf16 { Dtype::Bf16 } else { Dtype::F32 };
        let (m, nr) = choose_tile(isa, ow, ocb, cb_in * kh * kw * lanes / dtype.lanes_per_step());
        let spec = TiledConvSpec {
            cb_in,
            lanes,
            dtype,
            hp: ihp,
            wp: iwp,
            kernel: c.kernel,
            stride: c.stride,
            oh,
            ow,
            ocb,
            nr,
            m,
            residual: c.residual.map(|r| r.0.to_bits()),
            relu: c.relu,
            row_weights: false,
        };
        let wa = match &c.weight {
            ConvWeight::Tensor(weights, key) => p.pack_later(&spec, (c.oc, c.c), weights, key, None, round_stem),
            ConvWeight::Values(dense) => {
                let rounded: Vec<f32>;
                let dense: &[f32] = if round_stem {
                    rounded = dense.iter().map(|&v| crate::ir::precision::bf16(v)).collect();
                    &rounded
                } else {
                    dense
                };
                p.param_with(spec.packed_floats(), |d| spec.pack_into(c.oc, c.c, dense, d))
            }
        };
        let ba = bias(p, &c, ocb);
        let mut args = vec![Arg::Arena(c.out), Arg::Arena(input), wa, ba, c.residual.map_or(Arg::Null, |r| r.1)];
        for t in spec.tiles() {
            args.push(p.tile(Tile::Conv(t)));
        }
        if args.len() < 7 {
            args.push(Arg::Null);
        }
        let flops = 2 * spec.macs();
        (KernelSpec::TiledConv(spec), args, flops)
    } else {
        let spec = ConvSpec {
            cb_in,
            lanes,
            hp: ihp,
            wp: iwp,
            kernel: c.kernel,
            stride: c.stride,
            oh,
            ow,
            ocp: cpad(c.oc) / 8,
            residual: c.residual.map(|r| r.0.to_bits()),
            relu: c.relu,
        };
        let packed = DEFAULT_CONV.pack(&spec, c.oc, c.c, c.weight.dense()?);
        let bias = DEFAULT_CONV.pack_bias(&spec, c.oc, c.bias);
        let (wa, ba) = (p.param(&packed), p.param(&bias));
        let mut args = vec![Arg::Arena(c.out), Arg::Arena(input), wa, ba];
        if let Some((_, r)) = c.residual {
            args.push(r);
        }
        let flops = 2 * spec.macs();
        (KernelSpec::Conv(spec), args, flops)
    };
    p.kernel(kernel, args, flops);
    if let Some(sb) = scratch {
        p.arena.unref(sb);
    }
    Ok(())
}

/// The Winograd geometry of `c` with output tiles `m`, or `None` when the transform tiles
/// do not fit the registers of `isa` (AVX2's 16 for 7-point transforms): then the
/// convolution runs directly. An annotation that does not fit the convolution is an error.
fn winograd_spec(c: &ConvIn, m: [usize; 2], isa: Isa) -> Result<Option<WinogradSpec>> {
    let r = c.kernel;
    let ok = c.stride == [1, 1]
        && !c.src_compact
        && (0..2).all(|a| m[a] >= 1 && m[a] + r[a] - 1 <= MAX_N && (r[a] > 1 || m[a] == 1));
    if !ok {
        return Err(Error::Invalid(format!(
            "winograd {}x{} does not apply to a {}x{} stride {:?} convolution{}",
            m[0],
            m[1],
            r[0],
            r[1],
            c.stride,
            if c.src_compact { " of a compact input" } else { "" }
        )));
    }
    let (cb, ocb) = (cpad(c.c) / BLOCK, cpad(c.oc) / BLOCK);
    let spec = WinogradSpec {
        cb,
        ocb,
        h: c.h,
        w: c.w,
        top: c.pad[0],
        left: c.pad[2],
        oh: c.oh,
        ow: c.ow,
        m,
        r,
        residual: c.residual.map(|r| r.0.to_bits()),
        relu: c.relu,
        band: c.oh.div_ceil(m[0]),
    };
    let tiles_fit =
        spec.input_tiles().into_iter().map(Some).chain(spec.output_tiles()).flatten().all(|t| t.validate(isa).is_ok());
    Ok(tiles_fit.then_some(spec))
}

/// Bytes of `V` and `M` per band of a Winograd convolution: the two cores' L2. Measured on
/// Inception-v3, -v4 and -ResNet-v2 (2026-11-29): 4 MiB bands run as fast as whole layers
/// and halve the arena (59 -> 29, 67 -> 32, 61 -> 26 MB: the stems' 147x147 layers);
/// bands of 2 MiB and less run up to 1.25x slower, as every band reads all the weights.
const BAND_BYTES: usize = 4 << 20;

/// A Winograd convolution on the wide tier of `isa`: transform the input (zero padding
/// included), one 1x1 product per position, transform the output (see
/// [`crate::target::winograd`]).
fn winograd<'w>(p: &mut Planner<'w>, c: ConvIn<'w>, spec: WinogradSpec, isa: Isa) -> Result<()> {
    let (cb, ocb, m) = (spec.cb, spec.ocb, spec.m);
    let pos = spec.positions();
    let ([nh, nw], [th, tw]) = (spec.n(), spec.tiles());
    // Bands of tile rows, each through all three steps, with `V` and `M` of about
    // [`BAND_BYTES`] together.
    let per_row = (cb + ocb) * pos * tw * BB;
    let bands = th.div_ceil((BAND_BYTES / per_row).clamp(1, th));
    let band = th.div_ceil(bands);
    let most = band * tw;
    // The products read V from L2, not L1: the widest tile (most FMAs per broadcast) wins
    // over what `choose_tile`'s L1 model prefers (measured on Inception-v3: nr 3-4 run the
    // 35x35 products 1.5x faster than 27x1).
    let nr = (1..=4).rev().find(|n| ocb.is_multiple_of(*n)).unwrap_or(1);
    let gemm = |t: usize| TiledConvSpec {
        cb_in: cb,
        lanes: BLOCK,
        dtype: Dtype::F32,
        hp: pos,
        wp: t,
        kernel: [1, 1],
        stride: [1, 1],
        oh: pos,
        ow: t,
        ocb,
        nr,
        m: t.div_ceil(t.div_ceil(max_m(isa, nr).min(t))),
        residual: None,
        relu: false,
        row_weights: true,
    };
    let full = gemm(most);
    let wa = match &c.weight {
        ConvWeight::Tensor(weights, key) => p.pack_later(&full, (c.oc, c.c), weights, key, Some(spec.clone()), false),
        ConvWeight::Values(dense) => {
            let u = spec.transform_weights(c.oc, c.c, dense);
            p.param_with(full.packed_floats(), |d| full.pack_rows_into(c.oc, c.c, &u, d))
        }
    };
    let zero_bias = p.param_with(ocb * BLOCK, |_| {});
    let ba = bias(p, &c, ocb);
    let (vb, v) = p.scratch(cb * pos * most * BB, 1);
    let (mb, mo) = p.scratch(ocb * pos * most * BB, 1);
    for first in (0..th).step_by(band) {
        let part = WinogradSpec { band: band.min(th - first), ..spec.clone() };
        let t = part.t();
        let [inner, border] = part.input_tiles().map(|t| p.tile(Tile::Transform(t)));
        p.kernel(
            KernelSpec::WinogradIn(part.clone()),
            vec![Arg::Arena(v), Arg::Arena(c.src), inner, border, Arg::Value(first)],
            (cb * BLOCK * t * pos * (nh + nw)) as u64,
        );
        let g = gemm(t);
        let mut args = vec![Arg::Arena(mo), Arg::Arena(v), wa, zero_bias, Arg::Null];
        for tile in g.tiles() {
            args.push(p.tile(Tile::Conv(tile)));
        }
        if args.len() < 7 {
            args.push(Arg::Null);
        }
        let flops = 2 * g.macs();
        p.kernel(KernelSpec::TiledConv(g), args, flops);
        let [mh, mw] = m;
        let mut args = vec![Arg::Arena(c.out), Arg::Arena(mo), ba, c.residual.map_or(Arg::Null, |r| r.1)];
        for t in part.output_tiles() {
            args.push(t.map_or(Arg::Null, |t| p.tile(Tile::Transform(t))));
        }
        args.push(Arg::Value(first));
        let flops = (ocb * BLOCK * t * (mh * nh * nw + mh * mw * nw)) as u64;
        p.kernel(KernelSpec::WinogradOut(part), args, flops);
    }
    p.arena.unref(vb);
    p.arena.unref(mb);
    Ok(())
}
