//! Counter-based random streams for [`Weights::init`](super::Weights::init).
//!
//! A stream is SplitMix64 (Steele, Lea and Flood 2014): its `i`-th draw is
//! `mix(state + (i + 1) * GAMMA)`, a function of the stream's state and `i` alone. So any
//! range of a tensor can be generated without the values before it, on any thread, and a
//! loop over a range vectorises (eight 64-bit lanes with AVX-512). The values are those of
//! the sequential generator drawing one value per draw, bit for bit.

/// Rows of the blocks [`Weights::columns`](super::Weights::columns) reads:
/// the channel block of the packed layout.
pub const LANES: usize = 16;

/// The most rows a block read column by column has: a group of four channel blocks (the
/// widest micro-tile's output channels).
pub const MAX_ROWS: usize = 4 * LANES;

/// SplitMix64's increment (the golden ratio in 64 bits).
const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64's output function.
#[inline(always)]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// How one 64-bit draw becomes a value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Dist {
    /// Approximately normal with mean 0 and standard deviation `std`: the sum of the four
    /// 16-bit quarters of the draw (Irwin–Hall), centred and scaled to variance 1, cut off
    /// at ±2√3, times `std`.
    ///
    /// A hard choice: Box–Muller is exact but needs `ln` and `cos`, whose last bits come
    /// from the platform's libm; sums of uniforms need only integer and IEEE arithmetic, so
    /// the weights are bit-identical everywhere. One draw per value, no branch, and one f32
    /// multiply ([`Dist::value`]) keep the generation of Inception-v4's 43M parameters at
    /// a few tens of milliseconds.
    Normal {
        /// Standard deviation.
        std: f64,
    },
    /// Uniform in `[center - half, center + half)` from the draw's top 53 bits.
    Uniform {
        /// Midpoint.
        center: f64,
        /// Half the width.
        half: f64,
    },
}

impl Dist {
    /// The value of draw `z`. Normal: `(s - 131070) * c` in f32, one rounding, where `s` is
    /// the sum of the quarters and `c` = `√3 / 65536 * std` rounded to f32 ([`normal_unit`]);
    /// `s - 131070` is exact (at most 18 bits). Uniform: in f64, rounded once to f32.
    #[inline(always)]
    fn value(self, z: u64) -> f32 {
        match self {
            Dist::Normal { std } => (quarter_sum(z) as i32 - 131_070) as f32 * normal_unit(std),
            Dist::Uniform { center, half } => {
                let unit = (z >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
                (center + (2.0 * unit - 1.0) * half) as f32
            }
        }
    }
}

/// The sum of the four 16-bit quarters of `z`: pairs of quarters summed in two 32-bit
/// halves, then the halves (fewer vector operations than four masks).
#[inline(always)]
fn quarter_sum(z: u64) -> u32 {
    const HALVES: u64 = 0x0000_ffff_0000_ffff;
    let pairs = (z & HALVES) + (z >> 16 & HALVES);
    (pairs + (pairs >> 32)) as u32
}

/// The step of the normal values: a sum of quarters has variance 4 * 65536² / 12, so
/// `√3 / 65536` makes it 1; times `std`, rounded to f32.
#[inline(always)]
fn normal_unit(std: f64) -> f32 {
    (3f64.sqrt() / 65536.0 * std) as f32
}

/// One tensor's stream: its starting state and how draws become values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Stream {
    state: u64,
    dist: Dist,
}

