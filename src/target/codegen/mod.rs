//! Cranelift code generation: every kernel of a [`Plan`](crate::target::plan::Plan) as
//! native code, with shapes, strides and loop bounds as compile-time constants.
//!
//! - [`kernel`]: the closed set of kernels ([`kernel::KernelSpec`]) and their CLIF.
//!
//! Kernels are built at `opt_level=none`: they are scheduled by hand, and Cranelift's
//! optimiser hoists loads and spills accumulators (see `cranelift-simd.md`).

pub mod bf16;
pub mod kernel;

use crate::error::{Error, Result};
use cranelift_codegen::isa::{OwnedTargetIsa, TargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::{Context, control::ControlPlane, ir::UserFuncName};
use cranelift_frontend::FunctionBuilderContext;
use kernel::KernelSpec;

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
