//! Winograd convolution: fewer multiplications for stride-1 convolutions with kernels of
//! 3, 5 or 7 taps per axis (3x3, 5x5, 1x7, 7x1, 1x3, 3x1 ...).
//!
//! `F(m, r)` computes `m` outputs of an `r`-tap correlation from `n = m + r - 1` inputs with
//! `n` multiplications instead of `m * r`: `y = Aᵀ [(G g) ⊙ (Bᵀ d)]`. In two dimensions,
//! with an `F(mh, rh)` transform down the columns and an `F(mw, rw)` one along the rows, an
//! output tile of `mh x mw` pixels reads an `nh x nw` input tile, and for every one of the
//! `P = nh * nw` positions the reduction over input channels is one matrix product:
//!
//! ```text
//! U[p][oc][ic] = (G_h g[oc][ic] G_wᵀ)[p]                     at compile time, f64
//! V[cb][p][t][16] = (B_hᵀ d_t B_w)[p]    per tile t          WinogradIn
//! M[ob][p][t][16] = sum_ic U[p][..][ic] V[..][p][t][ic]      a 1x1 WideConv per position p
//! out[ob][y][x][16] = epilogue((A_hᵀ M_t A_w) + bias)        WinogradOut
//! ```
//!
//! Cranelift emits the loops over tiles; each tile's transform is an AVX-512 or AVX2
//! [`TransformSpec`] tile (`super::x86::transform`), like the products' micro-tiles.
//!
//! The products run on the wide tier's micro-tiles, as a 1x1 convolution whose "rows" are
//! the positions (each with its own weights, [`super::tiled_conv::TiledConvSpec::row_weights`])
//! and whose "pixels" are the tiles. incc uses `F(2, r)` along every axis with `r > 1` taps
//! ([`Transform1d::tile_for`]): 3x3 kernels `F(2x2, 3x3)` (16 products for 36
//! multiply-adds, 2.25x fewer), 7 taps `F(2, 7)` (1.75x fewer).
//!
//! The matrices come from the Toom-Cook construction over the points `0, 1, -1, 1/2, -2, 2,
//! -1/2` and infinity ([`Transform1d::new`]); all the fractions are put in `G`, which is
//! applied to the weights once, in double precision, so that `Bᵀ` and `Aᵀ` hold small
//! dyadic constants that f32 represents exactly.

use super::x86::transform::TransformSpec;
use crate::target::clif::*;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{AbiParam, InstBuilder, SigRef, Signature, StackSlotData, StackSlotKind, Value, types};
use cranelift_codegen::isa::CallConv;
use cranelift_frontend::FunctionBuilder;

/// The interpolation points, in the order they are used (infinity comes last, implicitly).
/// `1/2` before `-2`: `F(4, 3)` over `0, ±1, 1/2, -2` rounds less than over `0, ±1, ±2`
/// (Barabasz et al., "Error analysis and improving the accuracy of Winograd convolution").
const POINTS: [f64; 7] = [0.0, 1.0, -1.0, 0.5, -2.0, 2.0, -0.5];

/// Largest `n = m + r - 1` supported (the points above plus infinity).
pub const MAX_N: usize = POINTS.len() + 1;

/// The matrices of a one-dimensional `F(m, r)`, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Transform1d {
    /// Outputs per tile.
    pub m: usize,
    /// Kernel taps.
    pub r: usize,
    /// Inputs per tile, `m + r - 1`.
    pub n: usize,
    /// Output transform `Aᵀ`, `m x n`.
    pub at: Vec<f64>,
    /// Kernel transform `G`, `n x r`.
    pub g: Vec<f64>,
    /// Input transform `Bᵀ`, `n x n`.
    pub bt: Vec<f64>,
}

