//! Cranelift code generation: every kernel of a [`Plan`](crate::runtime::plan::Plan) as
//! native code, with shapes, strides and loop bounds as compile-time constants.
//!
//! - [`kernel`]: the closed set of kernels ([`kernel::KernelSpec`]) and their CLIF.
//! - [`conv`]: weight packing and the register-blocked f32x4 convolution micro-kernel,
//!   behind the [`conv::ConvProvider`] interface.
//! - [`emit`]: loop and memory helpers.
//!
//! Kernels are built at `opt_level=none`: they are scheduled by hand, and Cranelift's
//! optimiser hoists loads and spills accumulators (see `cranelift-simd.md`).

pub mod conv;
pub mod emit;
pub mod kernel;
pub mod wide;
pub mod wide_conv;
pub mod wide_transform;
pub mod winograd;

use crate::error::{Error, Result};
use cranelift_codegen::isa::{OwnedTargetIsa, TargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::{Context, control::ControlPlane, ir::UserFuncName};
use cranelift_frontend::FunctionBuilderContext;
use kernel::KernelSpec;

/// Which kernels compute the convolutions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tier {
    /// Cranelift's f32x4 kernels: any CPU Cranelift supports.
    Portable,
    /// AVX-512 micro-tiles ([`wide`]) called from Cranelift loops: x86-64 with AVX-512F.
    Wide,
    /// The same with AVX2 micro-tiles ([`wide::Isa::Avx2`]): x86-64 with AVX2 and FMA.
    Avx2,
}

impl Tier {
    /// The ISA of the micro-tiles, or `None` for the portable tier.
    pub fn isa(self) -> Option<wide::Isa> {
        match self {
            Tier::Portable => None,
            Tier::Wide => Some(wide::Isa::Avx512),
            Tier::Avx2 => Some(wide::Isa::Avx2),
        }
    }

    /// The name `--tier` and profiles use: `portable`, `wide` or `avx2`.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Portable => "portable",
            Tier::Wide => "wide",
            Tier::Avx2 => "avx2",
        }
    }
}

/// The tier asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TierChoice {
    /// The fastest this CPU runs (CPUID at run time).
    #[default]
    Auto,
    /// Always [`Tier::Portable`].
    Portable,
    /// [`Tier::Wide`], or an error on a CPU without AVX-512F.
    Wide,
    /// [`Tier::Avx2`], or an error on a CPU without AVX2 and FMA.
    Avx2,
}

impl TierChoice {
    /// Every explicit tier this CPU runs: portable always, then AVX-512 and AVX2 when present
    /// (what a test that covers every tier iterates over).
    pub fn runnable() -> Vec<TierChoice> {
        let mut t = vec![TierChoice::Portable];
        if wide::Isa::Avx512.available() {
            t.push(TierChoice::Wide);
        }
        if wide::Isa::Avx2.available() {
            t.push(TierChoice::Avx2);
        }
        t
    }

    /// The tier for this CPU: `Auto` is AVX-512 tiles, else AVX2 tiles, else portable.
    pub fn resolve(self) -> Result<Tier> {
        let tier = match self {
            TierChoice::Portable => return Ok(Tier::Portable),
            TierChoice::Auto => {
                return Ok(match wide::Isa::best() {
                    Some(wide::Isa::Avx512) => Tier::Wide,
                    Some(wide::Isa::Avx2) => Tier::Avx2,
                    None => Tier::Portable,
                });
            }
            TierChoice::Wide => Tier::Wide,
            TierChoice::Avx2 => Tier::Avx2,
        };
        match tier.isa() {
            Some(isa) if !isa.available() => {
                Err(Error::Jit(format!("the {} tier needs an x86-64 CPU with {}", tier.name(), isa.needs())))
            }
            _ => Ok(tier),
        }
    }
}

/// Options of [`crate::runtime::Model::compile`].
#[derive(Clone, Debug)]
pub struct JitOptions {
    /// Threads that run each large kernel (`0`: all available cores).
    pub threads: usize,
    /// Run Cranelift's IR verifier on every function (slower compiles; on in tests).
    pub verify: bool,
    /// Kernel tier.
    pub tier: TierChoice,
    /// Debug mode: every buffer sits between guard zones, checked after every kernel;
    /// a kernel that wrote out of bounds makes `run` fail, naming it.
    pub check_bounds: bool,
}

