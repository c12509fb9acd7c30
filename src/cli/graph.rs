//! `incc graph`: the network drawn as `dot` text, SVG or an HTML page.

use super::print::write_out;
use anyhow::Context;
use clap::{Args, ValueEnum};
use incc::Compiler;
use std::path::PathBuf;

#[derive(Copy, Clone, ValueEnum, PartialEq, Eq)]
enum GraphFormat {
    /// Graphviz's dot language (text).
    Dot,
    /// SVG drawn by Graphviz's `dot -Tsvg` (needs Graphviz installed).
    Svg,
    /// A self-contained HTML page with the SVG at every depth, zoom and pan.
    Html,
}

#[derive(Args)]
pub struct Graph {
    /// The .incep file.
    file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "dot")]
    format: GraphFormat,
    /// Draw each scope N levels down as one box (1: every top-level block is one box).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    depth: Option<u32>,
    /// Write to this file instead of standard output.
    #[arg(short = 'o', long, value_name = "OUT")]
    output: Option<PathBuf>,
    /// Draw the graph after the optimiser at this level (0: the network as written).
    #[arg(short = 'O', value_name = "LEVEL", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    opt: u8,
}

impl Graph {
    pub fn run(self) -> anyhow::Result<()> {
        let g = incc::frontend::compile_file(&self.file)?;
        let g = if self.opt == 0 {
            g
        } else {
            let level = incc::driver::parse_level(&self.opt.to_string())?;
            Compiler::new().opt_level(level).optimize(g)?.0
        };
        let opts = incc::graphviz::Options { depth: self.depth.map(|d| d as usize) };
        let text = match self.format {
            GraphFormat::Dot => incc::graphviz::to_dot(&g, &opts),
            GraphFormat::Svg => incc::graphviz::render_svg(&incc::graphviz::to_dot(&g, &opts))?,
            GraphFormat::Html => incc::graphviz::to_html(&g, &opts)?,
        };
        write_out(self.output.as_deref(), &text).context("writing the drawing")
    }
}