impl Transform1d {
    /// `F(m, r)` for `m, r >= 1` and `m + r - 1 <= MAX_N` (`F(1, 1)` is the identity).
    ///
    /// With `E_k` the `n x k` matrix evaluating a polynomial of `k` coefficients at the
    /// points (row `j`: `p_j^0 .. p_j^(k-1)`; infinity: the leading coefficient) and `V =
    /// E_n`, linear convolution is `c = V⁻¹ [(E_m a) ⊙ (E_r g)]`; correlation is its
    /// transpose in `a`: `y = E_mᵀ [(E_r g) ⊙ (V⁻ᵀ d)]`. So `Aᵀ = E_mᵀ`, `G = E_r` and
    /// `Bᵀ = V⁻ᵀ`, then each row `j` of `Bᵀ` is divided by its smallest nonzero magnitude
    /// and row `j` of `G` multiplied by it.
    pub fn new(m: usize, r: usize) -> Transform1d {
        let n = m + r - 1;
        assert!(m >= 1 && r >= 1 && n <= MAX_N, "F({m}, {r}) is not supported");
        let eval = |k: usize| -> Vec<f64> {
            let mut e = vec![0.0; n * k];
            for j in 0..n {
                for i in 0..k {
                    e[j * k + i] =
                        if j + 1 == n { if i + 1 == k { 1.0 } else { 0.0 } } else { POINTS[j].powi(i as i32) };
                }
            }
            e
        };
        let (em, mut g, v) = (eval(m), eval(r), eval(n));
        let mut at = vec![0.0; m * n];
        for j in 0..n {
            for i in 0..m {
                at[i * n + j] = em[j * m + i];
            }
        }
        if n == 1 {
            return Transform1d { m, r, n, at, g, bt: vec![1.0] };
        }
        let vi = invert(&v, n);
        let mut bt = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                bt[i * n + j] = vi[j * n + i];
            }
        }
        for j in 0..n {
            let row = &mut bt[j * n..(j + 1) * n];
            let s = row.iter().map(|x| x.abs()).filter(|&x| x > 1e-12).fold(f64::INFINITY, f64::min);
            // Dyadic by construction, up to the inversion's rounding: snap to 1/4096ths.
            row.iter_mut().for_each(|x| {
                *x /= s;
                let snapped = (*x * 4096.0).round() / 4096.0;
                if (snapped - *x).abs() < 1e-9 {
                    *x = snapped;
                }
            });
            g[j * r..(j + 1) * r].iter_mut().for_each(|x| *x *= s);
        }
        Transform1d { m, r, n, at, g, bt }
    }

    /// The output tile `m` incc uses for `r` taps: 1 for 1, else 2.
    ///
    /// Larger tiles save more multiplications but round more: with PyTorch's Inception-v3
    /// weights and batch-norm statistics (`conformance/torch_parity.py`), the JIT's output
    /// differs from the reference interpreter's by 4.5e-5 of the largest value computing
    /// directly, 3.8e-5 with `F(2, r)` everywhere, and 8.2e-5 with `F(4x4, 3x3)` for the 3x3
    /// layers (1.4e-4 with the points 0, ±1, ±2), too close to the 1e-4 bound.
    pub fn tile_for(r: usize) -> usize {
        if r == 1 { 1 } else { 2 }
    }
}

/// `a⁻¹` for an invertible `n x n` matrix (Gauss-Jordan with partial pivoting).
fn invert(a: &[f64], n: usize) -> Vec<f64> {
    let mut m = a.to_vec();
    let mut inv = vec![0.0; n * n];
    for i in 0..n {
        inv[i * n + i] = 1.0;
    }
    for col in 0..n {
        let piv = (col..n).max_by(|&x, &y| m[x * n + col].abs().total_cmp(&m[y * n + col].abs())).unwrap_or(col);
        for k in 0..n {
            m.swap(col * n + k, piv * n + k);
            inv.swap(col * n + k, piv * n + k);
        }
        let d = m[col * n + col];
        for k in 0..n {
            m[col * n + k] /= d;
            inv[col * n + k] /= d;
        }
        for row in 0..n {
            if row != col {
                let f = m[row * n + col];
                if f != 0.0 {
                    for k in 0..n {
                        m[row * n + k] -= f * m[col * n + k];
                        inv[row * n + k] -= f * inv[col * n + k];
                    }
                }
            }
        }
    }
    inv
}

/// Geometry of one Winograd convolution: the input and output transform kernels share it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WinogradSpec {
    /// Input channel blocks.
    pub cb: usize,
    /// Output channel blocks.
    pub ocb: usize,
    /// Input height (unpadded).
    pub h: usize,
    /// Input width (unpadded).
    pub w: usize,
    /// Zero rows above the input (the convolution's padding).
    pub top: usize,
    /// Zero columns left of it.
    pub left: usize,
    /// Output rows.
    pub oh: usize,
    /// Output columns.
    pub ow: usize,
    /// Output tile `[mh, mw]`.
    pub m: [usize; 2],
    /// Kernel `[rh, rw]`.
    pub r: [usize; 2],
    /// Residual scale (f32 bits) of the output epilogue.
    pub residual: Option<u32>,
    /// ReLU last.
    pub relu: bool,
    /// Tile rows of each part of the convolution: a layer runs as bands of tile rows,
    /// each through all three steps, so that `V` and `M` hold one band's tiles,
    /// `[..][P][band * tw][16]`. The band's first row is a kernel argument, so bands of one
    /// size share code.
    pub band: usize,
}

