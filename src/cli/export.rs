//! `incc export`: the network and its weights as an ONNX model.

use anyhow::Context;
use clap::Args;
use incc::Compiler;
use incc::profile::Profile;
use std::path::PathBuf;

#[derive(Args)]
pub struct Export {
    /// The .incep file.
    file: PathBuf,
    /// Where to write the ONNX model.
    #[arg(long, value_name = "OUT.onnx")]
    onnx: PathBuf,
    /// A YAML compile profile (its weights, seed, outputs, opt_level and disable_passes; the
    /// flags win).
    #[arg(long, value_name = "FILE")]
    profile_file: Option<PathBuf>,
    /// Weights (a PyTorch state_dict saved with safetensors); default: seeded initialisation.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Seed of the default weights [default: 0].
    #[arg(long)]
    seed: Option<u64>,
    /// The outputs to keep, comma-separated (default: all but auxiliary classifiers `aux*`).
    #[arg(long, value_delimiter = ',')]
    outputs: Option<Vec<String>>,
    /// Optimisation level of the exported graph: 0 (the network as written), 1, 2 [default: 0].
    #[arg(short = 'O', value_name = "LEVEL", value_parser = clap::value_parser!(u8).range(0..=2))]
    opt: Option<u8>,
    /// A pass not to run (repeatable).
    #[arg(long = "disable-pass", value_name = "NAME")]
    disable_pass: Vec<String>,
}

impl Export {
    pub fn run(self) -> anyhow::Result<()> {
        let file = match &self.profile_file {
            Some(p) => Profile::load(p).context("reading the compile profile")?,
            None => Profile::default(),
        };
        let flags = Profile {
            opt_level: self.opt,
            disable_passes: self.disable_pass,
            outputs: self.outputs,
            seed: self.seed,
            weights: self.weights,
            ..Profile::default()
        };
        let mut profile = file.overlay(flags);
        for (key, given) in [
            ("threads", profile.threads.is_some()),
            ("tier", profile.tier.is_some()),
            ("precision", profile.precision.is_some()),
        ] {
            if given {
                eprintln!("warning: the profile's {key} has no effect on an export (ONNX is f32, for any machine)");
            }
        }
        // An export is the network as written unless asked otherwise.
        profile.opt_level = Some(profile.opt_level.unwrap_or(0));
        let level = incc::driver::parse_level(&profile.opt_level.unwrap_or(0).to_string())?;
        if level == incc::passes::Level::O0 && !profile.disable_passes.is_empty() {
            eprintln!("warning: --disable-pass has no effect at -O0 (no pass runs)");
        }
        let c: Compiler = profile.compiler()?;
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
