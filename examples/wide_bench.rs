//! Benchmarks of the wide tiers' AVX-512 and AVX2 tiles (`incc::target` (`avx512`, `avx2`)) on one thread,
//! driven by a plain Rust loop over reduction chunks, output-channel groups, rows and row
//! tiles: GFLOP/s (median and best of 40 runs, the configurations interleaved) against the
//! 179 GFLOP/s one core reaches here with AVX-512 (half that with AVX2's 8-float vectors),
//! and the cost of emitting and mapping AVX-512 tiles.
//!
//! Run: `cargo run --release --example wide_bench [-- FILTER]` (FILTER matches a row label).

use incc::target::isa::Isa;
use incc::target::tile::{Broadcast, Dtype, TileFn, TileSpec};
use incc::target::tileset::{TileCode, TileSet};
use std::time::Instant;

/// One core's FMA peak here with AVX-512 (GFLOP/s); AVX2 reaches half.
const PEAK: f64 = 179.0;

fn peak(isa: Isa) -> f64 {
    if isa == Isa::Avx512 { PEAK } else { PEAK / 2.0 }
}
const ROUNDS: usize = 20;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// A 64-byte aligned f32 buffer of deterministic values in [-1, 1).
struct Aligned {
    data: Vec<f32>,
    start: usize,
    len: usize,
}

impl Aligned {
    fn new(len: usize, seed: u32) -> Aligned {
        let mut data = vec![0f32; len + 16];
        let start = data.as_ptr().align_offset(64);
        let mut x = seed.wrapping_mul(2654435761) | 1;
        for v in &mut data[start..start + len] {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *v = (x >> 8) as f32 / (1u32 << 23) as f32 - 1.0;
        }
        Aligned { data, start, len }
    }
    fn s(&self) -> &[f32] {
        &self.data[self.start..self.start + self.len]
    }
    fn m(&mut self) -> &mut [f32] {
        &mut self.data[self.start..self.start + self.len]
    }
}

/// A stride-1 convolution on NCHW16c tensors; the input is already padded.
struct Conv {
    name: &'static str,
    cin: usize,
    cout: usize,
    oh: usize,
    ow: usize,
    k: (usize, usize),
}

impl Conv {
    fn ih(&self) -> usize {
        self.oh + self.k.0 - 1
    }
    fn iw(&self) -> usize {
        self.ow + self.k.1 - 1
    }
    fn flops(&self) -> f64 {
        2.0 * (self.oh * self.ow * self.cin * self.cout * self.k.0 * self.k.1) as f64
    }
}

/// How the loops cut the convolution into tiles.
#[derive(Clone, Copy)]
struct Blocking {
    isa: Isa,
    m: usize,
    nr: usize,
    /// Input-channel blocks per call (a divisor of cin/16).
    kc: usize,
    broadcast: Broadcast,
}

/// Input, packed weights (per group of `nr` output blocks: `[c][ky][kx][l][j][16]`), bias,
/// output.
struct Data {
    inp: Aligned,
    w: Aligned,
    bias: Aligned,
    out: Aligned,
}

fn data(c: &Conv) -> Data {
    Data {
        inp: Aligned::new(c.cin * c.ih() * c.iw(), 1),
        w: Aligned::new(c.cout * c.cin * c.k.0 * c.k.1, 2),
        bias: Aligned::new(c.cout, 3),
        out: Aligned::new(c.cout * c.oh * c.ow, 4),
    }
}

/// Packed weight index of (output channel `co`, input channel `ci`, ky, kx) for group size nr.
fn w_index(c: &Conv, nr: usize, co: usize, ci: usize, ky: usize, kx: usize) -> usize {
    let (g, j, o) = (co / (16 * nr), co / 16 % nr, co % 16);
    let (cb, l) = (ci / 16, ci % 16);
    g * (c.cin * c.k.0 * c.k.1 * nr * 16) + ((((cb * c.k.0 + ky) * c.k.1 + kx) * 16 + l) * nr + j) * 16 + o
}

