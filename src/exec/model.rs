//! [`Model`]: JIT code, packed weights and a pool of preallocated activation arenas.

use super::JitOptions;
use super::io::{read_blocked, write_blocked};
use super::pool::{KernelFn, ThreadPool};
use crate::error::{Error, Result};
use crate::ir::{Graph, Output, Outputs, Shape};
use crate::target::codegen::kernel::KernelSpec;
use crate::target::mem::Line;
use crate::target::mem::{self, Lines};
use crate::target::pack::{Pack, Queue};
use crate::target::plan::{self, Arg, Helper, Plan, Step};
use crate::target::tileset::Tile;
use crate::target::{self, codegen::Regalloc};
use crate::weights::Weights;

use cranelift_frontend::FunctionBuilderContext;
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{Linkage, Module, default_libcall_names};
use std::sync::Mutex;
use std::time::Instant;

/// Kernels below this many flops run on the calling thread only.
const PARALLEL_FLOPS: u64 = 200_000;

/// The largest activation arena [`Model::compile`] allocates (each caller gets one); a
/// larger network is refused before any allocation instead of exhausting memory.
pub const MAX_ARENA_BYTES: usize = 16 << 30;

extern "C" fn helper_powf(x: f32, y: f32) -> f32 {
    x.powf(y)
}

extern "C" fn helper_expf(x: f32) -> f32 {
    x.exp()
}

/// One caller's activation memory and its resolved argument tables.
struct Arena {
    /// Its pages mapped when it was made ([`mem::touch`]): a run takes no page faults.
    mem: Lines,
    /// All steps' argument tables, concatenated (pointers as integers).
    args: Vec<usize>,
}

/// The JIT modules; their code stays mapped until the model is dropped.
struct Code(Vec<JITModule>);

// SAFETY: after `finalize_definitions` a module is never touched again except to free it
// in `Drop`; the code is immutable and the function pointers are plain values.
unsafe impl Send for Code {}
// SAFETY: as above: shared references never reach the module.
unsafe impl Sync for Code {}

impl Drop for Code {
    fn drop(&mut self) {
        for m in self.0.drain(..) {
            // SAFETY: the model owning this is being dropped, so no function pointer into
            // the module can be called any more.
            unsafe { m.free_memory() };
        }
    }
}

/// Compile-time statistics.
#[derive(Clone, Debug, Default)]
pub struct CompileStats {
    /// Distinct kernels compiled.
    pub kernels: usize,
    /// Kernel calls per run.
    pub steps: usize,
    /// Machine code bytes.
    pub code_bytes: usize,
    /// Bytes of one activation arena.
    pub arena_bytes: usize,
    /// Bytes of packed parameters.
    pub param_bytes: usize,
    /// Planning time (ms).
    pub plan_ms: f64,
    /// Code generation time (ms), on one thread while the others pack the weights.
    pub codegen_ms: f64,
    /// The tier the convolutions run on.
    pub tier: Option<target::Tier>,
    /// Distinct micro-tiles (avx512 and avx2 tiers).
    pub tiles: usize,
}

/// A network compiled to native code, ready to run. `Send + Sync`: any number of threads
/// may call [`Model::run`] at once.
pub struct Model {
    plan: Plan,
    params: Lines,
    fns: Vec<KernelFn>,
    /// Start of each step's argument table in [`Arena::args`].
    arg_at: Vec<usize>,
    arenas: Mutex<Vec<Arena>>,
    pool: Option<Mutex<ThreadPool>>,
    stats: CompileStats,
    /// Entry points of the wide tiles, by [`Plan::tiles`] index.
    tiles: Vec<usize>,
    _code: Code,
    /// Owns the wide tiles' executable memory; dropped after `_code`.
    _wide: Option<target::tileset::TileCode>,
}