impl WinogradSpec {
    /// Input tile `[nh, nw]`.
    pub fn n(&self) -> [usize; 2] {
        [self.m[0] + self.r[0] - 1, self.m[1] + self.r[1] - 1]
    }

    /// Tile rows and columns `[th, tw]`.
    pub fn tiles(&self) -> [usize; 2] {
        [self.oh.div_ceil(self.m[0]), self.ow.div_ceil(self.m[1])]
    }

    /// Tiles of a band ([`Self::band`]).
    pub fn t(&self) -> usize {
        self.band * self.tiles()[1]
    }

    /// Positions per tile, `nh * nw`: one matrix product each.
    pub fn positions(&self) -> usize {
        let [nh, nw] = self.n();
        nh * nw
    }

    /// The tile rows and columns `[lo, hi)` whose input lies inside the image (the others
    /// read zero padding): per axis, for input extent `x`, padding `before` and tile count.
    pub fn interior(&self) -> [[usize; 2]; 2] {
        let ([mh, mw], [nh, nw], [th, tw]) = (self.m, self.n(), self.tiles());
        let axis = |x: usize, before: usize, m: usize, n: usize, t: usize| {
            let lo = before.div_ceil(m);
            let hi = if x + before >= n { ((x + before - n) / m + 1).min(t) } else { 0 };
            [lo.min(hi), hi]
        };
        [axis(self.h, self.top, mh, nh, th), axis(self.w, self.left, mw, nw, tw)]
    }

    /// The two 1-D transforms (columns, rows).
    pub fn transforms(&self) -> [Transform1d; 2] {
        [Transform1d::new(self.m[0], self.r[0]), Transform1d::new(self.m[1], self.r[1])]
    }

    /// Work items of the input transform: input blocks x tile rows of the part.
    pub fn in_items(&self) -> usize {
        self.cb * self.band
    }

    /// Work items of the output transform: output blocks x tile rows of the part.
    pub fn out_items(&self) -> usize {
        self.ocb * self.band
    }

    /// The weights `U = G g Gᵀ` of each position, dense `[p][oc][ic]`, from the dense
    /// `[oc][ic][rh][rw]` weight `dense` (in f64, rounded once).
    pub fn transform_weights(&self, oc: usize, ic: usize, dense: &[f32]) -> Vec<f32> {
        let (r, p) = (self.r[0] * self.r[1], self.positions());
        let mut u = vec![0.0f32; p * oc * ic];
        let mut wt = WeightTransform::new(self);
        let mut out = vec![0.0f32; p];
        for o in 0..oc {
            for i in 0..ic {
                wt.apply(&dense[(o * ic + i) * r..(o * ic + i + 1) * r], 1, &mut out, 1);
                for (q, v) in out.iter().enumerate() {
                    u[(q * oc + o) * ic + i] = *v;
                }
            }
        }
        u
    }

    /// The input transform tiles: one input tile of one block, `Bᵀ_h d B_w`, to `V`
    /// (`[P][T][16]` of a block), read from the input (`[h][w][16]` of a block) for an
    /// interior tile, and from a zero-padded copy (`[nh][nw][16]`) for a border tile.
    pub fn input_tiles(&self) -> [TransformSpec; 2] {
        let [th, tw] = self.transforms();
        let [nh, nw] = self.n();
        let t = self.t() as i64;
        let tile = |row: i64| TransformSpec::new(&th.bt, nh, &tw.bt, nw, [row, BB, nw as i64 * t * BB, t * BB], nh, nw);
        [tile(self.w as i64 * BB), tile(nw as i64 * BB)]
    }

    /// The output transform tile storing `rows x cols` pixels: `Aᵀ_h M A_w` of one tile of
    /// one block, plus bias, residual and ReLU, into the output (`[oh][ow][16]` of a block).
    pub fn output_tile(&self, rows: usize, cols: usize) -> TransformSpec {
        let [th, tw] = self.transforms();
        let ([mh, mw], [_, nw]) = (self.m, self.n());
        let t = self.t() as i64;
        let strides = [nw as i64 * t * BB, t * BB, self.ow as i64 * BB, BB];
        let mut s = TransformSpec::new(&th.at, mh, &tw.at, mw, strides, rows, cols);
        s.bias = true;
        s.residual = self.residual;
        s.relu = self.relu;
        s
    }

    /// The output tiles the kernel calls, in argument order (4..8): full, last tile row,
    /// last tile column, last corner; `None` where the map divides into tiles.
    pub fn output_tiles(&self) -> [Option<TransformSpec>; 4] {
        let ([mh, mw], [th, tw]) = (self.m, self.tiles());
        let (lr, lc) = (self.oh - (th - 1) * mh, self.ow - (tw - 1) * mw);
        let (er, ec) = (lr != mh, lc != mw);
        [
            Some(self.output_tile(mh, mw)),
            er.then(|| self.output_tile(lr, mw)),
            ec.then(|| self.output_tile(mh, lc)),
            (er && ec).then(|| self.output_tile(lr, lc)),
        ]
    }

