//! The compiled network: execution plan, threads and the [`Model`] that runs it.

pub mod mem;
pub mod model;
pub mod pack;
pub mod plan;
pub mod pool;

pub use model::Model;
