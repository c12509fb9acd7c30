//! The `incc` command line.

use clap::{Parser, Subcommand, ValueEnum};
use incc::Error;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "incc", version, about = "Compile Inception-family network descriptions (.incep) to native code")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Copy, Clone, ValueEnum)]
enum SummaryFormat {
    Table,
    Json,
    Yaml,
}

#[derive(Copy, Clone, ValueEnum)]
enum Emit {
    /// The IR after lowering.
    Ir,
}

#[derive(Subcommand)]
enum Cmd {
    /// Check a file: exit 0, or print every error and exit 1.
    Check {
        /// The .incep file.
        file: PathBuf,
    },
    /// Print a per-layer table (name, op, output shape, params, MACs) and totals.
    Summary {
        /// The .incep file.
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: SummaryFormat,
    },
    /// List the weight tensors the network expects (state-dict key and shape).
    Keys {
        /// The .incep file.
        file: PathBuf,
    },
    /// Print an intermediate form of the network.
    Emit {
        /// The .incep file.
        file: PathBuf,
        /// What to print.
        #[arg(long, value_enum, default_value = "ir")]
        what: Emit,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let color = std::io::stderr().is_terminal();
            match &e {
                Error::Source(d) => eprint!("{}", d.render(color)),
                other => eprintln!("error: {other}"),
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> incc::Result<()> {
    match cli.cmd {
        Cmd::Check { file } => {
            let g = incc::frontend::compile_file(&file)?;
            let ops = g.g.node_count() - g.inputs.len();
            eprintln!("{}: ok ({ops} operations, {} parameters)", file.display(), incc::summary::group(g.param_count()));
            Ok(())
        }
        Cmd::Summary { file, format } => {
            let g = incc::frontend::compile_file(&file)?;
            let s = incc::summary::Summary::of(&g);
            let text = match format {
                SummaryFormat::Table => s.table(),
                SummaryFormat::Json => serde_json::to_string_pretty(&s).map_err(|e| Error::Invalid(e.to_string()))? + "\n",
                SummaryFormat::Yaml => serde_yaml_ng::to_string(&s).map_err(|e| Error::Invalid(e.to_string()))?,
            };
            print!("{text}");
            Ok(())
        }
        Cmd::Keys { file } => {
            let g = incc::frontend::compile_file(&file)?;
            for p in g.params() {
                let dims: Vec<String> = p.shape.iter().map(|d| d.to_string()).collect();
                println!("{} {}", p.key, dims.join("x"));
            }
            Ok(())
        }
        Cmd::Emit { file, what: Emit::Ir } => {
            let g = incc::frontend::compile_file(&file)?;
            print!("{}", incc::ir::print::print(&g));
            Ok(())
        }
    }
}
