//! Writing a network in other formats: ONNX ([`onnx`]), encoded with the `prost` messages of
//! [`proto`].
//!
//! The exporters take an IR graph and its weights as they are. `incc export` hands them the
//! lowered graph with only the requested outputs kept ([`crate::Compiler::select_outputs`]),
//! so the file holds the network as written, with its layers and state-dict keys; an
//! optimised graph ([`crate::Compiler::optimize`]) exports as well, fused forms included.

pub mod onnx;
pub mod proto;
