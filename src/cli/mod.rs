//! The `incc` command line: one file per command, each an [`Args`](clap::Args) struct with
//! a `run`; [`args`] holds the options every compiling command shares, [`print`] the
//! reports and tables, [`input`] the input tensors, [`progress`] the bar of `incc bench`.
//! Only argument parsing and printing live here; what a library user would also want
//! (compiling, choosing weights, writing files atomically) is in the library.
//!
//! Errors: the library's typed [`incc::Error`] names the file and the problem; the commands
//! return `anyhow` errors that add what the command was doing when it matters
//! (`writing the ONNX model: out/x.onnx: No such file or directory`). No context goes on
//! reading a source: its diagnostics print as they are.

mod args;
mod bench;
mod check;
mod compile;
mod emit;
mod export;
mod graph;
mod input;
mod keys;
mod print;
mod progress;
mod run;
mod summary;

use clap::{Parser, Subcommand};

pub use print::print_error;

#[derive(Parser)]
#[command(name = "incc", version, about = "Compile Inception-family network descriptions (.incep) to native code")]
pub struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Check a file: exit 0, or print every error and exit 1.
    Check(check::Check),
    /// Print a per-layer table (name, op, output shape, params, MACs) and totals.
    Summary(summary::Summary),
    /// Compile to native code and report each stage's time and what it produced.
    Compile(compile::Compile),
    /// Draw the network: blocks as clusters, branches side by side, shapes on the edges.
    Graph(graph::Graph),
    /// Run a network on one input and print or save its outputs.
    Run(run::Run),
    /// Time the compiled network: median, min and max latency and GFLOP/s.
    Bench(bench::Bench),
    /// List the weight tensors the network expects (state-dict key and shape).
    Keys(keys::Keys),
    /// Write the network and its weights as an ONNX model (opset 17).
    Export(export::Export),
    /// Print an intermediate form of the network.
    Emit(emit::EmitCmd),
}

impl Cli {
    /// Runs the command.
    pub fn run(self) -> anyhow::Result<()> {
        match self.cmd {
            Cmd::Check(c) => c.run(),
            Cmd::Summary(c) => c.run(),
            Cmd::Compile(c) => c.run(),
            Cmd::Graph(c) => c.run(),
            Cmd::Run(c) => c.run(),
            Cmd::Bench(c) => c.run(),
            Cmd::Keys(c) => c.run(),
            Cmd::Export(c) => c.run(),
            Cmd::Emit(c) => c.run(),
        }
    }
}
