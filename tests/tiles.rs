//! The tile contract's suite (`incc::target::tile`), run against every ISA: each ISA's
//! micro-tiles against a plain f64 loop of the contract, as tract's `linalg` runs one test
//! macro per kernel. [`tile_contract!`] instantiates the suite once per ISA; nothing in it
//! names an ISA: shapes and limits come from the ISA's own `TileIsa::blocking`. An ISA the
//! CPU lacks is skipped with a note (its tiles are still emitted and validated).

use incc::target::isa::Isa;
use incc::target::tile::{Broadcast, Dtype, TileSpec};
use incc::target::tileset::{TileCode, TileSet};
use proptest::prelude::*;

/// SplitMix64: deterministic test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn f32(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    fn fill(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.f32()).collect()
    }
}

/// Whether this machine runs `isa`'s tiles (a note when it does not).
fn runs(isa: Isa, d: Dtype) -> bool {
    match isa.runs(d) {
        Ok(()) => true,
        Err(needs) => {
            eprintln!("note: no {needs} on this machine; {isa:?} {d:?} tiles are not run");
            false
        }
    }
}

/// `s` (built for f32, strides in f32 bytes) with `d` input and weights: the same elements,
/// strides scaled to `d`'s bytes.
fn as_dtype(mut s: TileSpec, d: Dtype) -> TileSpec {
    let (eb, fb) = (d.bytes() as i64, 4);
    s.in_row = s.in_row / fb * eb + s.in_row % fb;
    s.in_plane = s.in_plane / fb * eb + s.in_plane % fb;
    s.dtype = d;
    s
}

/// The largest `m` of an `nr`-block tile the registers of `isa` allow.
fn largest(isa: Isa, nr: usize) -> usize {
    (1..=64).filter(|&m| isa.tiles().blocking(m, nr).is_ok()).max().expect("a 1-pixel tile fits")
}

/// Every tile shape `(m, nr)` the registers of `isa` allow.
fn shapes(isa: Isa) -> Vec<(usize, usize)> {
    (1..=4).flat_map(|nr| (1..=largest(isa, nr)).map(move |m| (m, nr))).collect()
}

/// A buffer and the element index (into it) that the kernel's pointer designates:
/// covers element offsets `lo..=hi` relative to that pointer, plus 16 guard elements.
struct Buf {
    data: Vec<f32>,
    origin: usize,
}

impl Buf {
    fn new(lo: i64, hi: i64, rng: &mut Rng) -> Buf {
        let origin = (16 - lo) as usize;
        Buf { data: rng.fill(origin + hi as usize + 17), origin }
    }
    fn at(&self, off: i64) -> f32 {
        self.data[(self.origin as i64 + off) as usize]
    }
}

/// `x` rounded to the nearest bf16 (ties to even), as f32.
fn bf16(x: f32) -> f32 {
    let b = x.to_bits();
    f32::from_bits((b + 0x7FFF + ((b >> 16) & 1)) & 0xFFFF_0000)
}

/// The values of `data` stored as `dtype` (bf16: the top halves, `data` being exact in bf16).
fn encode(data: &[f32], dtype: Dtype) -> Vec<u8> {
    match dtype {
        Dtype::F32 => data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        Dtype::Bf16 => data.iter().flat_map(|v| ((v.to_bits() >> 16) as u16).to_le_bytes()).collect(),
    }
}

