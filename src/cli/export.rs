//! `incc export`: the network and its weights as an ONNX model.

use anyhow::Context;
use clap::Args;
use incc::Compiler;
use std::path::PathBuf;

#[derive(Args)]
pub struct Export {
    /// The .incep file.
    file: PathBuf,
    /// Where to write the ONNX model.
    #[arg(long, value_name = "OUT.onnx")]
    onnx: PathBuf,
    /// Weights (a PyTorch state_dict saved with safetensors); default: seeded initialisation.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Seed of the default weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The outputs to keep, comma-separated (default: all but auxiliary classifiers `aux*`).
    #[arg(long, value_delimiter = ',')]
    outputs: Option<Vec<String>>,
    /// Optimisation level of the exported graph: 0 (the network as written), 1, 2.
    #[arg(short = 'O', default_value = "0", value_parser = ["0", "1", "2"])]
    opt: String,
}

impl Export {
    pub fn run(self) -> anyhow::Result<()> {
        let level = incc::driver::parse_level(&self.opt)?;
        let mut c = Compiler::new().seed(self.seed).outputs(self.outputs).opt_level(level);
        if let Some(w) = &self.weights {
            c = c.weights_file(w);
        }
        let g = incc::frontend::compile_file(&self.file)?;
        let (g, w) = if level == incc::passes::Level::O0 {
            c.select_outputs(g)?
        } else {
            let (g, w, _) = c.optimize(g)?;
            (g, w)
        };
        let s = incc::export::onnx::write(&self.onnx, &g, &w).context("writing the ONNX model")?;
        eprintln!(
            "wrote {}: ONNX opset {}, {} nodes, {} initializers, {} bytes",
            self.onnx.display(),
            incc::export::onnx::OPSET,
            s.nodes,
            s.initializers,
            incc::summary::group(s.bytes as u64)
        );
        Ok(())
    }
}
