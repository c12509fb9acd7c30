//! Ahead-of-time compilation: a network as a relocatable object with a C ABI
//! (`incc compile FILE -o model.o`).
//!
//! ```text
//!   FILE.incep --frontend, passes--> Graph --plan--> Plan --+-- target::codegen::function --> P_k0..P_kN (local)
//!                                                           +-- entry ----------> P_create, P_run, P_destroy
//!                                                           +-- params ---------> P_params (rodata, 64-aligned)
//!   model.o (cranelift-object, host ISA, PIC)   model.h (header)   [model.params]
//! ```
//!
//! The kernels are exactly the JIT's CLIF ([`crate::target::codegen::function`]) compiled with the JIT's
//! settings plus `is_pic` (so the object links into position-independent executables and
//! shared libraries). `entry` generates the entry points: `P_run` performs the plan's
//! steps in order on the calling thread, each kernel on all its items, the way the JIT runs
//! with one thread, so the outputs are the same bits. The object imports only
//! `posix_memalign`, `memset`, `free`, `fopen`, `fread`, `fclose` (libc) and, when the
//! network has LRN or softmax, `powf` / `expf` (libm): `cc app.c model.o -lm` links it.
//!
//! Weights: the object embeds the packed parameters of the network's seeded
//! initialisation (`P_create(NULL)`). Real weights are a params file ([`params`]) that
//! `--weights W.safetensors` writes beside the object; the C side reads that simple format,
//! not safetensors.
//!
//! Several inputs (outputs) are concatenated, in the plan's order, into the one input
//! (output) buffer; the header gives each one's offset, length and shape.

mod entry;
pub mod header;
pub mod params;

use crate::driver::Compiler;
use crate::error::{Error, Result};
use crate::ir::Graph;
use crate::target;
use crate::target::plan::{self, Plan};
use crate::weights::Weights;
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::FunctionBuilderContext;
use cranelift_module::{DataDescription, Linkage, Module, default_libcall_names};
use cranelift_object::{ObjectBuilder, ObjectModule};
use header::Tensor;
use serde::Serialize;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What [`compile_file`] writes and how.
#[derive(Clone, Debug)]
pub struct AotOptions {
    /// The object file; the header and params file go beside it (`out/m.o` -> `out/m.h`,
    /// `out/m.params`).
    pub object: PathBuf,
    /// The symbol prefix `P` (a C identifier); default: the object's file stem, made into one.
    pub name: Option<String>,
    /// Safetensors weights to write as the params file (the object still embeds the
    /// compiler's weights).
    pub weights: Option<PathBuf>,
    /// Run Cranelift's verifier on every function.
    pub verify: bool,
}

/// The object, the header and what they contain.
pub struct Artifacts {
    /// The relocatable object file's bytes.
    pub object: Vec<u8>,
    /// The C header.
    pub header: String,
    /// Machine code bytes (kernels and entry points).
    pub code_bytes: usize,
}

/// What [`compile_file`] produced (`incc compile -o`).
#[derive(Clone, Debug, Serialize)]
pub struct AotReport {
    /// The network.
    pub network: String,
    /// The symbol prefix.
    pub name: String,
    /// Files written: object, header, and the params file if any.
    pub files: Vec<String>,
    /// Distinct kernels in the object.
    pub kernels: usize,
    /// Steps `P_run` performs.
    pub steps: usize,
    /// Machine code bytes.
    pub code_bytes: usize,
    /// Bytes of the object file.
    pub object_bytes: usize,
    /// Bytes of packed parameters (embedded, and in the params file).
    pub param_bytes: usize,
    /// Bytes of one instance's activation arena.
    pub arena_bytes: usize,
    /// Floats `P_run` takes.
    pub input_len: usize,
    /// Floats `P_run` returns.
    pub output_len: usize,
    /// Everything, in milliseconds.
    pub total_ms: f64,
}

/// The plan an object is built from. Objects use the portable kernel tier: they may run on
/// another machine than the compiler's. Their input conversion writes the blocked layout
/// only, so a compact (`nhwc`) input is stored `nchw16c` instead.
pub fn plan(graph: &Graph, weights: &Weights) -> Result<Plan> {
    let mut g = graph.clone();
    for id in g.node_ids() {
        if g.node(id).layout == crate::ir::Layout::Nhwc {
            g.node_mut(id).layout = crate::ir::Layout::Nchw16c;
        }
    }
    plan::plan(&g, weights, crate::target::Tier::Portable)
}