/// Runs tile `idx` of `code` (built from `s`) on random data and checks it against the
/// contract; returns the relative error `max |diff| / max |value|`. Also checks that no
/// element of `out` outside the tile changed. Input and weights are drawn exact in the
/// spec's element type, so the f64 loop computes exactly what the tile should, up to the
/// order of the f32 sums.
fn check(code: &TileCode, idx: usize, s: &TileSpec, rng: &mut Rng) -> f64 {
    let (m, nr) = (s.m as i64, s.nr as i64);
    let (kc, kh, kw, sw, lanes) = (s.kc as i64, s.kh as i64, s.kw as i64, s.sw as i64, s.lanes as i64);
    let eb = s.dtype.bytes() as i64;
    let exact = |v: Vec<f32>| if s.dtype == Dtype::Bf16 { v.into_iter().map(bf16).collect() } else { v };
    // Element extents of the three strided tensors relative to their pointers.
    let span = |n: i64, stride: i64, eb: i64| ((n - 1) * stride / eb).min(0)..=((n - 1) * stride / eb).max(0);
    let (pc, pr) = (span(kc, s.in_plane, eb), span(kh, s.in_row, eb));
    let mut inp =
        Buf::new(pc.start() + pr.start(), pc.end() + pr.end() + ((m - 1) * sw + kw - 1) * lanes + lanes - 1, rng);
    inp.data = exact(inp.data);
    let po = span(nr, s.out_plane, 4);
    let (olo, ohi) = (*po.start(), po.end() + (m - 1) * 16 + 15);
    // Weights by the contract's logical index `[c][ky][kx][l][j][16]`, then packed.
    let w = exact(rng.fill((kc * kh * kw * lanes * nr * 16) as usize));
    let packed: Vec<f32> = match s.dtype {
        Dtype::F32 => w.clone(),
        Dtype::Bf16 => {
            let mut p = vec![0f32; w.len()];
            for (i, v) in w.iter().enumerate() {
                let (o, j, l, tap) = (
                    i % 16,
                    (i / 16) % nr as usize,
                    (i / 16 / nr as usize) % lanes as usize,
                    i / 16 / nr as usize / lanes as usize,
                );
                let pair = (tap * lanes as usize + l) / 2;
                p[((pair * nr as usize + j) * 16 + o) * 2 + l % 2] = *v;
            }
            p
        }
    };
    let bias = rng.fill((nr * 16) as usize);
    let res = Buf::new(olo, ohi, rng);
    let mut out = Buf::new(olo, ohi, rng);

    let mut expected = out.data.clone();
    let mut max_value = 0f64;
    for i in 0..m {
        for j in 0..nr {
            for o in 0..16 {
                let oo = j * s.out_plane / 4 + i * 16 + o;
                let mut acc = if s.first { bias[(j * 16 + o) as usize] as f64 } else { out.at(oo) as f64 };
                for c in 0..kc {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            for l in 0..lanes {
                                let x = inp.at((c * s.in_plane + ky * s.in_row) / eb + (i * sw + kx) * lanes + l);
                                let wi = ((((c * kh + ky) * kw + kx) * lanes + l) * nr + j) * 16 + o;
                                acc += x as f64 * w[wi as usize] as f64;
                            }
                        }
                    }
                }
                if s.last {
                    if let Some(bits) = s.residual {
                        acc = res.at(oo) as f64 + f32::from_bits(bits) as f64 * acc;
                    }
                    if s.relu {
                        acc = acc.max(0.0);
                    }
                }
                max_value = max_value.max(acc.abs());
                expected[(out.origin as i64 + oo) as usize] = acc as f32;
            }
        }
    }

    let f = code.tile(idx);
    let res_ptr = if s.residual.is_some() { res.data[res.origin..].as_ptr() } else { std::ptr::null() };
    let (inp_bytes, w_bytes) = (encode(&inp.data, s.dtype), encode(&packed, s.dtype));
    let inp_ptr = inp_bytes[inp.origin * eb as usize..].as_ptr() as *const f32;
    // SAFETY: every pointer designates a buffer covering all elements the contract reads
    // or writes for `s` (computed above), `res` is null only without a residual, and
    // `code` (alive here) was built from `s`. The tiles read unaligned.
    unsafe { f(inp_ptr, w_bytes.as_ptr() as *const f32, out.data[out.origin..].as_mut_ptr(), bias.as_ptr(), res_ptr) };

    let mut max_diff = 0f64;
    for (k, (&got, &want)) in out.data.iter().zip(&expected).enumerate() {
        let d = (got as f64 - want as f64).abs();
        assert!(d.is_finite(), "{s:?}: element {k} is {got}, expected {want}");
        max_diff = max_diff.max(d);
    }
    let rel = max_diff / max_value.max(1e-30);
    assert!(rel <= 1e-5, "{s:?}: max |diff| {max_diff:e} vs max |value| {max_value:e}");
    rel
}

