//! The intermediate representation: a typed graph of operations with static shapes.

pub mod graph;
pub mod infer;
pub mod op;
pub mod print;
pub mod shape;
pub mod verify;

pub use graph::{Graph, Node, NodeId};
pub use op::{BatchNorm, Conv2d, Linear, Lrn, Op, ParamRole, ParamSpec, Pool, PoolKind};
pub use shape::{Pad, Shape};