impl Model {
    /// Compiles `graph` with `weights` for the host CPU.
    ///
    /// Planning leaves the large weight blocks unwritten; one thread then generates the
    /// code while the others pack them (generating seeded weights as they go), and joins
    /// the packing when the code is done.
    pub fn compile(graph: &Graph, weights: &Weights, opts: &JitOptions) -> Result<Model> {
        let t0 = Instant::now();
        let tier = opts.tier.resolve_in(opts.precision)?;
        let (mut plan, packs) = plan::plan_deferred(graph, weights, tier, opts.precision, opts.check_bounds)?;
        if plan.arena_bytes > MAX_ARENA_BYTES {
            return Err(Error::Invalid(format!(
                "network `{}` needs {} bytes of activation memory at once, more than the {MAX_ARENA_BYTES} \
                 (16 GiB) incc allocates; make the input or the layers smaller",
                graph.name, plan.arena_bytes
            )));
        }
        let t1 = Instant::now();
        let mut arena = Lines::zeroed(plan.arena_bytes.div_ceil(64));
        let code = generate_while_packing(&mut plan, &packs, &mut arena, tier, opts)?;
        Model::assemble(plan, code, Some(arena), tier, opts, t1 - t0)
    }

    /// Compiles the kernels of `plan` (planned for `tier`, its parameters packed; planning
    /// began at `t0`).
    #[cfg(test)]
    fn from_plan(plan: Plan, tier: target::Tier, opts: &JitOptions, t0: Instant) -> Result<Model> {
        let plan_time = t0.elapsed();
        let code = Generated::for_kernels(&plan.kernels, &plan.tiles, tier, opts)?;
        Model::assemble(plan, code, None, tier, opts, plan_time)
    }

    /// The model of `plan` (its parameters packed) and its `code`; its first arena is
    /// `arena` (touched, [`mem::touch`]) or a new one, touched now.
    fn assemble(
        mut plan: Plan,
        code: Generated,
        arena: Option<Lines>,
        tier: target::Tier,
        opts: &JitOptions,
        plan_time: std::time::Duration,
    ) -> Result<Model> {
        let Generated { fns, tiles, modules, wide, code_bytes, ms: codegen_ms } = code;
        let param_bytes = plan.params.len() * 4;
        let params = std::mem::take(&mut plan.params).into_lines();
        let mut arg_at = Vec::new();
        let mut n = 0;
        for s in &plan.steps {
            arg_at.push(n);
            if let Step::Kernel { args, .. } = s {
                n += args.len();
            }
        }
        let threads =
            if opts.threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { opts.threads };
        let stats = CompileStats {
            kernels: plan.kernels.len(),
            steps: plan.steps.len(),
            code_bytes,
            arena_bytes: plan.arena_bytes,
            param_bytes,
            plan_ms: plan_time.as_secs_f64() * 1e3,
            codegen_ms,
            tier: Some(tier),
            tiles: wide.as_ref().map_or(0, |w| w.len()),
        };
        let mut m = Model {
            plan,
            params,
            fns,
            arg_at,
            arenas: Mutex::new(Vec::new()),
            pool: if threads > 1 { Some(Mutex::new(ThreadPool::new(threads - 1))) } else { None },
            stats,
            tiles,
            _code: Code(modules),
            _wide: wide,
        };
        let a = match arena {
            Some(mem) => m.arena_in(mem),
            None => m.new_arena(),
        };
        m.arenas.get_mut().map_err(|_| Error::Jit("arena lock poisoned".into()))?.push(a);
        Ok(m)
    }

    /// What compiling produced.
    pub fn stats(&self) -> &CompileStats {
        &self.stats
    }

    /// The network inputs: name and shape, in order.
    pub fn inputs(&self) -> impl Iterator<Item = (&str, &Shape)> {
        self.plan.inputs.iter().map(|(n, s, _)| (n.as_str(), s))
    }

    /// The network outputs: name and shape, in the order runs return them.
    pub fn outputs(&self) -> impl Iterator<Item = (&str, &Shape)> {
        self.plan.outputs.iter().map(|(n, s, _)| (n.as_str(), s))
    }

    /// A new arena (for a caller while the others are in use), touched so that its runs
    /// take no page faults.
    fn new_arena(&self) -> Arena {
        let mut mem = Lines::zeroed(self.plan.arena_bytes.div_ceil(64));
        mem::touch(&mut mem);
        self.arena_in(mem)
    }

