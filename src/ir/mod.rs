//! The intermediate representation: a typed graph of operations with static shapes.

pub mod graph;
pub mod infer;
pub mod layout;
pub mod op;
pub mod output;
pub mod precision;
pub mod preprocess;
pub mod print;
pub mod shape;
pub mod verify;

pub use graph::{Graph, Node, NodeId, Scope, ScopeId};
pub use layout::Layout;
pub use op::{BatchNorm, Conv2d, Epilogue, Linear, Lrn, Op, ParamRole, ParamSpec, Pool, PoolKind};
pub use output::{Output, Outputs};
pub use precision::Precision;
pub use shape::{Pad, Shape};
