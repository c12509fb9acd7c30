//! `incc emit` (and `incc compile --emit`): the IR before or after the optimiser.

use super::args::CompileArgs;
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

#[derive(Copy, Clone, ValueEnum, PartialEq, Eq)]
pub enum Emit {
    /// The IR after lowering.
    Ir,
    /// The IR after the optimiser.
    OptIr,
}

#[derive(Copy, Clone, ValueEnum, PartialEq, Eq)]
pub enum EmitFormat {
    /// One line per node, as `incc emit` prints it.
    Text,
    /// A YAML document (nodes with op attributes, operands, shapes; outputs).
    Yaml,
}

#[derive(Args)]
pub struct EmitCmd {
    /// The .incep file.
    file: PathBuf,
    /// What to print.
    #[arg(long, value_enum, default_value = "ir")]
    what: Emit,
    #[command(flatten)]
    args: CompileArgs,
}

impl EmitCmd {
    pub fn run(self) -> anyhow::Result<()> {
        emit(&self.file, self.what, EmitFormat::Text, &self.args)
    }
}

/// Prints `what` of `file` in `format`, optimised as `args` say.
pub fn emit(file: &Path, what: Emit, format: EmitFormat, args: &CompileArgs) -> anyhow::Result<()> {
    let g = incc::frontend::compile_file(file)?;
    let g = match what {
        Emit::Ir => g,
        Emit::OptIr => args.compiler()?.optimize(g)?.0,
    };
    match format {
        EmitFormat::Text => print!("{}", incc::ir::print::print(&g)),
        EmitFormat::Yaml => print!("{}", incc::ir::print::to_yaml(&g)?),
    }
    Ok(())
}