    /// Emits the input transform loops: args out (`V`, `[cb][P][T][16]`), in (`[cb][h][w][16]`),
    /// the two [`Self::input_tiles`], the band's first tile row. Item: one tile row of the
    /// band, of one input block. An interior
    /// tile is transformed in place; a border tile's pixels are first copied into a zeroed
    /// `[nh][nw][16]` stack buffer (so no padding step copies the whole input).
    pub fn emit_input(&self, b: &mut FunctionBuilder, args: Value, begin: Value, end: Value, call_conv: CallConv) {
        let (out, inp) = (arg(b, args, 0), arg(b, args, 1));
        let (inner, border) = (arg(b, args, 2), arg(b, args, 3));
        let sig = tile_signature(b, call_conv);
        let ([mh, mw], [nh, nw], [_, tw]) = (self.m, self.n(), self.tiles());
        let [[ylo, yhi], [xlo, xhi]] = self.interior();
        let (h, w) = (self.h as i64, self.w as i64);
        let (t, p) = (self.t() as i64, self.positions() as i64);
        let slot = b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, (nh * nw * 64) as u32, 6));
        let (band, first) = (self.band as i64, arg(b, args, 4));
        for_range(b, begin, end, |b, item| {
            let cbi = b.ins().udiv_imm_u(item, band);
            let local = b.ins().urem_imm_u(item, band);
            let ty = b.ins().iadd(local, first);
            let plane = add_scaled(b, inp, cbi, h * w * BB);
            let dst = add_scaled(b, out, cbi, p * t * BB);
            let dst = add_scaled(b, dst, local, tw as i64 * BB);
            let null = ic(b, 0);
            // First input row and column of tile (ty, tx): ty*mh - top, tx*mw - left.
            let y0 = b.ins().imul_imm_s(ty, mh as i64);
            let y0 = b.ins().iadd_imm_s(y0, -(self.top as i64));
            let border_tile = |b: &mut FunctionBuilder, tx: Value| {
                let buf = b.ins().stack_addr(types::I64, slot, 0);
                let z = splat_const(b, 0.0);
                for k in 0..(nh * nw * NV) as i64 {
                    stv(b, z, buf, k * VB);
                }
                let x0 = b.ins().imul_imm_s(tx, mw as i64);
                let x0 = b.ins().iadd_imm_s(x0, -(self.left as i64));
                let zero = ic(b, 0);
                let (ya, yb) = (b.ins().smax(y0, zero), b.ins().iadd_imm_s(y0, nh as i64));
                let yb = smin_c(b, yb, h);
                let (xa, xb) = (b.ins().smax(x0, zero), b.ins().iadd_imm_s(x0, nw as i64));
                let xb = smin_c(b, xb, w);
                for_range(b, ya, yb, |b, y| {
                    let srow = add_scaled(b, plane, y, w * BB);
                    let dy = b.ins().isub(y, y0);
                    let drow = add_scaled(b, buf, dy, nw as i64 * BB);
                    for_range(b, xa, xb, |b, x| {
                        let sp = add_scaled(b, srow, x, BB);
                        let dx = b.ins().isub(x, x0);
                        let dp = add_scaled(b, drow, dx, BB);
                        for k in 0..NV as i64 {
                            let v = ldv(b, sp, k * VB);
                            stv(b, v, dp, k * VB);
                        }
                    });
                });
                let d = add_scaled(b, dst, tx, BB);
                b.ins().call_indirect(sig, border, &[buf, null, d, null, null]);
            };
            let inner_tile = |b: &mut FunctionBuilder, tx: Value| {
                let x0 = b.ins().imul_imm_s(tx, mw as i64);
                let x0 = b.ins().iadd_imm_s(x0, -(self.left as i64));
                let row = add_scaled(b, plane, y0, w * BB);
                let s = add_scaled(b, row, x0, BB);
                let d = add_scaled(b, dst, tx, BB);
                b.ins().call_indirect(sig, inner, &[s, null, d, null, null]);
            };
            let lo = b.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, ty, ylo as i64);
            let hi = b.ins().icmp_imm_s(IntCC::SignedLessThan, ty, yhi as i64);
            let inside = b.ins().band(lo, hi);
            let (yes, no, join) = (b.create_block(), b.create_block(), b.create_block());
            b.ins().brif(inside, yes, &[], no, &[]);
            b.switch_to_block(yes);
            for_range_c(b, 0, xlo, |b, tx| border_tile(b, tx));
            for_range_c(b, xlo, xhi, |b, tx| inner_tile(b, tx));
            for_range_c(b, xhi, tw, |b, tx| border_tile(b, tx));
            b.ins().jump(join, &[]);
            b.switch_to_block(no);
            for_range_c(b, 0, tw, |b, tx| border_tile(b, tx));
            b.ins().jump(join, &[]);
            b.switch_to_block(join);
        });
    }

    /// Emits the output transform loops: args out (`[ocb][oh][ow][16]`), `M`
    /// (`[ocb][P][T][16]`), bias (`[ocb*16]`), residual (or null), then the four
    /// [`Self::output_tiles`] (null when absent), the band's first tile row. Item: one tile
    /// row of the band, of one output block.
    pub fn emit_output(&self, b: &mut FunctionBuilder, args: Value, begin: Value, end: Value, call_conv: CallConv) {
        let ptrs: Vec<Value> = (0..8).map(|i| arg(b, args, i)).collect();
        let (out, mm, bias, res) = (ptrs[0], ptrs[1], ptrs[2], ptrs[3]);
        let sig = tile_signature(b, call_conv);
        let ([mh, mw], [th, tw]) = (self.m, self.tiles());
        let (t, p) = (self.t() as i64, self.positions() as i64);
        let (oh, ow) = (self.oh as i64, self.ow as i64);
        let [_, er, ec, _] = self.output_tiles().map(|t| t.is_some());
        let (band, first) = (self.band as i64, arg(b, args, 8));
        for_range(b, begin, end, |b, item| {
            let g = b.ins().udiv_imm_u(item, band);
            let local = b.ins().urem_imm_u(item, band);
            let ty = b.ins().iadd(local, first);
            let bp = add_scaled(b, bias, g, BB);
            let src = add_scaled(b, mm, g, p * t * BB);
            let src = add_scaled(b, src, local, tw as i64 * BB);
            let o1 = b.ins().imul_imm_s(g, oh * ow * BB);
            let o2 = b.ins().imul_imm_s(ty, mh as i64 * ow * BB);
            let ooff = b.ins().iadd(o1, o2);
            let dst = b.ins().iadd(out, ooff);
            let rdst = if self.residual.is_some() { b.ins().iadd(res, ooff) } else { res };
            let null = ic(b, 0);
            let call = |b: &mut FunctionBuilder, tile: Value, tx: Value| {
                let s = add_scaled(b, src, tx, BB);
                let d = add_scaled(b, dst, tx, mw as i64 * BB);
                let r = if self.residual.is_some() { add_scaled(b, rdst, tx, mw as i64 * BB) } else { rdst };
                b.ins().call_indirect(sig, tile, &[s, null, d, bp, r]);
            };
            // One tile row with `full` and `edge` tiles (edge: the last column's).
            let row = |b: &mut FunctionBuilder, full: Value, edge: Value| {
                let n = if ec { tw - 1 } else { tw };
                for_n(b, n, |b, tx| call(b, full, tx));
                if ec {
                    let tx = ic(b, tw as i64 - 1);
                    call(b, edge, tx);
                }
            };
            if er {
                let is_last = b.ins().icmp_imm_s(IntCC::Equal, ty, th as i64 - 1);
                let (yes, no, join) = (b.create_block(), b.create_block(), b.create_block());
                b.ins().brif(is_last, yes, &[], no, &[]);
                b.switch_to_block(yes);
                row(b, ptrs[5], ptrs[7]);
                b.ins().jump(join, &[]);
                b.switch_to_block(no);
                row(b, ptrs[4], ptrs[6]);
                b.ins().jump(join, &[]);
                b.switch_to_block(join);
            } else {
                row(b, ptrs[4], ptrs[6]);
            }
        });
    }
}

