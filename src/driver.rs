//! The whole pipeline behind one builder: source → IR → optimised IR → native code.
//!
//! ```no_run
//! let compiled = incc::Compiler::new().threads(2).compile_file("architectures/inception_v4.incep")?;
//! let input = vec![0.0f32; 3 * 299 * 299];
//! let outputs = compiled.model.run(&input)?;
//! println!("{} outputs, compiled in {:.1} ms", outputs.len(), compiled.report.total_ms);
//! # Ok::<(), incc::Error>(())
//! ```

use crate::error::{Error, Result};
use crate::exec::JitOptions;
use crate::exec::Model;
use crate::ir::Graph;
use crate::ir::Precision;
use crate::passes::{self, Level, Pass, PassOptions, PassReport};
use crate::target::TierChoice;
use crate::weights::Weights;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where a network's weights come from.
#[derive(Clone, Debug)]
pub enum WeightSource {
    /// Deterministic seeded initialisation (He-normal convolutions, batch norms near identity).
    Init {
        /// The seed.
        seed: u64,
    },
    /// A safetensors file holding the reference implementation's state_dict.
    File(PathBuf),
}

/// The kernel tier asked for (`auto`, `avx512`, `avx2`, `portable`); see [`TierChoice`].
pub type Tier = TierChoice;

/// Builds compiled [`Model`]s; every option has a sensible default.
#[derive(Clone, Debug)]
pub struct Compiler {
    weights: WeightSource,
    pass_options: PassOptions,
    threads: usize,
    verify_code: bool,
    tier: TierChoice,
    check_bounds: bool,
}

impl Default for Compiler {
    fn default() -> Self {
        Compiler {
            weights: WeightSource::Init { seed: 0 },
            pass_options: PassOptions { verify: cfg!(debug_assertions), ..PassOptions::default() },
            threads: 0,
            verify_code: cfg!(debug_assertions),
            tier: TierChoice::Auto,
            check_bounds: false,
        }
    }
}

/// Timings and sizes of one compilation (`incc compile`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct CompileReport {
    /// The network.
    pub network: String,
    /// Reading and parsing the source.
    pub parse_ms: f64,
    /// Elaboration into the IR.
    pub lower_ms: f64,
    /// Loading weights from a file, or setting up the seeded ones (whose values are
    /// generated as they are packed, in `codegen_ms`).
    pub weights_ms: f64,
    /// The optimiser.
    pub passes_ms: f64,
    /// Memory planning, then weight packing (and generation) on all cores alongside code
    /// generation.
    pub codegen_ms: f64,
    /// Everything.
    pub total_ms: f64,
    /// Kernels compiled.
    pub kernels: usize,
    /// Kernel calls per run.
    pub steps: usize,
    /// Machine code bytes.
    pub code_bytes: usize,
    /// The convolution tier: `avx512` (AVX-512 tiles), `avx2` (AVX2 tiles) or `portable`
    /// (Cranelift f32x4).
    pub tier: String,
    /// The arithmetic of convolutions and linear layers: `f32` or `bf16`.
    pub precision: String,
    /// Distinct micro-tiles assembled (avx512 and avx2 tiers).
    pub tiles: usize,
    /// Bytes of one activation arena.
    pub arena_bytes: usize,
    /// Bytes of packed parameters.
    pub param_bytes: usize,
    /// What each pass did.
    pub passes: Vec<PassReport>,
}

/// A compiled network with the report of its compilation.
pub struct Compiled {
    /// The native code, ready to run.
    pub model: Model,
    /// The optimised graph it was generated from.
    pub graph: Graph,
    /// How long each stage took and what it produced.
    pub report: CompileReport,
}