// Not derivable in debug builds, where the verifier defaults to on.
#[allow(clippy::derivable_impls)]
impl Default for JitOptions {
    fn default() -> Self {
        JitOptions { threads: 0, verify: cfg!(debug_assertions), tier: TierChoice::Auto, check_bounds: false }
    }
}

/// Cranelift's register allocator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Regalloc {
    /// Backtracking, with live-range splitting: the better code (the default).
    Backtracking,
    /// One pass: three times faster to compile, more spills. For code whose speed does not
    /// matter, such as the wide convolutions' loops around their tile calls.
    SinglePass,
}

fn flags(verify: bool, regalloc: Regalloc) -> Result<settings::Flags> {
    let mut fb = settings::builder();
    let set = |fb: &mut settings::Builder, k: &str, v: &str| {
        fb.set(k, v).map_err(|e| Error::Jit(format!("cranelift setting {k}={v}: {e}")))
    };
    set(&mut fb, "opt_level", "none")?;
    if regalloc == Regalloc::SinglePass {
        set(&mut fb, "regalloc_algorithm", "single_pass")?;
    }
    set(&mut fb, "enable_verifier", if verify { "true" } else { "false" })?;
    set(&mut fb, "is_pic", "false")?;
    set(&mut fb, "use_colocated_libcalls", "false")?;
    Ok(settings::Flags::new(fb))
}

/// The host ISA with every CPU feature it has. On x86-64, refuses a CPU without FMA
/// (Cranelift would lower each f32x4 `fma` to four library calls).
pub fn host_isa(verify: bool) -> Result<OwnedTargetIsa> {
    host_isa_with(verify, Regalloc::Backtracking)
}

/// [`host_isa`] with the register allocator `regalloc`.
pub fn host_isa_with(verify: bool, regalloc: Regalloc) -> Result<OwnedTargetIsa> {
    let builder = cranelift_native::builder().map_err(|e| Error::Jit(format!("unsupported host: {e}")))?;
    let isa = builder.finish(flags(verify, regalloc)?).map_err(|e| Error::Jit(format!("host ISA: {e}")))?;
    if isa.name() == "x64" {
        let fma = isa.isa_flags().iter().any(|f| f.name == "has_fma" && f.as_bool() == Some(true));
        if !fma {
            return Err(Error::Jit("this x86-64 CPU lacks FMA; incc's kernels need it".into()));
        }
    }
    Ok(isa)
}

/// An ISA by target triple name (`"aarch64"`, `"x86_64"`), for cross compilation.
pub fn isa_by_name(name: &str, verify: bool) -> Result<OwnedTargetIsa> {
    let b = cranelift_codegen::isa::lookup_by_name(name).map_err(|e| Error::Jit(format!("target {name}: {e}")))?;
    b.finish(flags(verify, Regalloc::Backtracking)?).map_err(|e| Error::Jit(format!("target {name}: {e}")))
}

/// Builds the CLIF function of `spec` for `isa` (named `u0:index`).
pub fn function(spec: &KernelSpec, isa: &dyn TargetIsa, index: u32, fbc: &mut FunctionBuilderContext) -> Context {
    let mut ctx = Context::new();
    ctx.func.signature = kernel::signature(isa.default_call_conv());
    ctx.func.name = UserFuncName::user(0, index);
    kernel::build(spec, &mut ctx.func, fbc, isa.default_call_conv(), isa.frontend_config());
    ctx
}

/// Compiles `kernels` for `isa` without running them (cross compilation check); returns
/// the total code size in bytes.
pub fn compile_for(isa: &dyn TargetIsa, kernels: &[KernelSpec]) -> Result<usize> {
    let mut fbc = FunctionBuilderContext::new();
    let mut total = 0;
    for (i, k) in kernels.iter().enumerate() {
        let mut ctx = function(k, isa, i as u32, &mut fbc);
        let code = ctx
            .compile(isa, &mut ControlPlane::default())
            .map_err(|e| Error::Jit(format!("kernel {k:?}: {:?}", e.inner)))?;
        total += code.code_buffer().len();
    }
    Ok(total)
}