/// One tile call, as element offsets into the buffers of [`Data`].
struct Call {
    tile: TileFn,
    inp: usize,
    w: usize,
    out: usize,
    bias: usize,
}

/// A convolution cut into tiles, ready to run.
struct Case<'a> {
    label: String,
    c: &'a Conv,
    b: Blocking,
    d: Data,
    /// Owns the code the calls point into.
    code: TileCode,
    calls: Vec<Call>,
    times: Vec<f64>,
}

impl<'a> Case<'a> {
    /// Builds the tiles of `b` and the calls, in loop order: reduction chunks, groups of
    /// `nr` output blocks, rows, row tiles (the last one narrower when `m` does not divide
    /// the width).
    fn new(c: &'a Conv, b: Blocking) -> Case<'a> {
        let label = format!(
            "{} | {:?} {}x{} kc {}{}",
            c.name,
            b.isa,
            b.m,
            b.nr,
            b.kc,
            if b.broadcast == Broadcast::Register && b.isa == Isa::Avx512 { " vbroadcastss" } else { "" }
        );
        let (in_row, in_plane) = ((c.iw() * 64) as i64, (c.ih() * c.iw() * 64) as i64);
        let out_plane = (c.oh * c.ow * 64) as i64;
        let chunks = c.cin / 16 / b.kc;
        let mut kernels = TileSet::new(b.isa);
        let mut calls = Vec::new();
        for ch in 0..chunks {
            for g in 0..c.cout / (16 * b.nr) {
                for y in 0..c.oh {
                    for x0 in (0..c.ow).step_by(b.m) {
                        let spec = TileSpec {
                            m: b.m.min(c.ow - x0),
                            nr: b.nr,
                            kc: b.kc,
                            lanes: 16,
                            dtype: Dtype::F32,
                            kh: c.k.0,
                            kw: c.k.1,
                            sw: 1,
                            in_row,
                            in_plane,
                            out_plane,
                            first: ch == 0,
                            last: ch + 1 == chunks,
                            residual: None,
                            relu: true,
                        };
                        let idx = kernels.add_with(&spec, b.broadcast).expect("valid tile");
                        calls.push((
                            idx,
                            (ch * b.kc * c.ih() + y) * c.iw() * 16 + x0 * 16,
                            ch,
                            g,
                            (y * c.ow + x0) * 16,
                        ));
                    }
                }
            }
        }
        let code = kernels.finish().expect("wide tiles");
        let w_group = c.cin * c.k.0 * c.k.1 * b.nr * 16;
        let w_chunk = b.kc * c.k.0 * c.k.1 * 16 * b.nr * 16;
        let calls = calls
            .into_iter()
            .map(|(idx, inp, ch, g, out)| Call {
                tile: code.tile(idx),
                inp,
                w: g * w_group + ch * w_chunk,
                out: g * b.nr * c.oh * c.ow * 16 + out,
                bias: g * b.nr * 16,
            })
            .collect();
        Case { label, c, b, d: data(c), code, calls, times: Vec::new() }
    }

    fn run(&mut self) {
        let (inp, w, bias) = (self.d.inp.s().as_ptr(), self.d.w.s().as_ptr(), self.d.bias.s().as_ptr());
        let out = self.d.out.m().as_mut_ptr();
        for k in &self.calls {
            // SAFETY: the offsets were computed for buffers `data` sized for this conv (the
            // padded input covers every window of every tile); `self.code` owns the tiles.
            unsafe { (k.tile)(inp.add(k.inp), w.add(k.w), out.add(k.out), bias.add(k.bias), std::ptr::null()) }
        }
    }
}

/// Max |diff| / max |value| of `d.out` against a plain loop.
fn check(c: &Conv, b: Blocking, d: &Data) -> f64 {
    let (inp, w, bias, out) = (d.inp.s(), d.w.s(), d.bias.s(), d.out.s());
    let (mut max_diff, mut max_val) = (0f64, 0f64);
    for co in 0..c.cout {
        for y in 0..c.oh {
            for x in 0..c.ow {
                let mut acc = bias[co] as f64;
                for ci in 0..c.cin {
                    for ky in 0..c.k.0 {
                        for kx in 0..c.k.1 {
                            let xi = ((ci / 16 * c.ih() + y + ky) * c.iw() + x + kx) * 16 + ci % 16;
                            acc += inp[xi] as f64 * w[w_index(c, b.nr, co, ci, ky, kx)] as f64;
                        }
                    }
                }
                let want = acc.max(0.0);
                let got = out[((co / 16 * c.oh + y) * c.ow + x) * 16 + co % 16] as f64;
                max_diff = max_diff.max((got - want).abs());
                max_val = max_val.max(want.abs());
            }
        }
    }
    max_diff / max_val
}

/// Runs `cases` round-robin (so that load from other processes hits them alike): each
/// round runs a case twice untimed (its data back in cache), then times it twice.
fn measure(cases: &mut [Case]) {
    for _ in 0..ROUNDS {
        for case in cases.iter_mut() {
            case.run();
            case.run();
            for _ in 0..2 {
                let t = Instant::now();
                case.run();
                case.times.push(t.elapsed().as_secs_f64());
            }
        }
    }
    for case in cases.iter() {
        let err = check(case.c, case.b, &case.d);
        assert!(err <= 1e-5, "{}: relative error {err:e}", case.label);
        let gf = |t: f64| case.c.flops() / t / 1e9;
        let med = gf(median(case.times.clone()));
        let best = gf(case.times.iter().copied().fold(f64::MAX, f64::min));
        let bytes = case.code.code_bytes();
        println!("| {} | {med:.1} | {:.0}% | {best:.1} | {bytes} |", case.label, 100.0 * med / peak(case.b.isa));
    }
}

/// Microseconds to emit, assemble and map `n` fresh regions of one tile each (median),
/// and one region of `specs.len()` tiles per tile.
fn build_cost() {
    let t = Instant::now();
    let one = TileSpec {
        m: 14,
        nr: 2,
        kc: 18,
        lanes: 16,
        dtype: Dtype::F32,
        kh: 1,
        kw: 1,
        sw: 1,
        in_row: 35 * 64,
        in_plane: 35 * 35 * 64,
        out_plane: 35 * 35 * 64,
        first: true,
        last: true,
        residual: None,
        relu: true,
    };
    let mut k = TileSet::new(Isa::Avx512);
    k.add(&one).unwrap();
    k.finish().unwrap();
    println!("first region in the process (iced-x86 tables): {:.0} us", t.elapsed().as_secs_f64() * 1e6);
    let three = TileSpec { kh: 3, kw: 3, m: 9, nr: 3, kc: 4, in_row: 37 * 64, in_plane: 37 * 37 * 64, ..one.clone() };
    let seven = TileSpec { kh: 1, kw: 7, m: 14, nr: 2, kc: 4, in_row: 23 * 64, in_plane: 17 * 23 * 64, ..one.clone() };
    for (name, s) in [("14x2 1x1", &one), ("9x3 3x3", &three), ("14x2 1x7", &seven)] {
        let mut bytes = 0;
        let us = median(
            (0..50)
                .map(|_| {
                    let t = Instant::now();
                    let mut k = TileSet::new(Isa::Avx512);
                    k.add(s).unwrap();
                    bytes = k.finish().unwrap().code_bytes();
                    t.elapsed().as_secs_f64() * 1e6
                })
                .collect(),
        );
        println!("one {name} tile ({bytes} bytes), own region: {us:.0} us (median of 50)");
    }
    // A network's worth: 64 distinct tiles in one region.
    let specs: Vec<TileSpec> = (0..64)
        .map(|i| TileSpec {
            m: 1 + i % 14,
            kc: 1 + i / 14,
            lanes: 16,
            dtype: Dtype::F32,
            kh: [1, 3, 1][i % 3],
            kw: [1, 3, 7][i % 3],
            first: i % 2 == 0,
            ..one.clone()
        })
        .collect();
    let (mut n, mut bytes) = (0, 0);
    let us = median(
        (0..7)
            .map(|_| {
                let t = Instant::now();
                let mut k = TileSet::new(Isa::Avx512);
                for s in &specs {
                    k.add(s).unwrap();
                }
                let code = k.finish().unwrap();
                (n, bytes) = (code.len(), code.code_bytes());
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect(),
    );
    let (code_len, code_bytes) = (n, bytes);
    println!(
        "{} tiles in one region ({} KB): {us:.0} us, {:.0} us per tile (median of 7)",
        code_len,
        code_bytes / 1024,
        us / code_len as f64
    );
}

fn main() {
    let isas: Vec<Isa> = Isa::ALL.into_iter().filter(|i| i.available()).collect();
    if isas.is_empty() {
        eprintln!("neither AVX-512F nor AVX2 and FMA on this machine: nothing to measure");
        return;
    }
    let filter = std::env::args().nth(1).unwrap_or_default();
    if isas.contains(&Isa::Avx512) {
        build_cost();
        println!();
    }
    println!("| conv | tile | GFLOP/s (median) | % of peak ({PEAK}, AVX2 {}) | best | code bytes |", PEAK / 2.0);
    println!("|---|---|---|---|---|---|");
    let c1 = Conv { name: "1x1 288->64 @35x35", cin: 288, cout: 64, oh: 35, ow: 35, k: (1, 1) };
    let c3 = Conv { name: "3x3 64->96 @35x35", cin: 64, cout: 96, oh: 35, ow: 35, k: (3, 3) };
    // Inception-ResNet-v2's Block17 1x1 convolutions, rows merged as the plan merges them.
    let k1 = Conv { name: "1x1 1088->192 @1x289", cin: 1088, cout: 192, oh: 1, ow: 289, k: (1, 1) };
    let k2 = Conv { name: "1x1 384->1088 @1x289", cin: 384, cout: 1088, oh: 1, ow: 289, k: (1, 1) };
    let mut cases = Vec::new();
    for (isa, c, shapes) in [
        (Isa::Avx512, &k1, &[(15, 2, 68), (14, 2, 68), (15, 2, 4), (28, 1, 68), (7, 4, 68), (9, 3, 68)][..]),
        (Isa::Avx512, &k2, &[(15, 2, 24), (14, 2, 24), (15, 2, 4), (28, 1, 24), (7, 4, 24), (9, 3, 24)][..]),
        (
            Isa::Avx512,
            &c1,
            &[(14, 2, 18), (14, 2, 9), (12, 2, 18), (7, 4, 18), (7, 4, 9), (6, 4, 18), (5, 4, 18), (28, 1, 18)][..],
        ),
        (
            Isa::Avx512,
            &c3,
            &[(14, 2, 4), (14, 2, 2), (12, 2, 4), (9, 3, 4), (9, 3, 2), (9, 3, 1), (8, 3, 4), (7, 3, 4)][..],
        ),
        (Isa::Avx2, &c1, &[(6, 1, 18), (6, 1, 9), (7, 1, 18), (5, 1, 18), (3, 2, 18), (1, 4, 18)][..]),
        (Isa::Avx2, &c3, &[(6, 1, 4), (6, 1, 2), (7, 1, 4), (5, 1, 4), (3, 2, 4), (2, 3, 4)][..]),
    ] {
        if !isas.contains(&isa) {
            continue;
        }
        for &(m, nr, kc) in shapes {
            // AVX2 has one kind of broadcast.
            let broadcasts: &[Broadcast] = match isa {
                Isa::Avx512 => &[Broadcast::Embedded, Broadcast::Register],
                Isa::Avx2 => &[Broadcast::Register],
            };
            for &broadcast in broadcasts {
                let case = Case::new(c, Blocking { isa, m, nr, kc, broadcast });
                if case.label.contains(&filter) {
                    cases.push(case);
                }
            }
        }
    }
    measure(&mut cases);
}