impl Stream {
    /// The stream of tensor `key` under `seed`: SplitMix64 seeded with `seed` draws once, and
    /// that draw xor the FNV-1a hash of the key is the stream's state.
    pub(crate) fn for_key(seed: u64, key: &str, dist: Dist) -> Stream {
        let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3));
        Stream { state: mix(seed.wrapping_add(GAMMA)) ^ hash, dist }
    }

    /// Value `i` of the stream.
    #[cfg(test)]
    pub(crate) fn at(&self, i: u64) -> f32 {
        self.dist.value(mix(self.state.wrapping_add(i.wrapping_add(1).wrapping_mul(GAMMA))))
    }

    /// Writes values `start..start + out.len()` of the stream to `out`, with the widest
    /// vector instructions the CPU has (the values do not depend on which).
    pub(crate) fn fill(&self, start: u64, out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        {
            let cpu = crate::cpu::Cpu::host();
            if cpu.avx512f && cpu.avx512dq {
                // SAFETY: the CPU has the features `fill_avx512` is compiled for.
                return unsafe { self.fill_avx512(start, out) };
            }
            if cpu.avx2 {
                // SAFETY: the CPU has the features `fill_avx2` is compiled for.
                return unsafe { self.fill_avx2(start, out) };
            }
        }
        self.fill_with(start, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512dq,avx512vl")]
    fn fill_avx512(&self, start: u64, out: &mut [f32]) {
        self.fill_with(start, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn fill_avx2(&self, start: u64, out: &mut [f32]) {
        self.fill_with(start, out)
    }

    /// The loop the `fill_*` variants compile for their instruction sets; the distribution
    /// is matched outside it so that its body has no branch.
    #[inline(always)]
    fn fill_with(&self, start: u64, out: &mut [f32]) {
        let state = self.state.wrapping_add(start.wrapping_mul(GAMMA));
        #[inline(always)]
        fn run(mut state: u64, out: &mut [f32], dist: Dist) {
            for o in out {
                state = state.wrapping_add(GAMMA);
                *o = dist.value(mix(state));
            }
        }
        match self.dist {
            Dist::Normal { std } => run(state, out, Dist::Normal { std }),
            Dist::Uniform { center, half } => run(state, out, Dist::Uniform { center, half }),
        }
    }

    /// Writes columns of a block of `at.width` rows (a multiple of [`LANES`], at most
    /// [`MAX_ROWS`]) of `stride` values each: for `t < count`, `out[t * out_step + k]` is
    /// value `first + k * stride + t * step` times `scale[k]` (one f32 multiply, which
    /// leaves `v` unchanged for `s = 1`). Rows past the end of the stream's tensor are
    /// computed like the others: the caller overwrites them.
    pub(crate) fn fill_columns(&self, at: Columns, scale: &[f32; MAX_ROWS], out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        {
            let cpu = crate::cpu::Cpu::host();
            if cpu.avx512f && cpu.avx512dq && cpu.avx512bw {
                // SAFETY: the CPU has the features `fill_columns_avx512` is compiled for.
                return unsafe { self.fill_columns_avx512(at, scale, out) };
            }
            if cpu.avx2 {
                // SAFETY: the CPU has the features `fill_columns_avx2` is compiled for.
                return unsafe { self.fill_columns_avx2(at, scale, out) };
            }
        }
        self.fill_columns_with(at, scale, out)
    }

    /// [`Self::fill_columns`] with AVX-512: normal values by [`wide::normal_columns`].
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512dq,avx512bw,avx512vl")]
    fn fill_columns_avx512(&self, at: Columns, scale: &[f32; MAX_ROWS], out: &mut [f32]) {
        let width = at.width.min(MAX_ROWS) / LANES * LANES;
        if let Dist::Normal { std } = self.dist
            && at.count > 0
            && out.len() >= (at.count - 1) * at.out_step + width
        {
            let (base, lane, step) = self.columns_start(at);
            // SAFETY: the CPU has the features; `out` holds every column's `width` values
            // (checked above), a multiple of `LANES` at most `MAX_ROWS`.
            return unsafe { wide::normal_columns(at, base, step, &lane, scale, normal_unit(std), out) };
        }
        self.fill_columns_with(at, scale, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn fill_columns_avx2(&self, at: Columns, scale: &[f32; MAX_ROWS], out: &mut [f32]) {
        self.fill_columns_with(at, scale, out)
    }

    /// The state before row 0 of the first column (its draw is the state plus [`GAMMA`]),
    /// each row's offset from it, and the offset from one column to the next.
    fn columns_start(&self, at: Columns) -> (u64, [u64; MAX_ROWS], u64) {
        let base = self.state.wrapping_add(at.first.wrapping_mul(GAMMA));
        let lane: [u64; MAX_ROWS] = std::array::from_fn(|k| (k as u64).wrapping_mul(at.stride).wrapping_mul(GAMMA));
        (base, lane, at.step.wrapping_mul(GAMMA))
    }

    /// The loop the `fill_columns_*` variants compile: one column per step, [`LANES`] rows
    /// at a time.
    #[inline(always)]
    fn fill_columns_with(&self, at: Columns, scale: &[f32; MAX_ROWS], out: &mut [f32]) {
        let (base, lane, step) = self.columns_start(at);
        #[inline(always)]
        fn run(
            at: Columns,
            mut state: u64,
            step: u64,
            lane: &[u64; MAX_ROWS],
            scale: &[f32; MAX_ROWS],
            out: &mut [f32],
            dist: Dist,
        ) {
            let width = at.width.min(MAX_ROWS);
            state = state.wrapping_add(GAMMA);
            for t in 0..at.count {
                let Some(column) = out.get_mut(t * at.out_step..t * at.out_step + width) else { return };
                let vectors =
                    column.chunks_exact_mut(LANES).zip(lane.chunks_exact(LANES)).zip(scale.chunks_exact(LANES));
                for ((o, l), s) in vectors {
                    let (Ok(o), Ok(l), Ok(s)) =
                        (<&mut [f32; LANES]>::try_from(o), <&[u64; LANES]>::try_from(l), <&[f32; LANES]>::try_from(s))
                    else {
                        return;
                    };
                    for ((o, &l), &s) in o.iter_mut().zip(l).zip(s) {
                        *o = dist.value(mix(state.wrapping_add(l))) * s;
                    }
                }
                state = state.wrapping_add(step);
            }
        }
        match self.dist {
            Dist::Normal { std } => run(at, base, step, &lane, scale, out, Dist::Normal { std }),
            Dist::Uniform { center, half } => run(at, base, step, &lane, scale, out, Dist::Uniform { center, half }),
        }
    }
}

/// The AVX-512 column loop for normal values, sixteen rows (one f32 vector) at a time.
#[cfg(target_arch = "x86_64")]
mod wide {
    use super::{Columns, GAMMA, LANES, MAX_ROWS};
    use std::arch::x86_64::*;

    /// SplitMix64's output function on eight draws.
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    fn mix(z: __m512i) -> __m512i {
        let z = _mm512_mullo_epi64(
            _mm512_xor_si512(z, _mm512_srli_epi64::<30>(z)),
            _mm512_set1_epi64(0xbf58_476d_1ce4_e5b9u64 as i64),
        );
        let z = _mm512_mullo_epi64(
            _mm512_xor_si512(z, _mm512_srli_epi64::<27>(z)),
            _mm512_set1_epi64(0x94d0_49bb_1331_11ebu64 as i64),
        );
        _mm512_xor_si512(z, _mm512_srli_epi64::<31>(z))
    }

    /// [`Stream::fill_columns`](super::Stream::fill_columns) for [`Dist::Normal`](super::Dist)
    /// with unit `unit`, the same bits as [`Dist::value`](super::Dist) then the scale:
    /// the quarters, made signed by flipping their top bits, are summed in pairs by
    /// `vpmaddwd` and the pairs gathered into sixteen lanes, so `t = s - 131072` is exact in
    /// i32 and `fma(t, unit, 2 unit)` rounds `(s - 131070) unit` once.
    ///
    /// # Safety
    /// AVX-512 F, DQ and BW; `out` holds `(at.count - 1) * at.out_step + w` values, where
    /// `w` is `at.width` rounded down to [`LANES`] and at most [`MAX_ROWS`].
    #[target_feature(enable = "avx512f,avx512dq,avx512bw")]
    pub unsafe fn normal_columns(
        at: Columns,
        base: u64,
        step: u64,
        lane: &[u64; MAX_ROWS],
        scale: &[f32; MAX_ROWS],
        unit: f32,
        out: &mut [f32],
    ) {
        let groups = at.width.min(MAX_ROWS) / LANES;
        let flip = _mm512_set1_epi64(0x8000_8000_8000_8000u64 as i64);
        let ones = _mm512_set1_epi16(1);
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        let (u, u2) = (_mm512_set1_ps(unit), _mm512_set1_ps(2.0 * unit));
        let lanes: [[__m512i; 2]; MAX_ROWS / LANES] = std::array::from_fn(|g| {
            // SAFETY: `lane` holds `MAX_ROWS` values, `g * LANES + LANES` of them read.
            unsafe {
                let p = lane.as_ptr().add(g * LANES) as *const __m512i;
                [_mm512_loadu_si512(p), _mm512_loadu_si512(p.add(1))]
            }
        });
        // SAFETY: `scale` holds `MAX_ROWS` values, `g * LANES + LANES` of them read.
        let scales: [__m512; MAX_ROWS / LANES] =
            std::array::from_fn(|g| unsafe { _mm512_loadu_ps(scale.as_ptr().add(g * LANES)) });
        let mut state = base.wrapping_add(GAMMA);
        for t in 0..at.count {
            let s = _mm512_set1_epi64(state as i64);
            for g in 0..groups {
                let lo = mix(_mm512_add_epi64(s, lanes[g][0]));
                let hi = mix(_mm512_add_epi64(s, lanes[g][1]));
                let lo = _mm512_madd_epi16(_mm512_xor_si512(lo, flip), ones);
                let hi = _mm512_madd_epi16(_mm512_xor_si512(hi, flip), ones);
                let sum =
                    _mm512_add_epi32(_mm512_permutex2var_epi32(lo, even, hi), _mm512_permutex2var_epi32(lo, odd, hi));
                let v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), u, u2);
                // SAFETY: `t * out_step + g * LANES + LANES <= (count - 1) * out_step + w`.
                unsafe {
                    _mm512_storeu_ps(out.as_mut_ptr().add(t * at.out_step + g * LANES), _mm512_mul_ps(v, scales[g]))
                };
            }
            state = state.wrapping_add(step);
        }
    }
}

/// Where [`Stream::fill_columns`] reads and writes: the stream index of row 0 of the first
/// column, the distance between rows and between columns, the number of columns, the rows
/// (lanes) of a column, and the distance between columns in the output.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Columns {
    pub(crate) first: u64,
    pub(crate) stride: u64,
    pub(crate) step: u64,
    pub(crate) count: usize,
    pub(crate) width: usize,
    pub(crate) out_step: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The normal values are `((s + 2) / 65536 - 2) √3 std` for every sum of quarters `s`,
    /// computed as one f32 product of the exact `s - 131070` and the rounded unit: within
    /// an f32 rounding of the unit's error of the exact value.
    #[test]
    fn normal_values_round_as_the_plain_formula() {
        for std in [1.0, 0.1234, (2.0f64 / 27.0).sqrt()] {
            let unit = (3f64.sqrt() / 65536.0 * std) as f32;
            for s in 0..=4 * 0xffffu64 {
                // Quarters that sum to `s`, the low ones full first.
                let q: Vec<u64> = (0..4).map(|i| s.saturating_sub(i * 0xffff).min(0xffff)).collect();
                let z = q[0] | q[1] << 16 | q[2] << 32 | q[3] << 48;
                let v = Dist::Normal { std }.value(z);
                assert_eq!(v.to_bits(), (((s as f64 - 131_070.0) * unit as f64) as f32).to_bits(), "{s}");
                let exact = ((s as f64 + 2.0) / 65536.0 - 2.0) * 3f64.sqrt() * std;
                assert!((v as f64 - exact).abs() <= 1.2e-7 * exact.abs() + 1e-30, "{s}: {v} vs {exact}");
            }
        }
    }

    /// The SplitMix64 stream as a sequential generator, to check the counter form against.
    #[test]
    fn fill_matches_sequential_draws_at_any_offset() {
        for dist in [Dist::Normal { std: 0.3 }, Dist::Uniform { center: 1.0, half: 0.1 }] {
            let s = Stream::for_key(5, "a.weight", dist);
            let mut state = s.state;
            let seq: Vec<f32> = (0..1000)
                .map(|_| {
                    state = state.wrapping_add(GAMMA);
                    dist.value(mix(state))
                })
                .collect();
            for (start, len) in [(0, 1000), (1, 999), (17, 3), (123, 501), (999, 1), (5, 0)] {
                let mut out = vec![0.0; len];
                s.fill(start as u64, &mut out);
                assert_eq!(out, seq[start..start + len], "{dist:?} {start}+{len}");
                let mut plain = vec![0.0; len];
                s.fill_with(start as u64, &mut plain);
                assert_eq!(plain, out);
            }
            assert_eq!(s.at(123), seq[123]);
        }
    }

    #[test]
    fn columns_are_the_values_of_each_lane_scaled() {
        let s = Stream::for_key(9, "c", Dist::Normal { std: 0.05 });
        let scale: [f32; MAX_ROWS] = std::array::from_fn(|k| if k % 3 == 0 { 1.0 } else { 0.5 + k as f32 / 7.0 });
        for (first, stride, step, count, width, out_step) in
            [(0, 7, 1, 7, 16, 16), (21, 7, 3, 3, 16, 48), (5, 100, 9, 1, 64, 64), (1000, 1, 1, 40, 32, 40)]
        {
            let at = Columns { first, stride, step, count, width, out_step };
            let mut out = vec![0.0; count * out_step];
            s.fill_columns(at, &scale, &mut out);
            let mut plain = vec![0.0; count * out_step];
            s.fill_columns_with(at, &scale, &mut plain);
            assert_eq!(out, plain);
            for t in 0..count {
                for k in 0..out_step {
                    let got = out[t * out_step + k];
                    if k >= width {
                        assert_eq!(got, 0.0, "untouched");
                        continue;
                    }
                    let v = s.at(first + k as u64 * stride + t as u64 * step);
                    let want = v * scale[k];
                    assert_eq!(got.to_bits(), want.to_bits(), "{first} {stride} {t} {k}");
                }
            }
        }
    }

    #[test]
    fn the_normal_generator_has_unit_variance() {
        let s = Stream::for_key(1, "x", Dist::Normal { std: 1.0 });
        let mut v = vec![0.0f32; 20_000];
        s.fill(0, &mut v);
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean) * (x as f64 - mean)).sum::<f64>() / n;
        assert!(mean.abs() < 0.03 && (var - 1.0).abs() < 0.05, "mean {mean}, var {var}");
    }

    #[test]
    fn uniform_values_stay_in_their_interval() {
        let s = Stream::for_key(2, "b", Dist::Uniform { center: 1.0, half: 0.1 });
        let mut v = vec![0.0f32; 10_000];
        s.fill(0, &mut v);
        assert!(v.iter().all(|x| (0.9..=1.1).contains(x) && *x != 1.0));
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        assert!((mean - 1.0).abs() < 0.005, "mean {mean}");
    }
}