/// The weight transform `U = G g Gᵀ` of a [`WinogradSpec`], applied to `width` kernels at
/// once (the output channels of a packed column), in f64 with one rounding.
pub struct WeightTransform {
    /// `G` per axis.
    g: [Vec<f64>; 2],
    r: [usize; 2],
    n: [usize; 2],
    /// `G g` of each kernel, `[nh][rw][width]` (`[nh][rw][LANES]` on the AVX-512 path).
    tmp: Vec<f64>,
    /// One position of each kernel.
    acc: Vec<f64>,
    /// The taps of [`wide::LANES`] kernels as f64 (the AVX-512 path).
    #[cfg(target_arch = "x86_64")]
    taps: Vec<f64>,
}

impl WeightTransform {
    /// The transform of `spec`.
    pub fn new(spec: &WinogradSpec) -> WeightTransform {
        let [th, tw] = spec.transforms();
        WeightTransform {
            g: [th.g, tw.g],
            r: spec.r,
            n: spec.n(),
            tmp: Vec::new(),
            acc: Vec::new(),
            #[cfg(target_arch = "x86_64")]
            taps: Vec::new(),
        }
    }

    /// Transforms `width` kernels: tap `(ky, kx)` of kernel `k` is `taps[(ky * rw + kx) *
    /// width + k]`; position `(a, b)` of it goes to `out[(a * nw + b) * out_step + k]`.
    /// Each position is `Σ_l Gw[b][l] Σ_ky Gh[a][ky] g[ky][l]`, summed in that order in f64
    /// and rounded once to f32.
    pub fn apply(&mut self, taps: &[f32], width: usize, out: &mut [f32], out_step: usize) {
        let ([rh, rw], [nh, nw]) = (self.r, self.n);
        assert!(taps.len() >= rh * rw * width, "{} taps for {rh}x{rw}x{width}", taps.len());
        assert!(width == 0 || out.len() >= (nh * nw - 1) * out_step + width, "{} outputs", out.len());
        #[cfg(target_arch = "x86_64")]
        if width.is_multiple_of(wide::LANES)
            && nh <= wide::MAX_ROWS
            && nw <= wide::MAX_ROWS
            && crate::cpu::Cpu::host().avx512f
        {
            // SAFETY: the CPU has AVX-512F; the sizes were checked above and here.
            return unsafe { wide::apply(self, taps, width, out, out_step) };
        }
        self.apply_plain(taps, width, out, out_step)
    }

