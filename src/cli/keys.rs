//! `incc keys`: the state-dict keys and shapes a weights file must hold.

use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct Keys {
    /// The .incep file.
    file: PathBuf,
}

impl Keys {
    pub fn run(self) -> anyhow::Result<()> {
        let g = incc::frontend::compile_file(&self.file)?;
        for p in g.params() {
            let dims: Vec<String> = p.shape.iter().map(|d| d.to_string()).collect();
            println!("{} {}", p.key, dims.join("x"));
        }
        Ok(())
    }
}