/// The host ISA with the JIT's settings, position-independent.
fn object_isa(verify: bool) -> Result<OwnedTargetIsa> {
    let host = target::codegen::host_isa(verify)?;
    let err = |what: &str, e: &dyn std::fmt::Display| Error::Jit(format!("object target: {what}: {e}"));
    let mut shared = settings::builder();
    for v in host.flags().iter() {
        shared.set(v.name, &v.value_string()).map_err(|e| err(v.name, &e))?;
    }
    shared.set("is_pic", "true").map_err(|e| err("is_pic", &e))?;
    let mut isa = cranelift_codegen::isa::lookup(host.triple().clone()).map_err(|e| err("lookup", &e))?;
    for v in host.isa_flags() {
        isa.set(v.name, &v.value_string()).map_err(|e| err(v.name, &e))?;
    }
    let isa = isa.finish(settings::Flags::new(shared)).map_err(|e| err("finish", &e))?;
    if isa.endianness() != cranelift_codegen::ir::Endianness::Little {
        return Err(Error::Jit("objects need a little-endian target (params files are little-endian)".into()));
    }
    if isa.pointer_bytes() != 8 {
        return Err(Error::Jit("objects need a 64-bit target".into()));
    }
    Ok(isa)
}

/// Tensors with their offsets in the concatenated C buffer.
fn tensors(list: &[(String, crate::ir::Shape, plan::Slot)]) -> Result<Vec<Tensor>> {
    let mut at = 0;
    let mut out = Vec::new();
    for (name, shape, slot) in list {
        if slot.c * slot.pix != shape.numel() {
            return Err(Error::Invalid(format!("tensor `{name}` ({shape}) has a batch dimension other than 1")));
        }
        out.push(Tensor { name: name.clone(), shape: shape.clone(), offset: at });
        at += shape.numel();
    }
    Ok(out)
}

/// Builds the object and header of `plan` with symbol prefix `prefix`; `source` and
/// `network` only go into the header's comment.
pub fn build(plan: &Plan, prefix: &str, source: &str, network: &str, verify: bool) -> Result<Artifacts> {
    if !header::is_c_identifier(prefix) {
        return Err(Error::Invalid(format!(
            "`{prefix}` is not a C identifier (letters, digits, `_`; no leading digit)"
        )));
    }
    let isa = object_isa(verify)?;
    let builder = ObjectBuilder::new(isa, format!("{prefix}.o"), default_libcall_names())
        .map_err(|e| Error::Jit(format!("object: {e}")))?;
    let mut module = ObjectModule::new(builder);
    let jit_err = |e: cranelift_module::ModuleError| Error::Jit(format!("object: {e:?}"));

    // Kernels: the JIT's functions, local to the object.
    let mut fbc = FunctionBuilderContext::new();
    let mut kernels = Vec::with_capacity(plan.kernels.len());
    let mut code_bytes = 0;
    for (i, spec) in plan.kernels.iter().enumerate() {
        let mut ctx = target::codegen::function(spec, module.isa(), i as u32, &mut fbc);
        let id =
            module.declare_function(&format!("{prefix}_k{i}"), Linkage::Local, &ctx.func.signature).map_err(jit_err)?;
        module.define_function(id, &mut ctx).map_err(|e| Error::Jit(format!("kernel {spec:?}: {e:?}")))?;
        code_bytes += ctx.compiled_code().map_or(0, |c| c.code_buffer().len());
        kernels.push(id);
    }

    // The embedded parameters (at least one line, so the symbol always has a size).
    let params = module.declare_data(&format!("{prefix}_params"), Linkage::Local, false, false).map_err(jit_err)?;
    let mut bytes: Vec<u8> = plan.params.iter().flat_map(|x| x.to_le_bytes()).collect();
    bytes.resize(bytes.len().max(64).div_ceil(64) * 64, 0);
    let mut d = DataDescription::new();
    d.define(bytes.into_boxed_slice());
    d.set_align(64);
    module.define_data(params, &d).map_err(jit_err)?;

    let inputs = tensors(&plan.inputs)?;
    let outputs = tensors(&plan.outputs)?;
    if inputs.is_empty() || outputs.is_empty() {
        return Err(Error::Invalid("an object needs a network with at least one input and one output".into()));
    }
    let fingerprint = params::fingerprint(plan);
    let parts = entry::Parts {
        prefix,
        plan,
        kernels: &kernels,
        params,
        header_words: [params::magic_word(), params::version_word(), plan.params.len() as u64, fingerprint],
        inputs: &inputs,
        outputs: &outputs,
    };
    code_bytes += entry::define(&mut module, &parts)?;
    let object = module.finish().emit().map_err(|e| Error::Jit(format!("object: {e}")))?;
    let header = header::render(&header::HeaderInfo {
        prefix,
        source,
        network,
        inputs: &inputs,
        outputs: &outputs,
        params_count: plan.params.len(),
        fingerprint,
    })?;
    Ok(Artifacts { object, header, code_bytes })
}

