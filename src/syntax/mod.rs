//! Surface syntax: the pest grammar `grammar/incep.pest` and the AST it is parsed into.

pub mod ast;
pub mod parse;

pub use parse::parse;
