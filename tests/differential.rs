//! Differential test: random small valid networks, written as `.incep` source, compiled
//! under every configuration and compared with the reference interpreter in `f64`.
//!
//! Configurations: `-O0`/`-O1`/`-O2` x 1/2 threads x the portable tier and, on a CPU with
//! AVX-512F, the wide tier and, with AVX2 and FMA, the avx2 tier. Run with `cargo test --release --test differential`. `INCC_DIFF_CASES=N` and
//! `INCC_DIFF_SEED=S` run other cases (default: 200 cases from seed 0).
//!
//! The generator builds a small tree of layers ([`Layer`]), tracks every tensor's shape so that
//! only valid networks come out, and prints the tree as source: stems of convolutions with
//! odd kernels, strides 1-2 and every way of writing padding; Inception modules of 2-4
//! branches (some behind a parameterised `block` reused with other filter counts); scaled
//! residual blocks; pools in both rounding modes and both `count_include_pad` variants;
//! LRN; spatial sizes down to 1x1; classifier heads and side outputs.
//!
//! The oracle is [`incc::reference::run_f64`] on the unoptimised graph with the same seeded
//! weights and input. Each compiled model first runs on other values (so nothing may rely
//! on a zeroed arena), then on the input; each output must satisfy
//! `max|jit - ref| <= 1e-4 * max|ref|`, and outputs are kept or dropped as the passes that
//! ran say. There is no absolute floor: outputs are linear layers, softmax, L2 norms or
//! maps of random data, never zero everywhere in practice (an all-zero reference would
//! demand exact zeros, and none of the 3,700 networks run so far needed anything else).
//! On failure the network is shrunk by deleting statements while the same configuration
//! still fails the same way, and both the original and the shrunk source are printed and
//! saved under `target/differential/`.

use incc::passes::Level;
use incc::weights::{Weights, random_input};
use incc::{Compiler, Error, Tier};
use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};

// ---- configurations ----

/// One setting of one axis of the configuration space: its name and what it sets.
type Knob = (&'static str, fn(Compiler) -> Compiler);

/// Optimisation levels.
const LEVELS: &[Knob] =
    &[("O0", |c| c.opt_level(Level::O0)), ("O1", |c| c.opt_level(Level::O1)), ("O2", |c| c.opt_level(Level::O2))];
/// Worker threads per run.
const THREADS: &[Knob] = &[("t1", |c| c.threads(1)), ("t2", |c| c.threads(2))];
/// Code-generation tiers: the portable Cranelift f32x4 kernels everywhere, the AVX-512
/// tiles where the CPU has AVX-512F and the AVX2 tiles where it has AVX2 and FMA.
fn tiers() -> Vec<Knob> {
    let all: [Knob; 3] = [
        ("portable", |c| c.tier(Tier::Portable)),
        ("avx512", |c| c.tier(Tier::Avx512)),
        ("avx2", |c| c.tier(Tier::Avx2)),
    ];
    let here = Tier::runnable();
    all.into_iter()
        .zip([Tier::Portable, Tier::Avx512, Tier::Avx2])
        .filter(|(_, t)| here.contains(t))
        .map(|(k, _)| k)
        .collect()
}

/// Every axis; each network is checked under the cartesian product.
fn axes() -> Vec<Vec<Knob>> {
    vec![LEVELS.to_vec(), THREADS.to_vec(), tiers()]
}

/// A named compiler configuration.
struct Config {
    name: String,
    make: Vec<fn(Compiler) -> Compiler>,
}

impl Config {
    fn compiler(&self, seed: u64) -> Compiler {
        self.make.iter().fold(Compiler::new().seed(seed).verify(true), |c, f| f(c))
    }
}

/// The cartesian product of [`axes`].
fn configs() -> Vec<Config> {
    let mut out = vec![Config { name: String::new(), make: vec![] }];
    for axis in axes() {
        out = out
            .iter()
            .flat_map(|c| {
                axis.iter().map(move |(n, f)| {
                    let name = if c.name.is_empty() { n.to_string() } else { format!("{}/{n}", c.name) };
                    let mut make = c.make.clone();
                    make.push(*f);
                    Config { name, make }
                })
            })
            .collect();
    }
    out
}

// ---- the check ----

/// Why a network failed under a configuration.
enum Failure {
    /// The front end rejected generated source (a generator or front-end bug).
    Invalid(String),
    /// Compilation or running failed or panicked.
    Crash(String),
    /// Outputs differ from the reference.
    Mismatch(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Failure::Invalid(m) => write!(f, "the front end rejects the generated source: {m}"),
            Failure::Crash(m) => write!(f, "crash: {m}"),
            Failure::Mismatch(m) => write!(f, "mismatch: {m}"),
        }
    }
}

/// The reference outputs of `src` in `f64`, with the lowered graph's output names.
struct Expected {
    outputs: Vec<(String, Vec<usize>, Vec<f64>)>,
    input: Vec<f32>,
}

fn expected(src: &str, seed: u64) -> Result<Expected, Failure> {
    let g = incc::frontend::compile_str("diff.incep", src).map_err(|e| Failure::Invalid(e.to_string()))?;
    let w = Weights::init(&g, seed);
    let n = g.node(g.inputs[0]).shape.numel();
    let input = random_input(n, seed);
    let x: Vec<f64> = input.iter().map(|&v| v as f64).collect();
    let outputs = incc::reference::run_f64(&g, &w, &[&x]).map_err(|e| Failure::Crash(format!("reference: {e}")))?;
    let outputs = outputs.into_iter().map(|o| (o.name, o.shape.0, o.data)).collect();
    Ok(Expected { outputs, input })
}

/// The outputs a compiled model keeps, at every level: those not named `aux*`, or all if
/// that leaves none (`PassOptions::outputs`).
fn kept(all: &[String]) -> Vec<String> {
    let main: Vec<String> = all.iter().filter(|n| !n.starts_with("aux")).cloned().collect();
    if main.is_empty() { all.to_vec() } else { main }
}

/// A model's outputs: name, shape, values.
use incc::ir::Outputs;