    /// [`Self::apply`] for any sizes and CPU.
    fn apply_plain(&mut self, taps: &[f32], width: usize, out: &mut [f32], out_step: usize) {
        let ([rh, rw], [nh, nw]) = (self.r, self.n);
        let [gh, gw] = &self.g;
        self.tmp.clear();
        self.tmp.resize(nh * rw * width, 0.0);
        for a in 0..nh {
            for l in 0..rw {
                let t = &mut self.tmp[(a * rw + l) * width..][..width];
                for ky in 0..rh {
                    let c = gh[a * rh + ky];
                    let g = &taps[(ky * rw + l) * width..][..width];
                    t.iter_mut().zip(g).for_each(|(t, g)| *t += c * *g as f64);
                }
            }
        }
        let acc = &mut self.acc;
        acc.resize(width, 0.0);
        for a in 0..nh {
            for b in 0..nw {
                acc.fill(0.0);
                for l in 0..rw {
                    let c = gw[b * rw + l];
                    let t = &self.tmp[(a * rw + l) * width..][..width];
                    acc.iter_mut().zip(t).for_each(|(s, t)| *s += c * t);
                }
                let o = &mut out[(a * nw + b) * out_step..][..width];
                o.iter_mut().zip(acc.iter()).for_each(|(o, s)| *o = *s as f32);
            }
        }
    }
}

/// [`WeightTransform::apply`] with AVX-512 intrinsics, [`LANES`](wide::LANES) kernels at a
/// time: each sum of a row of `G` is two vectors kept in registers (the rows are a
/// compile-time count), ~3x faster than the plain loops, which keep them in memory.
#[cfg(target_arch = "x86_64")]
mod wide {
    use super::WeightTransform;
    use std::arch::x86_64::*;

    /// Kernels at a time: two vectors of f64.
    pub const LANES: usize = 16;
    /// The most rows of `G` (positions per axis) it takes.
    pub const MAX_ROWS: usize = 8;

