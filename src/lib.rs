//! incc: an architecture-description compiler for the Inception family of networks.
//!
//! A network is written in the `.incep` language (see `docs/LANGUAGE.md`), parsed and
//! elaborated into a shape-checked graph ([`frontend`], [`ir`]), optimised ([`passes`]) and
//! JIT-compiled into native kernels (planning, packing, Cranelift and x86 code generation)
//! that [`exec`] runs as a [`Model`]; [`Compiler`] does it all in one call.
//! [`aot`] writes the same code as a relocatable object with a C ABI.
//! [`reference`](mod@reference) is the plain interpreter every fast path is checked against; [`export`]
//! writes the network and its weights as an ONNX model.
//! [`graphviz`] draws a network and [`profile`] reads compile options from YAML.
//!
//! The parser (`syntax`), the elaboration (`lower`), the CPU probe (`cpu`) and the whole
//! back end (`target`) are public only so that the crate's tests, benchmarks and fuzz
//! targets can reach them; they are hidden from these docs and may change at any time.
//!
//! ```
//! let src = "
//!     input 3x16x16
//!     default conv nobias bn eps 0.001 relu
//!     block mix(c) { concat { a: conv c 1x1; b: { _1: conv c 1x1; _2: conv c 3x3 pad 1 } } }
//!     stem: conv 8 3x3 stride 2 pad 1
//!     m: mix(8)
//!     gap; flatten; fc: fc 4
//!     output logits
//! ";
//! let compiled = incc::Compiler::new().seed(1).threads(1).compile_str("tiny.incep", src)?;
//! let outputs = compiled.model.run(&vec![0.5f32; 3 * 16 * 16])?;
//! let logits = &outputs["logits"];
//! assert_eq!(logits.shape.0, [1, 4]);
//!
//! // Or into buffers of the caller's, allocating nothing once warm.
//! let mut y = [0.0f32; 4];
//! compiled.model.run_into(&[&vec![0.5f32; 3 * 16 * 16]], &mut [&mut y])?;
//! assert_eq!(y[..], logits.data[..]);
//!
//! // The same network on the reference interpreter agrees.
//! let graph = incc::frontend::compile_str("tiny.incep", src)?;
//! let weights = incc::weights::Weights::init(&graph, 1);
//! let expected = incc::reference::run(&graph, &weights, &[&vec![0.5f32; 3 * 16 * 16]])?;
//! for (a, b) in logits.data.iter().zip(&expected["logits"].data) {
//!     assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0));
//! }
//! # Ok::<(), incc::Error>(())
//! ```
#![deny(missing_docs)]

pub mod aot;
#[doc(hidden)]
pub mod cpu;
pub mod diag;
pub mod driver;
pub mod error;
pub mod exec;
pub mod export;
pub mod frontend;
pub mod graphviz;
pub mod ir;
#[doc(hidden)]
pub mod lower;
pub mod npy;
pub mod passes;
pub mod preprocess;
pub mod profile;
pub mod reference;
pub mod summary;
#[doc(hidden)]
pub mod syntax;
#[doc(hidden)]
pub mod target;
pub mod weights;

pub use driver::{CompileReport, Compiled, Compiler, Tier};
pub use error::{Error, Result};
pub use exec::Model;
pub use ir::{Output, Outputs};
pub use passes::Level;