const KERNELS: [(usize, usize); 5] = [(1, 1), (3, 3), (1, 7), (7, 1), (5, 5)];

/// A spec with packed strides for an input `wide` pixels wide (plus `extra` bytes of
/// row and plane padding) and an output plane with `oextra` bytes of padding.
#[allow(clippy::too_many_arguments)]
fn spec(
    m: usize,
    nr: usize,
    kc: usize,
    k: (usize, usize),
    sw: usize,
    flags: usize,
    extra: i64,
    oextra: i64,
) -> TileSpec {
    let w = ((m - 1) * sw + k.1) as i64;
    let in_row = w * 64 + extra;
    let in_plane = in_row * k.0 as i64 + extra;
    TileSpec {
        m,
        nr,
        kc,
        lanes: 16,
        dtype: Dtype::F32,
        kh: k.0,
        kw: k.1,
        sw,
        in_row,
        in_plane,
        out_plane: m as i64 * 64 + oextra,
        first: flags & 1 != 0,
        last: flags & 2 != 0,
        residual: (flags & 4 != 0).then(|| (-0.75f32 + 0.5 * (flags & 8) as f32).to_bits()),
        relu: flags & 16 != 0,
    }
}

/// Every shape of the contract, every kernel, stride, flag combination and a spread of
/// unusual strides, all in one executable region.
fn grid(isa: Isa, d: Dtype) {
    let mut rng = Rng(1);
    let shapes = shapes(isa);
    // Many shapes (AVX-512 has 62): all `first && last` variants, a third of the rest.
    let sample = shapes.len() > 40;
    let mut specs = Vec::new();
    for (n, &(m, nr)) in shapes.iter().enumerate() {
        for f in 0..32usize {
            if sample && (f + n) % 3 != 0 && f & 3 != 3 {
                continue;
            }
            let k = KERNELS[(n + f) % KERNELS.len()];
            let kc = 1 + (n + f) % 5;
            let sw = 1 + (n + f / 3) % 2;
            let extra = [0i64, 4, 68, 1028, 192][f % 5];
            let oextra = [0i64, 12, 64, 4096][(n + f) % 4];
            let mut s = as_dtype(spec(m, nr, kc, k, sw, f, extra, oextra), d);
            if f % 7 == 6 {
                s.out_plane = -s.out_plane; // channel blocks stored downwards
            }
            if f % 11 == 10 {
                s.in_row = -s.in_row; // rows read upwards
                s.in_plane = -s.in_plane.abs() * 3;
            }
            specs.push(s);
        }
    }
    let mut kernels = TileSet::new(isa);
    let idx: Vec<(usize, usize)> = specs
        .iter()
        .map(|s| (kernels.add_with(s, Broadcast::Embedded).unwrap(), kernels.add_with(s, Broadcast::Register).unwrap()))
        .collect();
    let code = kernels.finish().unwrap();
    let mut worst = 0f64;
    for (s, &(e, r)) in specs.iter().zip(&idx) {
        worst = worst.max(check(&code, e, s, &mut rng));
        worst = worst.max(check(&code, r, s, &mut rng));
    }
    println!(
        "{isa:?}: {} specs, {} tiles, {} bytes, worst relative error {worst:e}",
        specs.len(),
        code.len(),
        code.code_bytes()
    );
    assert!(specs.len() > 300);
}

