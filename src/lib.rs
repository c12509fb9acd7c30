//! incc: an architecture-description compiler for the Inception family of networks.
#![deny(missing_docs)]

pub mod diag;
pub mod driver;
pub mod error;
pub mod frontend;
pub mod ir;
pub mod lower;
pub mod npy;
pub mod passes;
pub mod reference;
pub mod summary;
pub mod syntax;
pub mod weights;

pub use driver::{CompileReport, Compiled, Compiler};
pub use error::{Error, Result};
pub mod jit;
pub mod runtime;