    /// # Safety
    /// The CPU has AVX-512F; `width` is a multiple of [`LANES`], `nh` and `nw` at most
    /// [`MAX_ROWS`], and `taps` and `out` as long as [`WeightTransform::apply`] asserts.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn apply(t: &mut WeightTransform, taps: &[f32], width: usize, out: &mut [f32], out_step: usize) {
        let ([rh, rw], [nh, nw]) = (t.r, t.n);
        let [gh, gw] = &t.g;
        // The chunk's taps as f64, `[rh][rw][LANES]`, then `G g`, `[nh][rw][LANES]`.
        t.taps.resize(rh * rw * LANES, 0.0);
        t.tmp.resize(nh * rw * LANES, 0.0);
        let (x, tmp) = (t.taps.as_mut_ptr(), t.tmp.as_mut_ptr());
        for k0 in (0..width).step_by(LANES) {
            for i in 0..rh * rw {
                // SAFETY: `i * width + k0 + LANES <= rh * rw * width <= taps.len()`; `x`
                // holds `rh * rw * LANES`.
                unsafe {
                    let p = taps.as_ptr().add(i * width + k0);
                    _mm512_storeu_pd(x.add(i * LANES), _mm512_cvtps_pd(_mm256_loadu_ps(p)));
                    _mm512_storeu_pd(x.add(i * LANES + 8), _mm512_cvtps_pd(_mm256_loadu_ps(p.add(8))));
                }
            }
            for l in 0..rw {
                // SAFETY: rows `ky` of column `l` are at `x + (ky * rw + l) * LANES`, rows `a`
                // of the result at `tmp + (a * rw + l) * LANES`, all inside.
                unsafe {
                    rows(nh, gh.as_ptr(), rh, x.add(l * LANES), rw * LANES, Out::F64(tmp.add(l * LANES), rw * LANES))
                };
            }
            for a in 0..nh {
                // SAFETY: position `(a, b)` of kernels `k0..k0 + LANES` is at `out + (a * nw +
                // b) * out_step + k0`, inside `out` (asserted by `apply`).
                unsafe {
                    let o = out.as_mut_ptr().add(a * nw * out_step + k0);
                    rows(nw, gw.as_ptr(), rw, tmp.add(a * rw * LANES), LANES, Out::F32(o, out_step))
                }
            }
        }
    }

    /// Where [`combine`] writes row `i`: f64 at `p + i * step`, or rounded to f32.
    #[derive(Clone, Copy)]
    enum Out {
        F64(*mut f64, usize),
        F32(*mut f32, usize),
    }

    /// [`combine`] with `r` (at most [`MAX_ROWS`]) made a compile-time count.
    ///
    /// # Safety
    /// As [`combine`]'s.
    #[target_feature(enable = "avx512f")]
    unsafe fn rows(r: usize, m: *const f64, cols: usize, x: *const f64, x_step: usize, out: Out) {
        // SAFETY: the caller's.
        unsafe {
            match r {
                1 => combine::<1>(m, cols, x, x_step, out),
                2 => combine::<2>(m, cols, x, x_step, out),
                3 => combine::<3>(m, cols, x, x_step, out),
                4 => combine::<4>(m, cols, x, x_step, out),
                5 => combine::<5>(m, cols, x, x_step, out),
                6 => combine::<6>(m, cols, x, x_step, out),
                7 => combine::<7>(m, cols, x, x_step, out),
                _ => combine::<8>(m, cols, x, x_step, out),
            }
        }
    }

    /// Row `i < R` of the result is `Σ_j m[i * cols + j] x_j`, summed from zero in order of
    /// `j`, where `x_j` is the [`LANES`] f64 at `x + j * x_step`.
    ///
    /// # Safety
    /// AVX-512F; `m` holds `R * cols` values, each `x_j` (`j < cols`) and each output row
    /// `LANES` values.
    #[target_feature(enable = "avx512f")]
    unsafe fn combine<const R: usize>(m: *const f64, cols: usize, x: *const f64, x_step: usize, out: Out) {
        let mut y = [[_mm512_setzero_pd(); 2]; R];
        for j in 0..cols {
            // SAFETY: the caller's.
            let (x0, x1) = unsafe { (_mm512_loadu_pd(x.add(j * x_step)), _mm512_loadu_pd(x.add(j * x_step + 8))) };
            for (i, y) in y.iter_mut().enumerate() {
                // SAFETY: `i * cols + j < R * cols`.
                let c = _mm512_set1_pd(unsafe { *m.add(i * cols + j) });
                y[0] = _mm512_add_pd(y[0], _mm512_mul_pd(c, x0));
                y[1] = _mm512_add_pd(y[1], _mm512_mul_pd(c, x1));
            }
        }
        for (i, y) in y.iter().enumerate() {
            // SAFETY: the caller's.
            unsafe {
                match out {
                    Out::F64(p, step) => {
                        _mm512_storeu_pd(p.add(i * step), y[0]);
                        _mm512_storeu_pd(p.add(i * step + 8), y[1]);
                    }
                    Out::F32(p, step) => {
                        _mm256_storeu_ps(p.add(i * step), _mm512_cvtpd_ps(y[0]));
                        _mm256_storeu_ps(p.add(i * step + 8), _mm512_cvtpd_ps(y[1]));
                    }
                }
            }
        }
    }
}

/// `for i in lo..hi` for compile-time bounds (nothing when empty).
fn for_range_c(b: &mut FunctionBuilder, lo: usize, hi: usize, body: impl FnMut(&mut FunctionBuilder, Value)) {
    if lo < hi {
        let (s, e) = (ic(b, lo as i64), ic(b, hi as i64));
        for_range(b, s, e, body);
    }
}