/// Compact inputs (`lanes < 16` channels per pixel, pixels `lanes * 4` bytes apart, as a
/// network's RGB image is stored): every lane count, kernels and strides of stems, on the
/// widest tile of each `nr` the planner picks and a small one.
fn compact_lanes(isa: Isa, d: Dtype) {
    let mut rng = Rng(4);
    let mut specs = Vec::new();
    let widest = |nr: usize| (isa.tiles().max_m(nr), nr);
    let shapes = [widest(1), widest(2), widest(3), widest(4), (5.min(widest(1).0), 1)];
    for lanes in (1..16usize).filter(|l| l.is_multiple_of(d.lanes_per_step())) {
        for (n, &(m, nr)) in shapes.iter().enumerate() {
            let k = [(7, 7), (3, 3), (1, 1), (5, 5), (3, 3)][(n + lanes) % 5];
            let sw = 1 + (n + lanes) % 2;
            let wp = ((m - 1) * sw + k.1) as i64 + (lanes % 3) as i64;
            let in_row = wp * lanes as i64 * 4;
            let flags = [3, 3 | 16, 1, 2 | 4 | 16, 3][n];
            let mut s = as_dtype(spec(m, nr, 1, k, sw, flags, 0, 0), d);
            s.lanes = lanes;
            s.in_row = in_row / 4 * d.bytes() as i64;
            s.in_plane = s.in_row * k.0 as i64;
            specs.push(s);
        }
    }
    let mut kernels = TileSet::new(isa);
    let idx: Vec<usize> = specs.iter().map(|s| kernels.add(s).unwrap()).collect();
    let code = kernels.finish().unwrap();
    let worst = specs.iter().zip(&idx).map(|(s, &i)| check(&code, i, s, &mut rng)).fold(0f64, f64::max);
    println!("{isa:?}: {} compact specs, worst relative error {worst:e}", specs.len());
}

/// All four `first`/`last` combinations chained: a 3-chunk reduction equals one call.
fn reduction_chunks(isa: Isa, d: Dtype) {
    let mut rng = Rng(2);
    // 3 output blocks of as many pixels as fit (9 on AVX-512, 2 on AVX2).
    let m = isa.tiles().max_m(3);
    let whole = as_dtype(spec(m, 3, 6, (3, 3), 1, 1 | 2 | 4 | 16, 64, 0), d);
    let chunk = |first, last| TileSpec { kc: 2, first, last, ..whole.clone() };
    let mut kernels = TileSet::new(isa);
    let [iw, i0, i1, i2] =
        [whole.clone(), chunk(true, false), chunk(false, false), chunk(false, true)].map(|s| kernels.add(&s).unwrap());
    let code = kernels.finish().unwrap();
    let eb = d.bytes();
    let exact = |v: Vec<f32>| if d == Dtype::Bf16 { v.into_iter().map(bf16).collect::<Vec<_>>() } else { v };
    let inp = encode(&exact(rng.fill(whole.kc * whole.in_plane as usize / eb)), d);
    let w = encode(&exact(rng.fill(whole.weight_bytes() / eb)), d);
    let bias = rng.fill(48);
    let res = rng.fill(3 * m * 16);
    let (mut one, mut three) = (vec![0f32; 3 * m * 16], vec![0f32; 3 * m * 16]);
    // SAFETY: buffers sized by the contract for these specs; `code` is alive.
    unsafe {
        let f32s = |b: &[u8]| b.as_ptr() as *const f32;
        code.tile(iw)(f32s(&inp), f32s(&w), one.as_mut_ptr(), bias.as_ptr(), res.as_ptr());
        for (t, c) in [(i0, 0usize), (i1, 2), (i2, 4)] {
            let (inp, w) = (f32s(&inp[c * whole.in_plane as usize..]), f32s(&w[c * w.len() / 6..]));
            code.tile(t)(inp, w, three.as_mut_ptr(), bias.as_ptr(), res.as_ptr());
        }
    }
    let max = one.iter().fold(0f32, |a, v| a.max(v.abs()));
    let diff = one.iter().zip(&three).fold(0f32, |a, (x, y)| a.max((x - y).abs()));
    assert!(max > 1.0 && diff <= 1e-5 * max, "{isa:?}: diff {diff} max {max}");
}