/// `name` made into a C identifier (`inception-v4` -> `inception_v4`, `3d` -> `_3d`).
pub fn default_prefix(name: &str) -> String {
    let mut s: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    if !s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        s.insert(0, '_');
    }
    s
}

/// Writes every `(path, bytes)` atomically, or none: on an error the files already written
/// are removed (a failed compile leaves no object without its header).
fn write_all(files: &[(&Path, &[u8])]) -> Result<()> {
    for (i, (path, bytes)) in files.iter().enumerate() {
        if let Err(e) = crate::npy::write_atomic(path, |w| w.write_all(bytes)) {
            for (done, _) in &files[..i] {
                let _ = std::fs::remove_file(done);
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Compiles the `.incep` file `file` with `compiler`'s options and weights into
/// `opts.object`, its header and (with `opts.weights`) its params file.
pub fn compile_file(compiler: &Compiler, file: &Path, opts: &AotOptions) -> Result<AotReport> {
    let t0 = Instant::now();
    let object = &opts.object;
    let header_path = object.with_extension("h");
    let params_path = object.with_extension("params");
    if *object == header_path || *object == params_path {
        return Err(Error::Invalid(format!(
            "{}: the object needs another extension (the header and params file are written as .h and .params)",
            object.display()
        )));
    }
    let prefix = match &opts.name {
        Some(n) => n.clone(),
        None => default_prefix(object.file_stem().and_then(|s| s.to_str()).unwrap_or("model")),
    };
    let graph = crate::frontend::compile_file(file)?;
    let (g, w, _) = compiler.optimize(graph.clone())?;
    let plan = plan(&g, &w)?;
    let artifacts = build(&plan, &prefix, &file.display().to_string(), &g.name, opts.verify)?;
    let real = match &opts.weights {
        Some(wpath) => {
            let (g2, w2, _) = compiler.clone().weights_file(wpath).optimize(graph)?;
            let real = self::plan(&g2, &w2)?;
            if params::fingerprint(&real) != params::fingerprint(&plan) {
                return Err(Error::Invalid(format!(
                    "{}: these weights give another plan than the seeded ones (a compiler bug)",
                    wpath.display()
                )));
            }
            Some(real)
        }
        None => None,
    };
    let params_bytes = real.as_ref().map(params::encode);
    let mut out: Vec<(&Path, &[u8])> = vec![(object, &artifacts.object), (&header_path, artifacts.header.as_bytes())];
    if let Some(p) = &params_bytes {
        out.push((&params_path, p));
    }
    write_all(&out)?;
    let files = out.iter().map(|(p, _)| p.display().to_string()).collect();
    Ok(AotReport {
        network: g.name.clone(),
        name: prefix,
        files,
        kernels: plan.kernels.len(),
        steps: plan.steps.len(),
        code_bytes: artifacts.code_bytes,
        object_bytes: artifacts.object.len(),
        param_bytes: plan.params.len() * 4,
        arena_bytes: plan.arena_bytes,
        input_len: plan.inputs.iter().map(|i| i.1.numel()).sum(),
        output_len: plan.outputs.iter().map(|o| o.1.numel()).sum(),
        total_ms: t0.elapsed().as_secs_f64() * 1e3,
    })
}
