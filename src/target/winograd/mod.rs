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
//!
//! Here: the matrices ([`Transform1d`]) and the geometry ([`WinogradSpec`]); the Cranelift
//! loops over tiles are in `loops.rs`, the weight transform ([`WeightTransform`]) in
//! `weights.rs`.

mod loops;
mod weights;

pub use weights::WeightTransform;

use super::x86::transform::TransformSpec;
use crate::target::clif::BB;

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
}

#[cfg(test)]
mod tests {
    use super::*;

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