/// Runs on every machine (emission needs no CPU feature; only `finish` does).
fn sharing_and_refusal(isa: Isa, d: Dtype) {
    let mut kernels = TileSet::new(isa);
    // The largest single-block tiles: no spare register for a separate broadcast on
    // AVX-512 (Register falls back to the same tile); AVX2 has only one kind.
    let (m, two_blocks) = (largest(isa, 1), largest(isa, 2));
    let too_many = |m: usize, nr: usize| {
        let why = isa.tiles().blocking(m, nr).expect_err("one pixel too many");
        assert!(why.contains("registers"), "{why}");
        why
    };
    let (over, over_one) = (too_many(two_blocks + 1, 2), too_many(m + 1, 1));
    let s = as_dtype(spec(m, 1, 4, (1, 1), 1, 3, 0, 0), d);
    let a = kernels.add(&s).unwrap();
    assert_eq!(kernels.add(&s.clone()).unwrap(), a);
    assert_eq!(kernels.add_with(&s, Broadcast::Register).unwrap(), a);
    assert_eq!(kernels.add_with(&s, Broadcast::Embedded).unwrap(), a);
    let b = kernels.add(&TileSpec { relu: true, ..s.clone() }).unwrap();
    assert_ne!(a, b);
    assert_eq!(kernels.len(), 2);
    for (bad, why) in [
        (TileSpec { m: 0, ..s.clone() }, "at least 1"),
        (TileSpec { nr: 5, m: 1, ..s.clone() }, "nr must be"),
        (TileSpec { m: two_blocks + 1, nr: 2, ..s.clone() }, over.as_str()),
        (TileSpec { m: m + 1, ..s.clone() }, over_one.as_str()),
        (TileSpec { kw: 120, ..s.clone() }, "instructions exceeds"),
        (TileSpec { in_plane: 1 << 40, ..s.clone() }, "2 GiB"),
        (TileSpec { sw: usize::MAX, ..s.clone() }, "2 GiB"),
        (TileSpec { kc: 1 << 40, ..s.clone() }, "2 GiB"),
        (TileSpec { kh: usize::MAX, in_row: 64, ..s.clone() }, "2 GiB"),
        (TileSpec { out_plane: 1 << 31, m: two_blocks, nr: 2, ..s.clone() }, "2 GiB"),
    ] {
        let e = kernels.add(&bad).unwrap_err().to_string();
        assert!(e.contains(why), "{isa:?} {bad:?}: {e}");
    }
    assert_eq!(kernels.len(), 2);
    if isa.available() {
        let code = kernels.finish().unwrap();
        assert_eq!(code.len(), 2);
        assert!(code.code_bytes() > 0);
    } else {
        assert!(kernels.finish().unwrap_err().to_string().contains(isa.needs()));
    }
}

#[test]
fn tile_code_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<TileCode>();
}

fn arb_spec(isa: Isa, d: Dtype) -> impl Strategy<Value = TileSpec> {
    let max_m = move |nr: usize| largest(isa, nr).min(28);
    let shape = (1usize..=4).prop_flat_map(move |nr| (1..=max_m(nr), Just(nr)));
    (shape, 1usize..=5, 0..KERNELS.len(), 1usize..=2, 0usize..32, 0i64..64, 0i64..64, any::<bool>()).prop_map(
        move |((m, nr), kc, k, sw, flags, extra, oextra, flip)| {
            let mut s = as_dtype(spec(m, nr, kc, KERNELS[k], sw, flags, extra * 4, oextra * 4), d);
            if flip {
                s.out_plane = -s.out_plane;
            }
            s
        },
    )
}

fn random_tile(isa: Isa, s: &TileSpec, register: bool, seed: u64) {
    if isa.runs(s.dtype).is_ok() {
        let mut kernels = TileSet::new(isa);
        let b = if register { Broadcast::Register } else { Broadcast::Embedded };
        let idx = kernels.add_with(s, b).unwrap();
        let code = kernels.finish().unwrap();
        check(&code, idx, s, &mut Rng(seed));
    }
}

/// The suite for each ISA and element type: a module of tests per `name => (Isa, Dtype)`,
/// and [`COVERED`] listing them.
macro_rules! tile_contract {
    ($($name:ident => ($isa:expr, $d:expr)),* $(,)?) => {
        /// The ISAs and element types the suite is instantiated for.
        const COVERED: &[(Isa, Dtype)] = &[$(($isa, $d)),*];
        $(
            mod $name {
                use super::*;

                #[test]
                fn grid_of_tiles_matches_the_contract() {
                    if runs($isa, $d) {
                        grid($isa, $d);
                    }
                }

                #[test]
                fn compact_lanes_match_the_contract() {
                    if runs($isa, $d) {
                        compact_lanes($isa, $d);
                    }
                }

                #[test]
                fn reduction_chunks_chain_through_out() {
                    if runs($isa, $d) {
                        reduction_chunks($isa, $d);
                    }
                }

                #[test]
                fn equal_specs_share_a_tile_and_bad_specs_are_refused() {
                    sharing_and_refusal($isa, $d);
                }

                proptest! {
                    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
                    #[test]
                    fn random_tiles_match_the_contract(
                        s in arb_spec($isa, $d), register in any::<bool>(), seed in any::<u64>()
                    ) {
                        random_tile($isa, &s, register, seed);
                    }
                }
            }
        )*
    };
}