/// Compiles `src` under `cfg`, runs it and compares with `want`.
fn check(src: &str, seed: u64, cfg: &Config, want: &Expected) -> Result<(), Failure> {
    let run = || -> Result<Outputs, Error> {
        let c = cfg.compiler(seed).compile_str("diff.incep", src)?;
        // The tier knob is the last part of the name: the model must run on that tier.
        if !cfg.name.ends_with(&format!("/{}", c.report.tier)) {
            return Err(Error::Invalid(format!("compiled for the {} tier", c.report.tier)));
        }
        // A first run on other values leaves the arena dirty: nothing may depend on it
        // starting at zero.
        let other: Vec<f32> = random_input(want.input.len(), seed ^ 0x5eed).iter().map(|v| 8.0 * v).collect();
        c.model.run(&other)?;
        c.model.run(&want.input)
    };
    let got = match catch_unwind(AssertUnwindSafe(run)) {
        Ok(Ok(got)) => got,
        Ok(Err(e)) => return Err(Failure::Crash(e.to_string())),
        Err(p) => {
            let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
            return Err(Failure::Crash(format!("panic: {}", msg.unwrap_or_default())));
        }
    };
    let names: Vec<String> = want.outputs.iter().map(|o| o.0.clone()).collect();
    let wanted = kept(&names);
    let got_names: Vec<String> = got.names().map(String::from).collect();
    if got_names != wanted {
        return Err(Failure::Mismatch(format!("outputs {got_names:?}, expected {wanted:?}")));
    }
    for incc::ir::Output { name, shape, data: values } in &got {
        let Some((_, ws, wv)) = want.outputs.iter().find(|o| &o.0 == name) else { unreachable!() };
        if &shape.0 != ws || values.len() != wv.len() {
            return Err(Failure::Mismatch(format!("output `{name}`: shape {:?}, expected {ws:?}", shape.0)));
        }
        let scale = wv.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let mut worst = (0.0f64, 0usize);
        for (i, (&a, &b)) in values.iter().zip(wv).enumerate() {
            let d = (a as f64 - b).abs();
            if d.is_nan() || d > worst.0 {
                worst = (if d.is_nan() { f64::INFINITY } else { d }, i);
            }
        }
        if worst.0.is_nan() || worst.0 > 1e-4 * scale {
            let (i, d) = (worst.1, worst.0);
            return Err(Failure::Mismatch(format!(
                "output `{name}` {ws:?}: max|jit - ref| = {d:e} at [{i}] (jit {}, ref {}), max|ref| = {scale:e}, \
                 relative {:e}",
                values[i],
                wv[i],
                d / scale
            )));
        }
    }
    Ok(())
}

/// The last line of the bracketed statement that opens on line `i` (one ending in `{` or
/// `[`), or `i` itself for a one-line statement.
fn statement_end(lines: &[&str], i: usize) -> usize {
    let mut depth = 0usize;
    for (j, l) in lines.iter().enumerate().skip(i) {
        let t = l.trim();
        if t.starts_with('}') || t.starts_with(']') {
            depth = depth.saturating_sub(1);
        }
        if t.ends_with('{') || t.ends_with('[') {
            depth += 1;
        }
        if depth == 0 {
            return j;
        }
    }
    i
}

/// Deletes whole statements (a bracketed one with all its lines, or a single line) of `src`
/// while the front end accepts the result and `fails` holds, until no deletion does.
fn shrink(src: &str, fails: impl Fn(&str) -> bool) -> String {
    let mut lines: Vec<&str> = src.lines().collect();
    loop {
        let mut changed = false;
        let mut i = lines.len();
        while i > 0 {
            i -= 1;
            for end in [statement_end(&lines, i), i] {
                let mut cand = lines.clone();
                cand.drain(i..=end);
                let text = cand.join("\n") + "\n";
                if incc::frontend::compile_str("diff.incep", &text).is_ok() && fails(&text) {
                    lines = cand;
                    changed = true;
                    i = i.min(lines.len());
                    break;
                }
            }
        }
        if !changed {
            return lines.join("\n") + "\n";
        }
    }
}

/// Checks one network under every configuration; on failure, shrinks it, saves both
/// versions under `target/differential/` and returns the report.
fn check_all(tag: &str, src: &str, seed: u64) -> Result<(), String> {
    let want = expected(src, seed).map_err(|f| format!("{tag}: {f}\n{src}"))?;
    for cfg in configs() {
        let Err(f) = check(src, seed, &cfg, &want) else { continue };
        let same_kind = |text: &str| {
            let Ok(w) = expected(text, seed) else { return false };
            matches!(
                (check(text, seed, &cfg, &w), &f),
                (Err(Failure::Mismatch(_)), Failure::Mismatch(_)) | (Err(Failure::Crash(_)), Failure::Crash(_))
            )
        };
        let small = shrink(src, same_kind);
        let small_failure = match expected(&small, seed).and_then(|w| check(&small, seed, &cfg, &w)) {
            Ok(()) => "passes?".to_string(),
            Err(f) => f.to_string(),
        };
        let dir = format!("{}/target/differential", env!("CARGO_MANIFEST_DIR"));
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(format!("{dir}/{tag}.incep"), src);
        let _ = std::fs::write(format!("{dir}/{tag}.min.incep"), &small);
        return Err(format!(
            "{tag} (weights and input seed {seed}) fails under {}: {f}\n--- network (saved as {dir}/{tag}.incep) ---\n\
             {src}--- shrunk ({small_failure}; saved as {dir}/{tag}.min.incep) ---\n{small}",
            cfg.name
        ));
    }
    Ok(())
}

// ---- the generator ----

/// splitmix64: a small seeded generator, the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.range(0, xs.len() - 1)]
    }
}

/// A tensor's shape as the generator tracks it (batch 1 implied).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Dims {
    Map { c: usize, h: usize, w: usize },
    Flat(usize),
}

/// A channel count: a literal, or `p{param} * num / den + add` inside a block.
#[derive(Clone, Copy, Debug)]
enum Ch {
    Lit(usize),
    Expr { param: usize, num: usize, den: usize, add: usize },
}

impl Ch {
    fn eval(self, args: &[usize]) -> usize {
        match self {
            Ch::Lit(n) => n,
            Ch::Expr { param, num, den, add } => args[param] * num / den + add,
        }
    }
    fn text(self) -> String {
        match self {
            Ch::Lit(n) => n.to_string(),
            Ch::Expr { param, num, den, add } => {
                let mut s = format!("p{param}");
                if num != 1 {
                    write!(s, "*{num}").unwrap();
                }
                if den != 1 {
                    write!(s, "/{den}").unwrap();
                }
                if add != 0 {
                    write!(s, "+{add}").unwrap();
                }
                s
            }
        }
    }
}

