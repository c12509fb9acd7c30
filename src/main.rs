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

#[derive(Copy, Clone, ValueEnum, PartialEq, Eq)]
enum Engine {
    /// The plain interpreter: the oracle.
    Reference,
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
    /// Run a network on one input and print or save its outputs.
    Run {
        /// The .incep file.
        file: PathBuf,
        /// Weights (a PyTorch state_dict saved with safetensors); default: seeded initialisation.
        #[arg(long)]
        weights: Option<PathBuf>,
        /// Input tensor (.npy, f32, shape CxHxW or 1xCxHxW); default: seeded random input.
        #[arg(long)]
        input: Option<PathBuf>,
        /// Write the first output here (.npy); further outputs go to `<stem>_<name>.npy` beside it.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Which engine computes.
        #[arg(long, value_enum, default_value = "reference")]
        engine: Engine,
        /// Worker threads (default: all cores).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
        threads: Option<u32>,
        /// Seed of the default weights and input.
        #[arg(long, default_value_t = 0)]
        seed: u64,
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

/// `out.npy` + `aux1` -> `out_aux1.npy`.
fn sibling(path: &std::path::Path, name: &str) -> PathBuf {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("output");
    path.with_file_name(format!("{stem}_{name}.npy"))
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
        Cmd::Run { file, weights, input, output, engine, threads: _, seed } => {
            let g = incc::frontend::compile_file(&file)?;
            let w = match &weights {
                Some(p) => incc::weights::Weights::load_safetensors(p, &g)?,
                None => incc::weights::Weights::init(&g, seed),
            };
            let in_id = g.inputs.first().copied().ok_or_else(|| Error::Invalid("the network has no input".into()))?;
            let in_shape = &g.node(in_id).shape;
            let x = match &input {
                Some(p) => {
                    let (shape, data) = incc::npy::read_npy(p)?;
                    let ok = shape == in_shape.0 || shape[..] == in_shape.0[1..];
                    if !ok {
                        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
                        return Err(Error::Npy {
                            path: p.display().to_string(),
                            message: format!("has shape {}, but the network's input is {in_shape}", dims.join("x")),
                        });
                    }
                    data
                }
                None => incc::weights::random_input(in_shape.numel(), seed),
            };
            let outs = match engine {
                Engine::Reference => incc::reference::run(&g, &w, &[&x])?,
            };
            if let Some(path) = &output {
                for (i, (name, shape, data)) in outs.iter().enumerate() {
                    let p = if i == 0 { path.clone() } else { sibling(path, name) };
                    incc::npy::write_npy(&p, &shape.0, data)?;
                    eprintln!("wrote output `{name}` ({shape}) to {}", p.display());
                }
            } else {
                for (name, shape, data) in &outs {
                    println!("output {name}: {shape}");
                    if shape.rank() == 2 && data.len() >= 2 {
                        let mut idx: Vec<usize> = (0..data.len()).collect();
                        idx.sort_by(|&a, &b| data[b].total_cmp(&data[a]));
                        for (rank, &i) in idx.iter().take(5).enumerate() {
                            println!("  top-{}: index {i:>5}  score {:.6}", rank + 1, data[i]);
                        }
                    } else {
                        let head: Vec<String> = data.iter().take(8).map(|v| format!("{v:.6}")).collect();
                        println!("  first values: {}", head.join(" "));
                    }
                }
            }
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