    /// The arena in `mem` (`arena_bytes` long), with its argument tables.
    fn arena_in(&self, mut mem: Lines) -> Arena {
        let base = mem.as_mut_ptr() as usize;
        let pbase = self.params.as_ptr() as usize;
        let mut args = Vec::new();
        for s in &self.plan.steps {
            if let Step::Kernel { args: a, .. } = s {
                args.extend(a.iter().map(|a| match *a {
                    Arg::Arena(o) => base + o.0,
                    Arg::Param(o) => pbase + o.0,
                    Arg::Helper(Helper::Powf) => helper_powf as *const () as usize,
                    Arg::Helper(Helper::Expf) => helper_expf as *const () as usize,
                    Arg::Tile(i) => self.tiles[i.index()],
                    Arg::Null => 0,
                    Arg::Value(v) => v,
                }));
            }
        }
        Arena { mem, args }
    }

    /// Runs the network on its single input (NCHW, as [`crate::reference::run`] takes
    /// it), returning its outputs (name, shape, values) in order.
    pub fn run(&self, input: &[f32]) -> Result<Outputs> {
        self.run_inputs(&[input])
    }

    /// Runs the network on one slice per input, in [`Graph::inputs`] order.
    pub fn run_inputs(&self, inputs: &[&[f32]]) -> Result<Outputs> {
        let mut out: Vec<Output> = (self.plan.outputs.iter())
            .map(|(name, shape, _)| Output { name: name.clone(), shape: shape.clone(), data: vec![0.0; shape.numel()] })
            .collect();
        let mut bufs: Vec<&mut [f32]> = out.iter_mut().map(|o| o.data.as_mut_slice()).collect();
        self.run_into(inputs, &mut bufs)?;
        Ok(out.into())
    }

    /// Runs the network on one slice per input, writing each output into the caller's
    /// slice of [`Model::outputs`]' order and length: after the first run on a thread
    /// (which makes that thread's arena), nothing is allocated.
    ///
    /// Errors: a wrong number or length of inputs or outputs, or a kernel that failed its
    /// bounds check ([`Error::Jit`], with `check_bounds` on).
    pub fn run_into(&self, inputs: &[&[f32]], outputs: &mut [&mut [f32]]) -> Result<()> {
        if inputs.len() != self.plan.inputs.len() {
            return Err(Error::Invalid(format!(
                "the network has {} input(s), {} were given",
                self.plan.inputs.len(),
                inputs.len()
            )));
        }
        for ((name, shape, _), x) in self.plan.inputs.iter().zip(inputs) {
            if x.len() != shape.numel() {
                return Err(Error::InputShape {
                    name: name.clone(),
                    expected: shape.to_string(),
                    found: format!("{} values", x.len()),
                });
            }
        }
        if outputs.len() != self.plan.outputs.len() {
            return Err(Error::Invalid(format!(
                "the network has {} output(s), {} buffers were given",
                self.plan.outputs.len(),
                outputs.len()
            )));
        }
        for ((name, shape, _), y) in self.plan.outputs.iter().zip(outputs.iter()) {
            if y.len() != shape.numel() {
                return Err(Error::Invalid(format!(
                    "output `{name}` has shape {shape} ({} values); its buffer holds {}",
                    shape.numel(),
                    y.len()
                )));
            }
        }
        let arena = self.arenas.lock().map_err(|_| Error::Jit("arena lock poisoned".into()))?.pop();
        let mut arena = match arena {
            Some(a) => a,
            None => self.new_arena(),
        };
        for ((_, _, slot), x) in self.plan.inputs.iter().zip(inputs) {
            write_blocked(&mut arena.mem, slot, x);
        }
        // On an error the arena (its guards spoiled) is dropped, not returned to the pool.
        self.execute(&mut arena, None)?;
        for ((_, _, slot), y) in self.plan.outputs.iter().zip(outputs.iter_mut()) {
            read_blocked(&arena.mem, slot, y);
        }
        if let Ok(mut v) = self.arenas.lock() {
            v.push(arena);
        }
        Ok(())
    }

