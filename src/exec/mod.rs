//! Execution: the [`Model`] that runs a compiled [`Plan`](crate::target::plan::Plan) on a
//! persistent thread pool.

mod io;
pub mod model;
pub mod pool;

pub use model::Model;

/// Options of [`crate::exec::Model::compile`].
#[derive(Clone, Debug)]
pub struct JitOptions {
    /// Threads that run each large kernel (`0`: all available cores).
    pub threads: usize,
    /// Run Cranelift's IR verifier on every function (slower compiles; on in tests).
    pub verify: bool,
    /// Kernel tier.
    pub tier: crate::target::TierChoice,
    /// The arithmetic of convolutions and linear layers ([`crate::ir::precision`]); bf16
    /// needs the avx512 tier and AVX512_BF16, and a graph optimised for it
    /// ([`crate::passes::PassOptions::precision`]).
    pub precision: crate::ir::Precision,
    /// Debug mode: every buffer sits between guard zones, checked after every kernel;
    /// a kernel that wrote out of bounds makes `run` fail, naming it.
    pub check_bounds: bool,
}

// Not derivable in debug builds, where the verifier defaults to on.
#[allow(clippy::derivable_impls)]
impl Default for JitOptions {
    fn default() -> Self {
        JitOptions {
            threads: 0,
            verify: cfg!(debug_assertions),
            tier: crate::target::TierChoice::Auto,
            precision: Default::default(),
            check_bounds: false,
        }
    }
}
