//! `incc run`: one input through the JIT or the reference interpreter; the outputs printed
//! (the top classes with `--image`) or saved as `.npy` files.

use super::args::{CompileArgs, PrecisionArg};
use super::input::run_input;
use super::print::{print_outputs, print_report};
use anyhow::Context;
use clap::{Args, ValueEnum};
use incc::Outputs;
use incc::ir::{Graph, Output};
use incc::preprocess::{OutputKind, Rgb8};
use incc::profile::Profile;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Copy, Clone, ValueEnum, PartialEq, Eq)]
enum Engine {
    /// Native code from the JIT (the default).
    Jit,
    /// The plain interpreter: the oracle.
    Reference,
}

#[derive(Args)]
pub struct Run {
    /// The .incep file.
    file: PathBuf,
    #[command(flatten)]
    args: CompileArgs,
    /// Input tensor (.npy, f32, shape CxHxW or 1xCxHxW); default: seeded random input.
    #[arg(long)]
    input: Option<PathBuf>,
    /// An image (JPEG or PNG) to classify, turned into the input as the file's `preprocess`
    /// declaration says; prints the most probable classes.
    #[arg(long, conflicts_with = "input")]
    image: Option<PathBuf>,
    /// How many classes to print with --image [default: 5].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100000))]
    top: Option<u32>,
    /// Write the first output here (.npy); further outputs go to `<stem>_<name>.npy` beside it.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Which engine computes.
    #[arg(long, value_enum, default_value = "jit")]
    engine: Engine,
}

/// What kind of values each output holds, by name (for `--image`).
type Kinds = Vec<(String, OutputKind)>;

impl Run {
    pub fn run(self) -> anyhow::Result<()> {
        let f64 = self.args.precision == Some(PrecisionArg::F64);
        if f64 && self.engine != Engine::Reference {
            anyhow::bail!("--precision f64 needs --engine reference");
        }
        if self.engine == Engine::Reference {
            for flag in self.args.jit_only() {
                eprintln!("warning: {flag} has no effect on the reference engine");
            }
        }
        if self.image.is_none() && self.top.is_some() {
            eprintln!("warning: --top has no effect without --image");
        }
        let profile = if f64 { self.args.profile_for_reference()? } else { self.args.profile()? };
        // Decode first: a bad image fails before the network is compiled.
        let image = match &self.image {
            Some(p) => Some((p.clone(), incc::preprocess::load_image(p).context("reading the image")?)),
            None => None,
        };
        let (outs, kinds) = match self.engine {
            Engine::Reference => self.on_reference(&profile, image.as_ref())?,
            Engine::Jit => self.on_jit(&profile, image.as_ref())?,
        };
        match &self.output {
            Some(path) => save_outputs(path, &outs),
            None if image.is_some() => {
                print_classes(&outs, &kinds, self.top.unwrap_or(5) as usize);
                Ok(())
            }
            None => {
                print_outputs(&outs);
                Ok(())
            }
        }
    }

    fn input(&self, g: &Graph, image: Option<&(PathBuf, Rgb8)>, seed: u64) -> anyhow::Result<Vec<f32>> {
        run_input(g, &self.file, self.input.as_deref(), image, seed, self.output.is_some())
    }

    fn on_reference(&self, profile: &Profile, image: Option<&(PathBuf, Rgb8)>) -> anyhow::Result<(Outputs, Kinds)> {
        // The network as the passes leave it at -O (what the JIT runs; -O0: as written),
        // in the precision asked for (bf16 rounds the weights the passes folded).
        let compiler = profile.compiler()?;
        let precision = profile.precision.unwrap_or_default().resolve();
        let (g, w, _) = compiler.optimize(incc::frontend::compile_file(&self.file)?)?;
        let x = self.input(&g, image, profile.seed.unwrap_or(0))?;
        let kinds = output_kinds(&g);
        let outs = if self.args.precision == Some(PrecisionArg::F64) {
            let x: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            let outs = incc::reference::run_f64(&g, &w, &[&x])?;
            outs.into_iter()
                .map(|o| Output { name: o.name, shape: o.shape, data: o.data.into_iter().map(|x| x as f32).collect() })
                .collect()
        } else {
            incc::reference::run_in(&g, &w, &[&x], precision)?
        };
        Ok((outs, kinds))
    }

    fn on_jit(&self, profile: &Profile, image: Option<&(PathBuf, Rgb8)>) -> anyhow::Result<(Outputs, Kinds)> {
        let c = profile.compiler()?.compile_file(&self.file)?;
        let quiet = self.output.is_some();
        if !quiet {
            print_report(&c.report, false);
        }
        let x = self.input(&c.graph, image, profile.seed.unwrap_or(0))?;
        let kinds = output_kinds(&c.graph);
        let t = Instant::now();
        let outs = c.model.run(&x)?;
        if !quiet {
            println!("ran in {:.2} ms", t.elapsed().as_secs_f64() * 1e3);
        }
        Ok((outs, kinds))
    }
}

/// `out.npy` + `aux1` -> `out_aux1.npy`.
fn sibling(path: &Path, name: &str) -> PathBuf {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("output");
    path.with_file_name(format!("{stem}_{name}.npy"))
}

/// The first output to `path`, the others beside it ([`sibling`]): every output or none,
/// since on an error the files already written are removed.
fn save_outputs(path: &Path, outs: &[Output]) -> anyhow::Result<()> {
    let mut written = vec![];
    for (i, Output { name, shape, data }) in outs.iter().enumerate() {
        let p = if i == 0 { path.to_path_buf() } else { sibling(path, name) };
        if let Err(e) = incc::npy::write_npy(&p, &shape.0, data) {
            for w in &written {
                let _ = std::fs::remove_file(w);
            }
            return Err(e).with_context(|| format!("writing output `{name}`"));
        }
        written.push(p);
    }
    for (o, p) in outs.iter().zip(&written) {
        let (name, shape) = (&o.name, &o.shape);
        eprintln!("wrote output `{name}` ({shape}) to {}", p.display());
    }
    Ok(())
}

fn output_kinds(g: &Graph) -> Kinds {
    g.outputs.iter().filter_map(|(n, _)| Some((n.clone(), incc::preprocess::output_kind(g, n)?))).collect()
}

/// The `top` most probable classes of each output (`run --image`).
fn print_classes(outs: &[Output], kinds: &[(String, OutputKind)], top: usize) {
    use incc::preprocess::{class_name, top_classes};
    for o in outs {
        let (name, shape, data) = (&o.name, &o.shape, &o.data);
        let kind = kinds.iter().find(|k| &k.0 == name).map_or(OutputKind::Logits, |k| k.1);
        if shape.rank() != 2 || kind == OutputKind::Embedding {
            print_outputs(std::slice::from_ref(o));
            continue;
        }
        let how = if kind == OutputKind::Logits { "softmax of the logits" } else { "probabilities" };
        println!("output {name}: {shape}, {how}");
        for (rank, (i, p)) in top_classes(data, kind, top).into_iter().enumerate() {
            match class_name(i, data.len()) {
                Some(class) => println!("  {:>2}. {p:.6}  {class} ({i})", rank + 1),
                None => println!("  {:>2}. {p:.6}  class {i}", rank + 1),
            }
        }
    }
}