    /// Runs the network once and returns each step's kernel (by description), its
    /// floating-point operations and its time in seconds, in execution order.
    pub fn profile(&self, inputs: &[&[f32]]) -> Result<Vec<(String, u64, f64)>> {
        self.run_inputs(inputs)?;
        let mut arena = self.new_arena();
        for ((_, _, slot), x) in self.plan.inputs.iter().zip(inputs) {
            write_blocked(&mut arena.mem, slot, x);
        }
        let mut times = Vec::new();
        self.execute(&mut arena, Some(&mut times))?;
        Ok(self
            .plan
            .steps
            .iter()
            .zip(times)
            .map(|(s, t)| match s {
                Step::Kernel { kernel, flops, .. } => (format!("{:?}", self.plan.kernels[kernel.index()]), *flops, t),
                Step::Zero { len, .. } => (format!("Zero({len})"), 0, t),
            })
            .collect())
    }

    fn execute(&self, arena: &mut Arena, mut times: Option<&mut Vec<f64>>) -> Result<()> {
        let base = arena.mem.as_mut_ptr() as *mut u8;
        let guards = &self.plan.guards;
        for &g in guards {
            // SAFETY: the plan keeps every guard zone (`GUARD` bytes, 4-aligned) within
            // `arena_bytes`.
            let zone = unsafe { std::slice::from_raw_parts_mut(base.add(g.0) as *mut u32, plan::GUARD / 4) };
            zone.fill(GUARD_BITS);
        }
        let mut pool = self.pool.as_ref().and_then(|p| p.try_lock().ok());
        for (i, (s, &at)) in self.plan.steps.iter().zip(&self.arg_at).enumerate() {
            let t0 = times.as_ref().map(|_| Instant::now());
            match s {
                Step::Zero { offset, len } => {
                    // SAFETY: the plan keeps `offset + len` within `arena_bytes`.
                    unsafe { std::ptr::write_bytes(base.add(offset.0), 0, *len) };
                }
                Step::Kernel { kernel, items, flops, .. } => {
                    let f = self.fns[kernel.index()];
                    let args = arena.args[at..].as_ptr();
                    match pool.as_mut() {
                        Some(p) if *items > 1 && *flops >= PARALLEL_FLOPS => {
                            // SAFETY: `args` points at this step's table of live arena and
                            // parameter pointers; kernels write disjoint memory per item.
                            unsafe { p.run(f, args, *items) }
                        }
                        // SAFETY: as above, on the calling thread alone.
                        _ => unsafe { f(args, 0, *items as u64) },
                    }
                }
            }
            if let (Some(t), Some(t0)) = (times.as_mut(), t0) {
                t.push(t0.elapsed().as_secs_f64());
            }
            for &g in guards {
                // SAFETY: as above; the kernel has returned, nothing else writes the arena.
                let zone = unsafe { std::slice::from_raw_parts(base.add(g.0) as *const u32, plan::GUARD / 4) };
                if zone.iter().any(|&v| v != GUARD_BITS) {
                    let what = match s {
                        Step::Kernel { kernel, .. } => format!("{:?}", self.plan.kernels[kernel.index()]),
                        Step::Zero { offset, len } => format!("Zero {{ offset: {}, len: {len} }}", offset.0),
                    };
                    return Err(Error::Jit(format!(
                        "bounds check: step {i} wrote into the guard zone at arena byte {}: {what}",
                        g.0
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Generates the code of `plan` while packing `packs` into its parameters and touching
/// `arena` (the first arena's pages, mapped now rather than by the first run): this thread
/// compiles the kernels and one other assembles the wide tiles, while the rest of the
/// [`pack::threads`] pack; each joins the packing when its code is done.
///
/// [`pack::threads`]: super::pack::threads
fn generate_while_packing(
    plan: &mut Plan,
    packs: &[Pack],
    arena: &mut [Line],
    tier: target::Tier,
    opts: &JitOptions,
) -> Result<Generated> {
    let queue = Queue::new(&mut plan.params, packs)?.touching(arena);
    let t0 = Instant::now();
    let (tiles, kernels) = std::thread::scope(|s| {
        let threads = crate::target::pack::threads();
        let (queue, specs) = (&queue, &plan.tiles);
        let helper = (threads > 1).then(|| {
            s.spawn(move || {
                let tiles = Tiles::assemble(specs, tier);
                queue.work();
                tiles
            })
        });
        for _ in 2..threads {
            s.spawn(|| queue.work());
        }
        let kernels = Kernels::compile(&plan.kernels, opts);
        let tiles = match helper {
            Some(helper) => {
                queue.work();
                helper
                    .join()
                    .unwrap_or_else(|_| Err(Error::Jit(format!("the {} tile assembler panicked", tier.name()))))
            }
            None => {
                let tiles = Tiles::assemble(specs, tier);
                queue.work();
                tiles
            }
        };
        (tiles, kernels)
    });
    queue.finish()?;
    let (tiles, kernels) = (tiles?, kernels?);
    Ok(Generated::new(tiles, kernels, t0))
}

/// A plan's machine code: the Cranelift kernels and the wide tiles they call.
struct Generated {
    /// Entry of each kernel, by [`Plan::kernels`] index.
    fns: Vec<KernelFn>,
    /// Entry of each wide tile, by [`Plan::tiles`] index.
    tiles: Vec<usize>,
    modules: Vec<JITModule>,
    wide: Option<target::tileset::TileCode>,
    code_bytes: usize,
    /// Time taken (ms): the longer of the two parts, which run at once.
    ms: f64,
}

impl Generated {
    /// Compiles `kernels` and assembles `tile_specs` (for `tier`'s ISA), one after the other.
    #[cfg(test)]
    fn for_kernels(
        kernels: &[KernelSpec],
        tile_specs: &[Tile],
        tier: target::Tier,
        opts: &JitOptions,
    ) -> Result<Generated> {
        let t0 = Instant::now();
        let tiles = Tiles::assemble(tile_specs, tier)?;
        Ok(Generated::new(tiles, Kernels::compile(kernels, opts)?, t0))
    }

    /// Both parts, begun at `t0`.
    fn new(tiles: Tiles, kernels: Kernels, t0: Instant) -> Generated {
        let ms = tiles.done.max(kernels.done).duration_since(t0).as_secs_f64() * 1e3;
        let code_bytes = kernels.code_bytes + tiles.code.as_ref().map_or(0, |w| w.code_bytes());
        Generated { fns: kernels.fns, tiles: tiles.entries, modules: kernels.modules, wide: tiles.code, code_bytes, ms }
    }
}

/// The wide tiles of a plan (none on the portable tier).
struct Tiles {
    code: Option<target::tileset::TileCode>,
    /// Entry of each tile, by [`Plan::tiles`] index.
    entries: Vec<usize>,
    /// When they were done.
    done: Instant,
}

impl Tiles {
    /// Assembles `specs` for `tier`'s ISA (equal specs share code).
    fn assemble(specs: &[Tile], tier: target::Tier) -> Result<Tiles> {
        let mut ids = Vec::with_capacity(specs.len());
        let code = match tier.isa() {
            Some(isa) if !specs.is_empty() => {
                let mut wide = target::tileset::TileSet::new(isa);
                for t in specs {
                    ids.push(wide.add_tile(t)?);
                }
                Some(wide.finish()?)
            }
            _ => None,
        };
        let entries = match &code {
            Some(code) => ids.iter().map(|&i| code.tile(i) as usize).collect(),
            None => Vec::new(),
        };
        Ok(Tiles { code, entries, done: Instant::now() })
    }
}

/// The Cranelift kernels of a plan.
struct Kernels {
    /// The modules holding them: one per register allocator.
    modules: Vec<JITModule>,
    /// Entry of each kernel, by [`Plan::kernels`] index.
    fns: Vec<KernelFn>,
    code_bytes: usize,
    /// When they were done.
    done: Instant,
}

impl Kernels {
    /// Compiles `kernels` for the host. The wide convolutions' and the Winograd
    /// transforms' kernels only loop around their tile calls, so they get the single-pass
    /// register allocator: a third of the compile time, and the spills it adds are nothing
    /// next to a tile's work. The others, which compute, get the backtracking one.
    fn compile(kernels: &[KernelSpec], opts: &JitOptions) -> Result<Kernels> {
        let allocator = |spec: &KernelSpec| match spec {
            KernelSpec::TiledConv(_) | KernelSpec::WinogradIn(_) | KernelSpec::WinogradOut(_) => Regalloc::SinglePass,
            _ => Regalloc::Backtracking,
        };
        let mut modules = Vec::new();
        let mut fns: Vec<Option<KernelFn>> = vec![None; kernels.len()];
        let mut code_bytes = 0;
        for regalloc in [Regalloc::Backtracking, Regalloc::SinglePass] {
            let mine: Vec<usize> = (0..kernels.len()).filter(|&i| allocator(&kernels[i]) == regalloc).collect();
            if mine.is_empty() {
                continue;
            }
            let isa = target::codegen::host_isa_with(opts.verify, regalloc)?;
            let mut module = JITModule::new(JITBuilder::with_isa(isa, default_libcall_names()));
            let mut fbc = FunctionBuilderContext::new();
            let mut ids = Vec::with_capacity(mine.len());
            for &i in &mine {
                let spec = &kernels[i];
                let mut ctx = target::codegen::function(spec, module.isa(), i as u32, &mut fbc);
                let id = module
                    .declare_function(&format!("k{i}"), Linkage::Local, &ctx.func.signature)
                    .map_err(|e| Error::Jit(e.to_string()))?;
                module.define_function(id, &mut ctx).map_err(|e| Error::Jit(format!("kernel {spec:?}: {e:?}")))?;
                code_bytes += ctx.compiled_code().map_or(0, |c| c.code_buffer().len());
                ids.push(id);
            }
            module.finalize_definitions().map_err(|e| Error::Jit(e.to_string()))?;
            for (&i, &id) in mine.iter().zip(&ids) {
                let p = module.get_finalized_function(id);
                // SAFETY: every kernel was declared with `kernel::signature`, which is
                // this type in the host's default calling convention.
                fns[i] = Some(unsafe { std::mem::transmute::<*const u8, KernelFn>(p) });
            }
            modules.push(module);
        }
        let fns = fns
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Error::Jit("a kernel was not compiled".into()))?;
        Ok(Kernels { modules, fns, code_bytes, done: Instant::now() })
    }
}

/// The guard pattern: a quiet NaN no kernel produces by chance.
const GUARD_BITS: u32 = 0x7fc0_dead;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Graph, Op, Shape};

    /// A kernel given an output pointer 64 bytes too far writes into the guard after its
    /// buffer: the bounds check names it.
    #[test]
    fn guard_zones_catch_an_out_of_bounds_write() {
        let mut g = Graph::new("t");
        let x = g.add(Op::Input, Shape(vec![1, 16, 4, 4]), Default::default(), "x", &[]);
        let y = g.add(Op::Relu, Shape(vec![1, 16, 4, 4]), Default::default(), "y", &[x]);
        g.inputs.push(x);
        g.outputs.push(("y".into(), y));
        let w = Weights::default();
        let opts = JitOptions {
            threads: 1,
            verify: true,
            tier: target::TierChoice::Portable,
            precision: Default::default(),
            check_bounds: true,
        };
        let input = vec![1.0f32; 256];
        let good = Model::compile(&g, &w, &opts).expect("compile");
        assert_eq!(good.run(&input).expect("in bounds")[0].data, input);
        let mut plan = plan::plan_checked(&g, &w, target::Tier::Portable, Default::default(), true).expect("plan");
        assert!(!plan.guards.is_empty());
        for s in &mut plan.steps {
            if let Step::Kernel { args, .. } = s
                && let Some(Arg::Arena(o)) = args.first_mut()
            {
                *o = *o + 64;
            }
        }
        let bad = Model::from_plan(plan, target::Tier::Portable, &opts, Instant::now()).expect("compile");
        let err = bad.run(&input).expect_err("out of bounds").to_string();
        assert!(err.contains("bounds check") && err.contains("Relu"), "{err}");
    }
}
