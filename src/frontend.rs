//! The front end as one call: source text to a verified IR graph.

use crate::diag::{Diagnostics, SourceMap};
use crate::error::{Error, Result};
use crate::ir::Graph;
use std::path::Path;

/// Largest `.incep` file accepted (bytes).
pub const MAX_SOURCE_BYTES: u64 = 16 << 20;

/// Parses and lowers `text`, reported as file `name`.
pub fn compile_str(name: &str, text: &str) -> Result<Graph> {
    compile_str_timed(name, text).map(|t| t.graph)
}

/// A graph with the time its front-end stages took.
pub struct Timed {
    /// The lowered graph.
    pub graph: Graph,
    /// Reading (files only) and parsing, in milliseconds.
    pub parse_ms: f64,
    /// Lowering, in milliseconds.
    pub lower_ms: f64,
}

/// [`compile_str`], timing each stage.
pub fn compile_str_timed(name: &str, text: &str) -> Result<Timed> {
    let t0 = std::time::Instant::now();
    let mut sources = SourceMap::new();
    let file = sources.add(name, text);
    let ast = crate::syntax::parse(file, text)
        .map_err(|diags| Error::Source(Diagnostics { diags, sources: sources.clone() }))?;
    let t1 = std::time::Instant::now();
    let stem = Path::new(name).file_stem().and_then(|s| s.to_str()).unwrap_or("network");
    let graph = crate::lower::lower(&ast, stem).map_err(|diags| Error::Source(Diagnostics { diags, sources }))?;
    let ms = |a: std::time::Instant, b: std::time::Instant| (b - a).as_secs_f64() * 1e3;
    Ok(Timed { graph, parse_ms: ms(t0, t1), lower_ms: ms(t1, std::time::Instant::now()) })
}

/// Reads, parses and lowers the file at `path`.
pub fn compile_file(path: impl AsRef<Path>) -> Result<Graph> {
    compile_file_timed(path).map(|t| t.graph)
}

/// [`compile_file`], timing each stage (reading counts as parsing).
pub fn compile_file_timed(path: impl AsRef<Path>) -> Result<Timed> {
    let t0 = std::time::Instant::now();
    let path = path.as_ref();
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Err(Error::io(path, "is a directory, not an .incep file"));
    }
    if meta.len() > MAX_SOURCE_BYTES {
        return Err(Error::io(
            path,
            format!("is {} bytes; the limit for a source file is {MAX_SOURCE_BYTES}", meta.len()),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let off = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..off].iter().filter(|&&b| b == b'\n').count() + 1;
        Error::io(path, format!("is not valid UTF-8 (byte {off}, line {line})"))
    })?;
    let mut t = compile_str_timed(&path.display().to_string(), &text)?;
    t.parse_ms += t0.elapsed().as_secs_f64() * 1e3 - t.parse_ms - t.lower_ms;
    Ok(t)
}