/// The signature of a [`super::tile::TileFn`].
fn tile_signature(b: &mut FunctionBuilder, call_conv: CallConv) -> SigRef {
    let mut sig = Signature::new(call_conv);
    for _ in 0..5 {
        sig.params.push(AbiParam::new(types::I64));
    }
    b.import_signature(sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The weight transform of many kernels at once (vectors of 16, on AVX-512) gives each
    /// kernel the bits it gets alone (the plain loops), for 2-D and 1-D tiles, widths that
    /// are and are not multiples of 16, and positions written with a stride.
    #[test]
    fn weight_transform_is_the_same_at_any_width() {
        for (m, r) in [([2, 2], [3, 3]), ([4, 4], [3, 3]), ([1, 2], [1, 7]), ([2, 1], [7, 1]), ([6, 6], [3, 3])] {
            let spec = WinogradSpec {
                cb: 1,
                ocb: 1,
                h: 8,
                w: 8,
                top: 0,
                left: 0,
                oh: 8,
                ow: 8,
                m,
                r,
                residual: None,
                relu: false,
                band: 1,
            };
            let (taps, p) = (r[0] * r[1], spec.positions());
            let mut wt = WeightTransform::new(&spec);
            for width in [16, 48, 64, 5] {
                let g: Vec<f32> = (0..taps * width).map(|i| ((i * 7919) % 1013) as f32 / 97.0 - 5.0).collect();
                let step = width + 3;
                let mut all = vec![f32::NAN; p * step];
                wt.apply(&g, width, &mut all, step);
                let (mut one, mut out) = (vec![0.0; taps], vec![0.0; p]);
                for k in 0..width {
                    (0..taps).for_each(|t| one[t] = g[t * width + k]);
                    wt.apply(&one, 1, &mut out, 1);
                    for q in 0..p {
                        assert_eq!(
                            all[q * step + k].to_bits(),
                            out[q].to_bits(),
                            "F({m:?},{r:?}) width {width} kernel {k} position {q}"
                        );
                    }
                }
                assert!(
                    (0..p).all(|q| all[q * step + width..(q + 1) * step].iter().all(|v| v.is_nan())),
                    "wrote past the kernels"
                );
            }
        }
    }

    /// `y = Aᵀ[(G g) ⊙ (Bᵀ d)]` equals the direct correlation for every supported size,
    /// in double precision, and `Bᵀ`, `Aᵀ` hold constants f32 represents exactly.
    #[test]
    fn transforms_compute_the_correlation() {
        for (m, r) in [(1, 1), (2, 3), (4, 3), (2, 5), (2, 7), (4, 5), (6, 3)] {
            let t = Transform1d::new(m, r);
            let n = t.n;
            let g: Vec<f64> = (0..r).map(|i| 0.3 + i as f64 * 0.7 - (i * i) as f64 * 0.11).collect();
            let d: Vec<f64> = (0..n).map(|i| 1.0 - i as f64 * 0.37 + (i % 3) as f64).collect();
            let gg: Vec<f64> = (0..n).map(|j| (0..r).map(|k| t.g[j * r + k] * g[k]).sum()).collect();
            let bd: Vec<f64> = (0..n).map(|j| (0..n).map(|k| t.bt[j * n + k] * d[k]).sum()).collect();
            for i in 0..m {
                let y: f64 = (0..n).map(|j| t.at[i * n + j] * gg[j] * bd[j]).sum();
                let want: f64 = (0..r).map(|k| g[k] * d[i + k]).sum();
                assert!((y - want).abs() < 1e-9 * (1.0 + want.abs()), "F({m},{r}) output {i}: {y} vs {want}");
            }
            for &x in t.bt.iter().chain(&t.at) {
                assert_eq!(x as f32 as f64, x, "F({m},{r}): constant {x} is not exact in f32");
            }
        }
    }

    /// The familiar `F(2, 3)`: `Bᵀ` rows are those of Lavin and Gray up to sign.
    #[test]
    fn f23_matches_the_paper() {
        let t = Transform1d::new(2, 3);
        let want = [[1.0, 0.0, -1.0, 0.0], [0.0, 1.0, 1.0, 0.0], [0.0, -1.0, 1.0, 0.0], [0.0, 1.0, 0.0, -1.0]];
        for (j, row) in want.iter().enumerate() {
            let got = &t.bt[j * 4..j * 4 + 4];
            let same = got.iter().zip(row).all(|(a, b)| a == b);
            let neg = got.iter().zip(row).all(|(a, b)| *a == -b);
            assert!(same || neg, "row {j}: {got:?}");
        }
    }
}
