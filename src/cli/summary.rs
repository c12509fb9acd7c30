//! `incc summary`: the per-layer table, or the same as JSON or YAML.

use super::print::to_json;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Copy, Clone, ValueEnum)]
enum SummaryFormat {
    Table,
    Json,
    Yaml,
}

#[derive(Args)]
pub struct Summary {
    /// The .incep file.
    file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: SummaryFormat,
}

impl Summary {
    pub fn run(self) -> anyhow::Result<()> {
        let g = incc::frontend::compile_file(&self.file)?;
        let s = incc::summary::Summary::of(&g);
        let text = match self.format {
            SummaryFormat::Table => s.table(),
            SummaryFormat::Json => to_json(&s)? + "\n",
            SummaryFormat::Yaml => serde_yaml_ng::to_string(&s)?,
        };
        print!("{text}");
        Ok(())
    }
}