impl Compiler {
    /// A compiler with the defaults: seeded weights, `-O2`, all cores.
    pub fn new() -> Self {
        Self::default()
    }
    /// Load weights from a safetensors file.
    pub fn weights_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.weights = WeightSource::File(path.into());
        self
    }
    /// Use seeded initial weights.
    pub fn seed(mut self, seed: u64) -> Self {
        self.weights = WeightSource::Init { seed };
        self
    }
    /// Optimisation level.
    pub fn opt_level(mut self, level: Level) -> Self {
        self.pass_options.level = level;
        self
    }
    /// Passes not to run, by name.
    pub fn disable_passes(mut self, names: Vec<String>) -> Self {
        self.pass_options.disabled = names;
        self
    }
    /// The outputs to keep (others and what only they use are removed).
    pub fn outputs(mut self, names: Option<Vec<String>>) -> Self {
        self.pass_options.outputs = names;
        self
    }
    /// Worker threads per run (`0`: all available cores).
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }
    /// The kernel tier (default: the fastest this CPU runs).
    pub fn tier(mut self, tier: TierChoice) -> Self {
        self.tier = tier;
        self
    }
    /// The arithmetic of convolutions and linear layers (default f32; bf16 needs a CPU with
    /// AVX512_BF16, see [`crate::ir::precision`] for what it computes and
    /// [`crate::target::tier::best_precision`] for `auto`). The graph is optimised for it.
    pub fn precision(mut self, precision: Precision) -> Self {
        self.pass_options.precision = precision;
        self
    }
    /// Debug mode: guard zones around every buffer, checked after every kernel (see
    /// [`JitOptions::check_bounds`]).
    pub fn check_bounds(mut self, on: bool) -> Self {
        self.check_bounds = on;
        self
    }
    /// Run the IR verifier after every pass and Cranelift's verifier on every function.
    pub fn verify(mut self, on: bool) -> Self {
        self.pass_options.verify = on;
        self.verify_code = on;
        self
    }

    /// Compiles the `.incep` file at `path`.
    pub fn compile_file(&self, path: impl AsRef<Path>) -> Result<Compiled> {
        let t0 = Instant::now();
        let t = crate::frontend::compile_file_timed(path)?;
        self.finish(t, t0)
    }

    /// Compiles `.incep` source text, reported as file `name`.
    pub fn compile_str(&self, name: &str, text: &str) -> Result<Compiled> {
        let t0 = Instant::now();
        let t = crate::frontend::compile_str_timed(name, text)?;
        self.finish(t, t0)
    }

    /// The optimised graph and weights, without generating code (`--emit opt-ir`).
    pub fn optimize(&self, mut graph: Graph) -> Result<(Graph, Weights, Vec<PassReport>)> {
        let mut w = self.load_weights(&graph)?;
        let reports = crate::target::optimize(&mut graph, &mut w, &self.pass_options)?;
        Ok((graph, w, reports))
    }

    /// The graph as lowered, with only the chosen [`outputs`](Self::outputs) kept (the pass
    /// `eliminate-dead-outputs` and nothing else: no folding, fusion or layout), and its
    /// weights, without generating code. This is the network as written, as `incc export`
    /// writes it. Errors: weights that do not fit, an unknown output name, or a verifier
    /// failure (a compiler bug).
    pub fn select_outputs(&self, mut graph: Graph) -> Result<(Graph, Weights)> {
        let mut w = self.load_weights(&graph)?;
        let pass = passes::EliminateDeadOutputs { outputs: self.pass_options.outputs.clone() };
        pass.run(&mut graph, &mut w)?;
        if self.pass_options.verify {
            let errors = crate::ir::verify::verify(&graph);
            if !errors.is_empty() {
                return Err(Error::Verifier { pass: pass.name().into(), errors });
            }
        }
        Ok((graph, w))
    }

    /// The weights this compiler gives `graph`: the [`weights_file`](Self::weights_file)'s,
    /// or the seeded initialisation (what `incc run --engine reference` runs with).
    pub fn load_weights(&self, graph: &Graph) -> Result<Weights> {
        match &self.weights {
            WeightSource::Init { seed } => Ok(Weights::init(graph, *seed)),
            WeightSource::File(p) => Weights::load_safetensors(p, graph),
        }
    }

    fn finish(&self, front: crate::frontend::Timed, t0: Instant) -> Result<Compiled> {
        let mut graph = front.graph;
        let t1 = Instant::now();
        let mut w = self.load_weights(&graph)?;
        let t2 = Instant::now();
        let reports = crate::target::optimize(&mut graph, &mut w, &self.pass_options)?;
        let t3 = Instant::now();
        let model = Model::compile(
            &graph,
            &w,
            &JitOptions {
                threads: self.threads,
                verify: self.verify_code,
                tier: self.tier,
                precision: self.pass_options.precision,
                check_bounds: self.check_bounds,
            },
        )?;
        let t4 = Instant::now();
        let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
        let s = model.stats().clone();
        let report = CompileReport {
            network: graph.name.clone(),
            parse_ms: front.parse_ms,
            lower_ms: front.lower_ms,
            weights_ms: ms(t1, t2),
            passes_ms: ms(t2, t3),
            codegen_ms: ms(t3, t4),
            total_ms: t0.elapsed().as_secs_f64() * 1e3,
            kernels: s.kernels,
            steps: s.steps,
            code_bytes: s.code_bytes,
            arena_bytes: s.arena_bytes,
            param_bytes: s.param_bytes,
            tier: s.tier.map_or("portable", |t| t.name()).into(),
            precision: self.pass_options.precision.name().into(),
            tiles: s.tiles,
            passes: reports,
        };
        Ok(Compiled { model, graph, report })
    }
}

impl From<Level> for Compiler {
    fn from(level: Level) -> Self {
        Compiler::new().opt_level(level)
    }
}

/// The precision asked for: one of [`Precision`], or `auto` (bf16 where the CPU runs it,
/// f32 elsewhere). Written `auto`, `f32`, `bf16` in flags and profiles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrecisionChoice {
    /// f32 (the default).
    #[default]
    F32,
    /// bf16 ([`crate::ir::precision`]); an error on a CPU without AVX512_BF16.
    Bf16,
    /// bf16 on a CPU with AVX512_BF16, else f32.
    Auto,
}

impl PrecisionChoice {
    /// The precision this CPU computes it in.
    pub fn resolve(self) -> Precision {
        match self {
            PrecisionChoice::F32 => Precision::F32,
            PrecisionChoice::Bf16 => Precision::Bf16,
            PrecisionChoice::Auto => crate::target::tier::best_precision(),
        }
    }
}

/// Parses `-O` values: `0`, `1`, `2`.
pub fn parse_level(s: &str) -> Result<Level> {
    match s {
        "0" => Ok(Level::O0),
        "1" => Ok(Level::O1),
        "2" => Ok(Level::O2),
        _ => Err(Error::Invalid(format!("unknown optimisation level `{s}`: expected 0, 1 or 2"))),
    }
}