tile_contract!(
    avx512 => (Isa::Avx512, Dtype::F32),
    avx512_bf16 => (Isa::Avx512, Dtype::Bf16),
    avx2 => (Isa::Avx2, Dtype::F32),
);

/// Adding an ISA or an element type adds its line to [`tile_contract!`]'s instantiation:
/// every pair an ISA emits is covered, and an ISA refuses the types it does not emit.
#[test]
fn every_isa_and_type_runs_the_suite() {
    for isa in Isa::ALL {
        for d in [Dtype::F32, Dtype::Bf16] {
            let emits = isa.tiles().emits(d);
            assert_eq!(COVERED.contains(&(isa, d)), emits, "{isa:?} {d:?}");
            if !emits {
                let s = as_dtype(spec(1, 1, 1, (1, 1), 1, 3, 0, 0), d);
                let e = TileSet::new(isa).add(&s).unwrap_err().to_string();
                assert!(e.contains("has no"), "{e}");
            }
        }
    }
    let odd = TileSpec { lanes: 3, ..as_dtype(spec(1, 1, 1, (1, 1), 1, 3, 0, 0), Dtype::Bf16) };
    let e = TileSet::new(Isa::Avx512).add(&odd).unwrap_err().to_string();
    assert!(e.contains("pairs"), "{e}");
}

/// The bf16 conversion tile rounds as `incc::ir::precision::bf16_bits` (nearest even, NaN
/// quiet, denormals to zero), for even and odd pixel counts, and writes nothing past them;
/// AVX2 has none.
#[test]
fn bf16_conversion_tile_rounds_as_the_reference() {
    use incc::ir::precision::bf16_bits;
    use incc::target::tileset::Tile;
    assert!(TileSet::new(Isa::Avx2).add_tile(&Tile::ToBf16 { pixels: 3 }).is_err());
    if !runs(Isa::Avx512, Dtype::Bf16) {
        return;
    }
    let mut rng = Rng(9);
    let mut set = TileSet::new(Isa::Avx512);
    let counts = [1usize, 2, 3, 8, 17];
    let idx: Vec<usize> = counts.iter().map(|&n| set.add_tile(&Tile::ToBf16 { pixels: n }).unwrap()).collect();
    let code = set.finish().unwrap();
    for (&n, &i) in counts.iter().zip(&idx) {
        let specials = [
            f32::NAN,
            -f32::NAN,
            f32::INFINITY,
            f32::MAX,
            f32::from_bits(0x0000_8001),
            -f32::from_bits(0x007F_FFFF),
            1.0 + 1.0 / 256.0,
            1.0 + 3.0 / 256.0,
            -0.0,
        ];
        let x: Vec<f32> = (0..n * 16).map(|k| if k < specials.len() { specials[k] } else { rng.f32() * 1e3 }).collect();
        let mut out = vec![0xABCDu16; n * 16 + 16];
        // SAFETY: `x` holds `n` pixels, `out` room for them and a guard; `code` is alive.
        unsafe {
            code.tile(i)(x.as_ptr(), std::ptr::null(), out.as_mut_ptr() as *mut f32, std::ptr::null(), std::ptr::null())
        };
        for (k, (&v, &got)) in x.iter().zip(&out).enumerate() {
            assert_eq!(got, bf16_bits(v), "pixels {n}, element {k}: {v:e} ({:#x})", v.to_bits());
        }
        assert!(out[n * 16..].iter().all(|&g| g == 0xABCD), "wrote past {n} pixels");
    }
}