/// How a convolution's padding is written.
#[derive(Clone, Copy, Debug)]
enum PadW {
    /// Nothing written (no padding).
    Omitted,
    Valid,
    Same,
    /// `pad P` (when equal) or `pad PHxPW`.
    Sym(usize, usize),
    /// `pad (top, bottom, left, right)`.
    Tuple([usize; 4]),
}

/// One statement of the generated network.
#[derive(Clone, Debug)]
enum Layer {
    Conv {
        out: Ch,
        k: [usize; 2],
        s: [usize; 2],
        pad: PadW,
        groups: usize,
        attrs: &'static str,
    },
    Pool {
        max: bool,
        k: [usize; 2],
        s: [usize; 2],
        pad: [usize; 4],
        ceil: bool,
        exclude: bool,
    },
    Lrn(&'static str),
    Bn(&'static str),
    Relu,
    Dropout,
    Gap,
    Flatten,
    Fc {
        out: usize,
        attrs: &'static str,
    },
    Softmax,
    NormL2,
    Concat(Vec<Vec<Layer>>),
    Residual {
        scale: Option<f32>,
        relu: bool,
        body: Vec<Layer>,
    },
    /// An instance of block `block` (repeated `times` inside `[ repeat ... ]` when > 1).
    Call {
        block: usize,
        args: Vec<usize>,
        times: usize,
    },
    /// `output NAME` (names the current tensor).
    Output(String),
    /// `output NAME { body }` (a side branch).
    Side(String, Vec<Layer>),
}

/// A generated `block NAME(p0, p1, ...)`; `p0` is always the input channel count.
struct Block {
    name: String,
    params: usize,
    /// Default of the last parameter, if it has one.
    default_last: Option<usize>,
    body: Vec<Layer>,
}

/// Output length of a window (`incc::ir::shape::window_out`, restated from
/// docs/LANGUAGE.md so that the generator checks the front end rather than copies it).
fn window(n: usize, k: usize, s: usize, a: usize, b: usize, ceil: bool) -> Option<usize> {
    if k > n + a + b {
        return None;
    }
    let span = n + a + b - k;
    if !ceil {
        return Some(span / s + 1);
    }
    let mut out = span.div_ceil(s) + 1;
    if (out - 1) * s >= n + a {
        out -= 1;
    }
    Some(out)
}

/// TensorFlow SAME padding of one dimension: (before, after).
fn same(n: usize, k: usize, s: usize) -> (usize, usize) {
    let total = ((n.div_ceil(s) - 1) * s + k).saturating_sub(n);
    (total / 2, total - total / 2)
}

struct Gen {
    rng: Rng,
    blocks: Vec<Block>,
    /// Labels made so far (every label is unique in the file).
    label: usize,
    /// Outputs made so far (their names are numbered).
    outputs: usize,
}

/// The shape of `body` applied to `d`, with block arguments `args`; `None` if invalid.
fn shape_seq(blocks: &[Block], body: &[Layer], mut d: Dims, args: &[usize]) -> Option<Dims> {
    for l in body {
        d = shape(blocks, l, d, args)?;
    }
    Some(d)
}

fn shape(blocks: &[Block], l: &Layer, d: Dims, args: &[usize]) -> Option<Dims> {
    let map = |d: Dims| match d {
        Dims::Map { c, h, w } => Some((c, h, w)),
        Dims::Flat(_) => None,
    };
    Some(match l {
        Layer::Conv { out, k, s, pad, groups, .. } => {
            let (c, h, w) = map(d)?;
            let out = out.eval(args);
            if out == 0 || c % groups != 0 || out % groups != 0 {
                return None;
            }
            let p = match *pad {
                PadW::Omitted | PadW::Valid => [0; 4],
                PadW::Same => {
                    let (t, b) = same(h, k[0], s[0]);
                    let (l, r) = same(w, k[1], s[1]);
                    [t, b, l, r]
                }
                PadW::Sym(ph, pw) => [ph, ph, pw, pw],
                PadW::Tuple(p) => p,
            };
            Dims::Map {
                c: out,
                h: window(h, k[0], s[0], p[0], p[1], false)?,
                w: window(w, k[1], s[1], p[2], p[3], false)?,
            }
        }
        Layer::Pool { k, s, pad, ceil, .. } => {
            let (c, h, w) = map(d)?;
            if pad[0].max(pad[1]) * 2 > k[0] || pad[2].max(pad[3]) * 2 > k[1] {
                return None;
            }
            Dims::Map {
                c,
                h: window(h, k[0], s[0], pad[0], pad[1], *ceil)?,
                w: window(w, k[1], s[1], pad[2], pad[3], *ceil)?,
            }
        }
        Layer::Lrn(_) => {
            map(d)?;
            d
        }
        Layer::Bn(_) | Layer::Relu | Layer::Dropout | Layer::Output(_) => d,
        Layer::Gap => {
            let (c, _, _) = map(d)?;
            Dims::Map { c, h: 1, w: 1 }
        }
        Layer::Flatten => {
            let (c, h, w) = map(d)?;
            Dims::Flat(c * h * w)
        }
        Layer::Fc { out, .. } => match d {
            Dims::Flat(_) => Dims::Flat(*out),
            Dims::Map { .. } => return None,
        },
        Layer::Softmax | Layer::NormL2 => match d {
            Dims::Flat(_) => d,
            Dims::Map { .. } => return None,
        },
        Layer::Concat(branches) => {
            let mut c = 0;
            let mut hw = None;
            for b in branches {
                let (bc, bh, bw) = map(shape_seq(blocks, b, d, args)?)?;
                if hw.is_some_and(|hw| hw != (bh, bw)) {
                    return None;
                }
                hw = Some((bh, bw));
                c += bc;
            }
            let (h, w) = hw?;
            Dims::Map { c, h, w }
        }
        Layer::Residual { body, .. } => {
            if shape_seq(blocks, body, d, args)? != d {
                return None;
            }
            d
        }
        Layer::Call { block, args: a, times, .. } => {
            let b = &blocks[*block];
            let mut a = a.clone();
            if a.len() < b.params {
                a.push(b.default_last?);
            }
            if map(d)?.0 != a[0] {
                return None;
            }
            let out = shape_seq(blocks, &b.body, d, &a)?;
            if *times > 1 && out != d {
                return None;
            }
            out
        }
        Layer::Side(_, body) => {
            shape_seq(blocks, body, d, args)?;
            d
        }
    })
}

/// Spatial-preserving convolution shapes: kernel and padding (stride 1).
const KEEP_CONVS: &[([usize; 2], [usize; 2])] = &[
    ([1, 1], [0, 0]),
    ([3, 3], [1, 1]),
    ([1, 3], [0, 1]),
    ([3, 1], [1, 0]),
    ([1, 7], [0, 3]),
    ([7, 1], [3, 0]),
    ([5, 5], [2, 2]),
];
/// Every kernel the generator uses.
const KERNELS: &[[usize; 2]] = &[[1, 1], [3, 3], [1, 3], [3, 1], [1, 7], [7, 1], [5, 5]];
/// Extra words on a convolution (the file's defaults supply the rest).
const CONV_ATTRS: &[&str] =
    &["", "", "", "", "bias", "nobias", "nobn", "bn", "norelu", "relu", "bn eps 0.001", "nobn norelu"];

impl Gen {
    fn label(&mut self) -> String {
        self.label += 1;
        if self.rng.chance(0.15) { format!("_a{}", self.label) } else { format!("l{}", self.label) }
    }

    /// A channel count: often not a multiple of 4, sometimes a multiple of 16.
    fn chan(&mut self) -> usize {
        match self.rng.range(0, 10) {
            0 | 1 => 16 * self.rng.range(1, 3),
            10 => self.rng.range(41, 100),
            2..=5 => {
                let c = self.rng.range(1, 37);
                if c.is_multiple_of(4) { c + 1 } else { c }
            }
            _ => self.rng.range(1, 40),
        }
    }

    /// A channel count inside a block with `params` parameters (or a literal at top level).
    fn ch(&mut self, params: usize) -> Ch {
        if params > 1 && self.rng.chance(0.7) {
            let param = self.rng.range(1, params - 1);
            let (num, den) = self.rng.pick(&[(1, 1), (1, 1), (1, 2), (3, 2), (2, 1)]);
            let add = if self.rng.chance(0.3) { self.rng.range(1, 5) } else { 0 };
            Ch::Expr { param, num, den, add }
        } else {
            Ch::Lit(self.chan())
        }
    }

    /// A convolution that keeps the spatial size.
    fn keep_conv(&mut self, params: usize) -> Layer {
        let (k, p) = self.rng.pick(KEEP_CONVS);
        let pad = match self.rng.range(0, 5) {
            0 if k == [1, 1] => PadW::Omitted,
            1 => PadW::Same,
            2 => PadW::Tuple([p[0], p[0], p[1], p[1]]),
            _ => PadW::Sym(p[0], p[1]),
        };
        let attrs = self.rng.pick(CONV_ATTRS);
        Layer::Conv { out: self.ch(params), k, s: [1, 1], pad, groups: 1, attrs }
    }

    /// A 1x1 convolution (a reduction, or a projection into a concat).
    fn one_by_one(&mut self, params: usize) -> Layer {
        let attrs = self.rng.pick(CONV_ATTRS);
        Layer::Conv { out: self.ch(params), k: [1, 1], s: [1, 1], pad: PadW::Omitted, groups: 1, attrs }
    }

    /// A pool that keeps the spatial size (3x3, stride 1, pad 1).
    fn keep_pool(&mut self) -> Layer {
        Layer::Pool {
            max: self.rng.chance(0.5),
            k: [3, 3],
            s: [1, 1],
            pad: [1; 4],
            ceil: false,
            exclude: self.rng.chance(0.5),
        }
    }

    /// Any convolution valid on `d`, or `None` after a few tries.
    fn any_conv(&mut self, d: Dims) -> Option<Layer> {
        for _ in 0..8 {
            let k = self.rng.pick(KERNELS);
            let s = match self.rng.range(0, 5) {
                0 | 1 => [2, 2],
                2 => [self.rng.range(1, 2), self.rng.range(1, 2)],
                _ => [1, 1],
            };
            let pad = match self.rng.range(0, 5) {
                0 => PadW::Omitted,
                1 => PadW::Valid,
                2 => PadW::Same,
                3 => PadW::Sym(self.rng.range(0, k[0] / 2 + 1), self.rng.range(0, k[1] / 2 + 1)),
                _ => PadW::Tuple([0, 1, 2, 3].map(|i| self.rng.range(0, k[i / 2] / 2 + 1))),
            };
            let out = self.chan();
            let mut groups = 1;
            if let Dims::Map { c, .. } = d
                && self.rng.chance(0.1)
            {
                groups = self.rng.pick(&[2, 3, c]);
            }
            let out = if groups > 1 { out.div_ceil(groups) * groups } else { out };
            let attrs = self.rng.pick(CONV_ATTRS);
            let l = Layer::Conv { out: Ch::Lit(out), k, s, pad, groups, attrs };
            if shape(&self.blocks, &l, d, &[]).is_some() {
                return Some(l);
            }
        }
        None
    }

    /// Any pool valid on `d`: max or average, 2x2/3x3/3x1, both rounding modes.
    fn any_pool(&mut self, d: Dims) -> Option<Layer> {
        for _ in 0..8 {
            let k = self.rng.pick(&[[2, 2], [3, 3], [3, 3], [3, 1], [5, 5]]);
            let s = [self.rng.range(1, 2), self.rng.range(1, 2)];
            let pad = if self.rng.chance(0.5) {
                [0; 4]
            } else {
                let (ph, pw) = (self.rng.range(0, k[0] / 2), self.rng.range(0, k[1] / 2));
                if self.rng.chance(0.7) { [ph, ph, pw, pw] } else { [ph, self.rng.range(0, k[0] / 2), pw, 0] }
            };
            let l = Layer::Pool {
                max: self.rng.chance(0.5),
                k,
                s,
                pad,
                ceil: self.rng.chance(0.5),
                exclude: self.rng.chance(0.5),
            };
            if shape(&self.blocks, &l, d, &[]).is_some() {
                return Some(l);
            }
        }
        None
    }

    /// An Inception module that keeps the spatial size: 2-4 branches, channels from
    /// `params` block parameters (0: literals).
    fn module(&mut self, params: usize) -> Layer {
        let n = self.rng.range(2, 4);
        let mut branches = vec![];
        for _ in 0..n {
            let mut b = match self.rng.range(0, 7) {
                0 => vec![self.one_by_one(params)],
                1 => {
                    // A 1x1 reduction, then 1-2 wider kernels: two of these make siblings.
                    let mut b = vec![self.one_by_one(params), self.keep_conv(params)];
                    if self.rng.chance(0.4) {
                        b.push(self.keep_conv(params));
                    }
                    b
                }
                2 => {
                    let split = Layer::Concat(vec![vec![self.keep_conv(params)], vec![self.keep_conv(params)]]);
                    vec![self.one_by_one(params), split]
                }
                3 => vec![self.keep_pool(), self.one_by_one(params)],
                4 if self.rng.chance(0.3) => vec![self.keep_pool()],
                // The module's input itself (`{ }`), or a concat straight inside the concat.
                5 if self.rng.chance(0.3) => vec![],
                6 if self.rng.chance(0.3) => {
                    vec![Layer::Concat(vec![vec![self.one_by_one(params)], vec![self.keep_conv(params)]])]
                }
                _ => vec![self.one_by_one(params), self.keep_conv(params)],
            };
            // A branch's tensor as an output (not in blocks: a second instance would repeat
            // the name); it cannot then be written in place into the concat.
            if params == 0 && !b.is_empty() && self.rng.chance(0.08) {
                self.outputs += 1;
                b.push(Layer::Output(format!("branch{}", self.outputs)));
            }
            branches.push(b);
        }
        Layer::Concat(branches)
    }

    /// A residual block for `c` input channels (or parameter `p0` inside a block):
    /// `x + s * body(x)` with a body ending in a 1x1 convolution back to `c` channels
    /// (fused into the convolution at -O1), or a body without one (a plain add).
    fn residual(&mut self, params: usize, c: usize) -> Layer {
        let back = if params > 0 { Ch::Expr { param: 0, num: 1, den: 1, add: 0 } } else { Ch::Lit(c) };
        let body = match self.rng.range(0, 9) {
            0 => vec![],
            1 => vec![self.keep_pool()],
            2 => {
                let Layer::Conv { k, s, pad, groups, attrs, .. } = self.keep_conv(params) else { unreachable!() };
                vec![Layer::Conv { out: back, k, s, pad, groups, attrs }]
            }
            n => {
                let first = if n < 7 { self.module(params) } else { self.keep_conv(params) };
                let attrs = self.rng.pick(&["bias nobn norelu", "bias nobn norelu", "nobn", "bn norelu"]);
                vec![first, Layer::Conv { out: back, k: [1, 1], s: [1, 1], pad: PadW::Omitted, groups: 1, attrs }]
            }
        };
        let scale = if self.rng.chance(0.8) { Some(self.rng.pick(&[0.1, 0.17, 0.2, 0.5, 1.0, 1.5])) } else { None };
        Layer::Residual { scale, relu: self.rng.chance(0.7), body }
    }

    /// A reduction module on `d`: every branch applies one stride-2 window, the same way.
    fn reduction(&mut self, d: Dims) -> Option<Layer> {
        let (k, pad) = self.rng.pick(&[(3, PadW::Omitted), (3, PadW::Sym(1, 1)), (3, PadW::Same), (2, PadW::Omitted)]);
        let p = match pad {
            PadW::Sym(a, b) => [a, a, b, b],
            PadW::Same => {
                let Dims::Map { h, w, .. } = d else { return None };
                let (t, b) = same(h, k, 2);
                let (l, r) = same(w, k, 2);
                [t, b, l, r]
            }
            _ => [0; 4],
        };
        let down = |g: &mut Gen| Layer::Conv {
            out: Ch::Lit(g.chan()),
            k: [k, k],
            s: [2, 2],
            pad: if g.rng.chance(0.5) { pad } else { PadW::Tuple(p) },
            groups: 1,
            attrs: g.rng.pick(CONV_ATTRS),
        };
        let mut branches = vec![vec![down(self)], vec![self.one_by_one(0), self.keep_conv(0), down(self)]];
        if self.rng.chance(0.7) {
            let exclude = self.rng.chance(0.5);
            branches.push(vec![Layer::Pool {
                max: self.rng.chance(0.6),
                k: [k, k],
                s: [2, 2],
                pad: p,
                ceil: false,
                exclude,
            }]);
        }
        let l = Layer::Concat(branches);
        shape(&self.blocks, &l, d, &[]).map(|_| l)
    }

    /// Defines a block of `params` parameters whose body keeps the spatial size.
    fn define_block(&mut self, residual: bool) -> usize {
        let params = self.rng.range(2, 4);
        let body = if residual { vec![self.residual(params, 0)] } else { vec![self.module(params)] };
        let default_last = if self.rng.chance(0.4) { Some(self.rng.range(2, 33)) } else { None };
        let name = format!("{}{}", if residual { "res" } else { "mix" }, self.blocks.len());
        self.blocks.push(Block { name, params, default_last, body });
        self.blocks.len() - 1
    }

    /// A call of block `b` on `c` channels with fresh arguments.
    fn call(&mut self, b: usize, c: usize, times: usize) -> Layer {
        let params = self.blocks[b].params;
        let mut args = vec![c];
        for _ in 1..params {
            args.push(if self.rng.chance(0.3) { 16 * self.rng.range(1, 2) } else { self.rng.range(2, 33) });
        }
        if self.blocks[b].default_last.is_some() && self.rng.chance(0.5) {
            args.pop();
        }
        Layer::Call { block: b, args, times }
    }

    /// A classifier head on `d` ending in a linear layer or softmax.
    fn head(&mut self, d: Dims) -> Vec<Layer> {
        let mut h = vec![];
        let small = matches!(d, Dims::Map { c, h, w } if c * h * w <= 2048);
        if !(small && self.rng.chance(0.4)) {
            h.push(Layer::Gap);
        }
        h.push(Layer::Flatten);
        if self.rng.chance(0.2) {
            h.push(Layer::Dropout);
        }
        if self.rng.chance(0.3) {
            h.push(Layer::Fc { out: self.chan(), attrs: "relu" });
            if self.rng.chance(0.3) {
                h.push(Layer::Bn(""));
            }
        }
        h.push(Layer::Fc { out: self.rng.range(2, 20), attrs: self.rng.pick(&["", "", "nobias"]) });
        match self.rng.range(0, 4) {
            0 => h.push(Layer::Softmax),
            1 => h.push(Layer::NormL2),
            _ => {}
        }
        h
    }

    /// The network body from input `d`, ending in its outputs.
    fn body(&mut self, mut d: Dims) -> Vec<Layer> {
        let mut out = vec![];
        let push = |out: &mut Vec<Layer>, l: Layer, d: &mut Dims, blocks: &[Block]| {
            *d = shape(blocks, &l, *d, &[]).unwrap_or_else(|| panic!("generator made an invalid layer {l:?} on {d:?}"));
            out.push(l);
        };
        // Stem.
        for _ in 0..self.rng.range(1, 3) {
            if let Some(l) = self.any_conv(d) {
                push(&mut out, l, &mut d, &self.blocks);
            }
        }
        if let Some(p) = self.any_pool(d).filter(|_| self.rng.chance(0.5)) {
            push(&mut out, p, &mut d, &self.blocks);
        }
        for _ in 0..self.rng.range(1, 5) {
            let Dims::Map { c, h, w } = d else { unreachable!() };
            let l = match self.rng.range(0, 12) {
                0 | 1 => Some(self.module(0)),
                2 => Some(self.residual(0, c)),
                3 | 4 => {
                    let residual = self.rng.chance(0.4);
                    let reuse: Vec<usize> = (0..self.blocks.len())
                        .filter(|&b| self.blocks[b].name.starts_with(if residual { "res" } else { "mix" }))
                        .collect();
                    let b = if !reuse.is_empty() && self.rng.chance(0.6) {
                        self.rng.pick(&reuse)
                    } else {
                        self.define_block(residual)
                    };
                    let times = if residual && self.rng.chance(0.4) { self.rng.range(2, 3) } else { 1 };
                    Some(self.call(b, c, times))
                }
                5 if h >= 3 && w >= 3 => self.reduction(d),
                5 | 6 => self.any_pool(d),
                7 => self.any_conv(d),
                8 => Some(if self.rng.chance(0.5) {
                    Layer::Lrn("")
                } else {
                    Layer::Lrn(self.rng.pick(&["size 3 alpha 0.001 beta 0.5 k 2", "size 4 alpha 0.01", "1"]))
                }),
                9 => Some(Layer::Bn(self.rng.pick(&["", "relu", "eps 0.001"]))),
                10 if c * h * w > 1 => {
                    // A side output, or naming the current tensor as an output (it must
                    // then stay a real tensor however the passes fuse around it).
                    self.outputs += 1;
                    let n = self.outputs;
                    if self.rng.chance(0.5) {
                        let name = if self.rng.chance(0.4) { format!("aux{n}") } else { format!("side{n}") };
                        let mut body = vec![];
                        if let Some(p) = self.any_pool(d).filter(|_| self.rng.chance(0.5)) {
                            body.push(p);
                        }
                        let dd = shape_seq(&self.blocks, &body, d, &[]).unwrap_or(d);
                        body.extend(self.head(dd));
                        Some(Layer::Side(name, body))
                    } else {
                        Some(Layer::Output(format!("mid{n}")))
                    }
                }
                _ => Some(Layer::Relu),
            };
            if let Some(l) = l {
                push(&mut out, l, &mut d, &self.blocks);
            }
        }
        let head = if self.rng.chance(0.8) { self.head(d) } else { vec![] };
        for l in head {
            push(&mut out, l, &mut d, &self.blocks);
        }
        if self.rng.chance(0.6) || self.outputs > 0 {
            out.push(Layer::Output("logits".into()));
        }
        out
    }
}

// ---- printing ----

impl Gen {
    /// Prints `l` at `indent`; `labelled`: whether a label is needed (weights or order).
    fn print(&mut self, s: &mut String, l: &Layer, indent: usize, label: Option<String>) {
        let pad = "  ".repeat(indent);
        let lab = label.map(|l| format!("{l}: ")).unwrap_or_default();
        match l {
            Layer::Conv { out, k, s: st, pad: p, groups, attrs } => {
                let kernel =
                    if k[0] == k[1] && self.rng.chance(0.3) { k[0].to_string() } else { format!("{}x{}", k[0], k[1]) };
                let mut t = format!("conv {} {kernel}", out.text());
                if *st != [1, 1] {
                    if st[0] == st[1] {
                        write!(t, " stride {}", st[0]).unwrap();
                    } else {
                        write!(t, " stride {}x{}", st[0], st[1]).unwrap();
                    }
                }
                match p {
                    PadW::Omitted => {}
                    PadW::Valid => t.push_str(" pad valid"),
                    PadW::Same => t.push_str(" pad same"),
                    PadW::Sym(a, b) if a == b => write!(t, " pad {a}").unwrap(),
                    PadW::Sym(a, b) => write!(t, " pad {a}x{b}").unwrap(),
                    PadW::Tuple([a, b, c, d]) => write!(t, " pad ({a}, {b}, {c}, {d})").unwrap(),
                }
                if *groups > 1 {
                    write!(t, " groups {groups}").unwrap();
                }
                if !attrs.is_empty() {
                    write!(t, " {attrs}").unwrap();
                }
                writeln!(s, "{pad}{lab}{t}").unwrap();
            }
            Layer::Pool { max, k, s: st, pad: p, ceil, exclude } => {
                let mut t = format!("{} {}x{}", if *max { "maxpool" } else { "avgpool" }, k[0], k[1]);
                if st != k {
                    write!(t, " stride {}x{}", st[0], st[1]).unwrap();
                }
                match p {
                    [0, 0, 0, 0] => {}
                    [a, b, c, d] if a == b && b == c && c == d => write!(t, " pad {a}").unwrap(),
                    [a, b, c, d] if a == b && c == d => write!(t, " pad {a}x{c}").unwrap(),
                    [a, b, c, d] => write!(t, " pad ({a}, {b}, {c}, {d})").unwrap(),
                }
                t.push_str(if *ceil { " ceil" } else { " floor" });
                if !max {
                    t.push_str(if *exclude { " exclude_pad" } else { " include_pad" });
                }
                writeln!(s, "{pad}{lab}{t}").unwrap();
            }
            Layer::Lrn(a) => writeln!(s, "{pad}{lab}lrn {}", if a.is_empty() { "5" } else { a }).unwrap(),
            Layer::Bn(a) => writeln!(s, "{pad}{lab}bn {a}").unwrap(),
            Layer::Relu => writeln!(s, "{pad}{lab}relu").unwrap(),
            Layer::Dropout => writeln!(s, "{pad}{lab}dropout 0.3").unwrap(),
            Layer::Gap => writeln!(s, "{pad}{lab}gap").unwrap(),
            Layer::Flatten => writeln!(s, "{pad}{lab}flatten").unwrap(),
            Layer::Fc { out, attrs } => writeln!(s, "{pad}{lab}fc {out} {attrs}").unwrap(),
            Layer::Softmax => writeln!(s, "{pad}{lab}softmax").unwrap(),
            Layer::NormL2 => writeln!(s, "{pad}{lab}l2norm").unwrap(),
            Layer::Concat(branches) => {
                writeln!(s, "{pad}{lab}concat {{").unwrap();
                for b in branches {
                    let bl = self.label();
                    self.print_seq(s, b, indent + 1, Some(bl));
                }
                writeln!(s, "{pad}}}").unwrap();
            }
            Layer::Residual { scale, relu, body } => {
                let mut t = "residual".to_string();
                if let Some(sc) = scale {
                    write!(t, " scale {sc}").unwrap();
                }
                if *relu {
                    t.push_str(if self.rng.chance(0.3) { " relu = true" } else { " relu" });
                }
                writeln!(s, "{pad}{lab}{t} {{").unwrap();
                for l in body {
                    let bl = self.label();
                    self.print(s, l, indent + 1, Some(bl));
                }
                writeln!(s, "{pad}}}").unwrap();
            }
            Layer::Call { block, args, times } => {
                let b = &self.blocks[*block];
                let mut a: Vec<String> = args.iter().map(|v| v.to_string()).collect();
                if a.len() > 1 && self.rng.chance(0.3) {
                    let last = a.len() - 1;
                    a[last] = format!("p{last} = {}", a[last]);
                }
                let call = format!("{}({})", b.name, a.join(", "));
                if *times > 1 {
                    writeln!(s, "{pad}{lab}[ repeat {times} {{ {call} }} ]").unwrap();
                } else {
                    writeln!(s, "{pad}{lab}{call}").unwrap();
                }
            }
            Layer::Output(name) => writeln!(s, "{pad}output {name}").unwrap(),
            Layer::Side(name, body) => {
                writeln!(s, "{pad}output {name} {{").unwrap();
                for l in body {
                    let bl = self.label();
                    self.print(s, l, indent + 1, Some(bl));
                }
                writeln!(s, "{pad}}}").unwrap();
            }
        }
    }

    /// Prints a branch: one statement under `label`, or a `{ }` / `[ ]` sequence.
    fn print_seq(&mut self, s: &mut String, body: &[Layer], indent: usize, label: Option<String>) {
        let pad = "  ".repeat(indent);
        if let [one] = body {
            return self.print(s, one, indent, label);
        }
        let lab = label.map(|l| format!("{l}: ")).unwrap_or_default();
        let indexed = self.rng.chance(0.3);
        writeln!(s, "{pad}{lab}{}", if indexed { "[" } else { "{" }).unwrap();
        for l in body {
            let bl = if indexed { None } else { Some(self.label()) };
            self.print(s, l, indent + 1, bl);
        }
        writeln!(s, "{pad}{}", if indexed { "]" } else { "}" }).unwrap();
    }
}

/// The source of random network number `case` and the seed of its weights and input.
fn network(case: u64) -> String {
    let mut g =
        Gen { rng: Rng(case.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ 0xd1ff), blocks: vec![], label: 0, outputs: 0 };
    let dim = |r: &mut Rng| r.pick(&[1, 2, 3, 5, 7, 8, 9, 11, 12, 15, 17, 23, 29, 35]);
    let c = if g.rng.chance(0.8) { g.rng.range(1, 4) } else { g.rng.range(5, 19) };
    let d = Dims::Map { c, h: dim(&mut g.rng), w: dim(&mut g.rng) };
    let Dims::Map { c, h, w } = d else { unreachable!() };
    let mut s = format!("# differential case {case}\nnetwork diff_{case}\ninput image {c}x{h}x{w}\n");
    s.push_str(g.rng.pick(&[
        "default conv nobias bn eps 0.001 relu\n",
        "default conv nobias bn relu\n",
        "default conv bias nobn relu\n",
        "",
    ]));
    if g.rng.chance(0.3) {
        s.push_str("names conv \"{}\" bn \"{}_bn\" sep \"_\"\n");
    }
    let body = g.body(d);
    for i in 0..g.blocks.len() {
        let b = &g.blocks[i];
        let mut ps: Vec<String> = (0..b.params).map(|p| format!("p{p}")).collect();
        if let Some(v) = b.default_last {
            let last = ps.len() - 1;
            ps[last] = format!("{} = {v}", ps[last]);
        }
        writeln!(s, "block {}({}) {{", b.name, ps.join(", ")).unwrap();
        let body = std::mem::take(&mut g.blocks[i].body);
        for l in &body {
            let lab = g.label();
            g.print(&mut s, l, 1, Some(lab));
        }
        g.blocks[i].body = body;
        s.push_str("}\n");
    }
    for l in &body {
        let label = match l {
            Layer::Conv { .. }
            | Layer::Bn(_)
            | Layer::Concat(_)
            | Layer::Residual { .. }
            | Layer::Call { .. }
            | Layer::Fc { .. } => Some(g.label()),
            _ if g.rng.chance(0.3) => Some(g.label()),
            _ => None,
        };
        g.print(&mut s, l, 0, label);
    }
    s
}

/// Largest multiply-accumulates of a generated network (keeps the reference fast).
const MAX_MACS: u64 = 3_000_000;

/// Network `i` of the run from `base`: the id of the first candidate within [`MAX_MACS`]
/// (it also seeds the weights and the input) and its source.
fn case(base: u64, i: u64) -> (u64, String) {
    for attempt in 0.. {
        let id = base.wrapping_add(i).wrapping_mul(1000).wrapping_add(attempt);
        let src = network(id);
        let fits = incc::frontend::compile_str("diff.incep", &src).map_or(true, |g| g.total_macs() <= MAX_MACS);
        if fits {
            return (id, src);
        }
    }
    unreachable!()
}

fn env(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn random_networks_agree_with_the_reference() {
    let (cases, base) = (env("INCC_DIFF_CASES").unwrap_or(200), env("INCC_DIFF_SEED").unwrap_or(0));
    let t0 = std::time::Instant::now();
    let mut failures = vec![];
    for i in 0..cases {
        let (id, src) = case(base, i);
        if let Err(report) = check_all(&format!("case{id}"), &src, id) {
            eprintln!("{report}");
            failures.push(id);
        }
    }
    eprintln!(
        "{cases} networks x {} configurations in {:.1} s; {} failed",
        configs().len(),
        t0.elapsed().as_secs_f64(),
        failures.len()
    );
    assert!(failures.is_empty(), "failing cases: {failures:?} (sources above and in target/differential/)");
}

/// Hand-written corners the generator reaches only now and then, checked the same way.
#[test]
fn edge_cases_agree_with_the_reference() {
    let cases = [
        // A ceil-mode window hanging past the padded input: PyTorch divides by the part
        // inside the padded bounds (the random networks hit this about once in 200).
        "input 3x4x6\navgpool 3x3 stride 2 ceil include_pad\np: avgpool 3x3 stride 2 pad 1 ceil include_pad\n",
        // Sibling 1x1s whose outputs are a network output and a concat operand, the
        // module's input as a branch, and a concat straight inside a concat.
        "input 5x7x3\ndefault conv nobias bn relu\nm: concat {\n  a: { _1: conv 6 1x1; output o1 }\n  \
         b: { _1: conv 9 1x1; _2: conv 7 3x3 pad 1 }\n  c: { }\n  d: concat { e: conv 3 1x1; f: conv 17 1x7 pad 0x3 }\n}\n\
         output o2\n",
        // Residuals without a convolution to fuse into, on a 1x1 map, then a 7x1 kernel.
        "input 19x1x1\nr: residual scale 0.5 relu { }\nq: residual { maxpool 3x3 stride 1 pad 1 }\n\
         c: conv 21 7x1 pad 3x0 bn relu\ngap; flatten; f: fc 4; softmax\n",
    ];
    for (i, src) in cases.iter().enumerate() {
        check_all(&format!("edge{i}"), src, i as u64).unwrap_or_else(|r| panic!("{r}"));
    }
}

/// Re-checks a saved network: `INCC_DIFF_FILE=target/differential/case7.min.incep
/// INCC_DIFF_SEED=7 cargo test --release --test differential -- --ignored one_file`.
#[test]
#[ignore = "reproduces one saved network; needs INCC_DIFF_FILE"]
fn one_file() {
    let path = std::env::var("INCC_DIFF_FILE").expect("INCC_DIFF_FILE");
    let src = std::fs::read_to_string(&path).expect("read INCC_DIFF_FILE");
    let tag = std::path::Path::new(&path).file_stem().map_or("file".into(), |s| s.to_string_lossy().into_owned());
    check_all(&format!("{tag}.again"), &src, env("INCC_DIFF_SEED").unwrap_or(0)).unwrap_or_else(|r| panic!("{r}"));
}

/// The generator covers what it promises: across the default cases each construct appears,
/// some layer runs on a 1x1 map, and every pass it targets fires. The sources are saved
/// under `target/differential/generated/` (to read, or to seed the fuzzer with).
#[test]
fn generator_covers_the_constructs() {
    let dir = format!("{}/target/differential/generated", env!("CARGO_MANIFEST_DIR"));
    let _ = std::fs::create_dir_all(&dir);
    let mut text = String::new();
    let mut one_by_one_maps = 0;
    let mut rewrites = std::collections::HashMap::<&str, usize>::new();
    for i in 0..200 {
        let (id, src) = case(0, i);
        let g = incc::frontend::compile_str("diff.incep", &src).expect("generated source is valid");
        one_by_one_maps += g
            .node_ids()
            .into_iter()
            .filter(|&n| matches!(g.node(n).op, incc::ir::Op::Conv2d(_) | incc::ir::Op::Pool(_)))
            .filter(|&n| g.operands(n).iter().any(|&o| matches!(g.node(o).shape.0[..], [1, _, 1, 1])))
            .count();
        let (_, _, reports) = Compiler::new().seed(id).optimize(g).expect("optimise");
        for r in reports {
            *rewrites.entry(r.name).or_default() += r.rewrites;
        }
        let _ = std::fs::write(format!("{dir}/case{id}.incep"), &src);
        text.push_str(&src);
    }
    for needle in [
        "concat {",
        "residual scale",
        "repeat",
        "block mix",
        "block res",
        "pad same",
        "pad valid",
        "pad (",
        "stride 2",
        "1x7",
        "7x1",
        "5x5",
        "exclude_pad",
        "include_pad",
        " ceil",
        "lrn",
        "softmax",
        "l2norm",
        "output side",
        "output aux",
        "output mid",
        "groups",
        "input image 1x",
        "= true",
        "p1/2",
        "names conv",
        "output branch",
        ": {\n  }",
        "{\n}",
    ] {
        assert!(text.contains(needle), "no generated network contains `{needle}`");
    }
    assert!(one_by_one_maps > 0, "no convolution or pool runs on a 1x1 map");
    // `select-winograd` needs a layer of at least 17x17 outputs with about 40 channels in and
    // out (4M multiply-adds for a 3x3), beyond the generator's budget (`MAX_MACS`); the
    // Winograd path is tested by `tests/jit.rs` (`random_winograd_convs` and the seven
    // architectures) instead.
    for pass in incc::target::pass_names().into_iter().filter(|&p| p != "select-winograd") {
        assert!(rewrites.get(pass).is_some_and(|&n| n > 0), "`{pass}` never fires: {rewrites:?}");
    }
    eprintln!("{one_by_one_maps} layers on 1x1 maps; rewrites per pass: {rewrites:?}");
}
