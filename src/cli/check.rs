//! `incc check`: parse and shape-check a file.

use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct Check {
    /// The .incep file.
    file: PathBuf,
}

impl Check {
    pub fn run(self) -> anyhow::Result<()> {
        let g = incc::frontend::compile_file(&self.file)?;
        let ops = g.g.node_count() - g.inputs.len();
        eprintln!(
            "{}: ok ({ops} operations, {} parameters)",
            self.file.display(),
            incc::summary::group(g.param_count())
        );
        Ok(())
    }
}
