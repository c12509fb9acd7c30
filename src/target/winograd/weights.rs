//! The weight transform `U = G g Gᵀ`, at compile time: in f64 with one rounding, with
//! AVX-512 intrinsics where the CPU has them.

use super::WinogradSpec;

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
}
