//! The `incc` command line: argument parsing and printing only.

use clap::{Args, Parser, Subcommand, ValueEnum};
use incc::profile::Profile;
use incc::{Compiler, Error};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

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
enum ReportFormat {
    Text,
    Json,
}

#[derive(Copy, Clone, ValueEnum, PartialEq, Eq)]
enum Engine {
    /// Native code from the JIT (the default).
    Jit,
    /// The plain interpreter: the oracle.
    Reference,
}

#[derive(Copy, Clone, ValueEnum, PartialEq, Eq)]
enum Precision {
    F32,
    F64,
}

#[derive(Copy, Clone, ValueEnum, PartialEq, Eq)]
enum EmitFormat {
    /// One line per node, as `incc emit` prints it.
    Text,
    /// A YAML document (nodes with op attributes, operands, shapes; outputs).
    Yaml,
}

#[derive(Copy, Clone, ValueEnum, PartialEq, Eq)]
enum GraphFormat {
    /// Graphviz's dot language (text).
    Dot,
    /// SVG drawn by Graphviz's `dot -Tsvg` (needs Graphviz installed).
    Svg,
    /// A self-contained HTML page with the SVG at every depth, zoom and pan.
    Html,
}

#[derive(Copy, Clone, ValueEnum, PartialEq, Eq)]
enum TierArg {
    /// The widest tier this CPU supports.
    Auto,
    /// The f32x4 kernels that run everywhere.
    Portable,
    /// AVX-512 tiles (an error on a CPU without AVX-512F).
    Wide,
    /// AVX2 tiles (an error on a CPU without AVX2 and FMA).
    Avx2,
}

#[derive(Copy, Clone, ValueEnum, PartialEq, Eq)]
enum Emit {
    /// The IR after lowering.
    Ir,
    /// The IR after the optimiser.
    OptIr,
}

/// Options shared by every command that compiles. Each overrides the same key of
/// `--profile-file`; unset, the profile's value or the default applies.
#[derive(Args, Clone)]
struct CompileArgs {
    /// A YAML compile profile (opt_level, disable_passes, threads, tier, outputs, seed, weights).
    #[arg(long, value_name = "FILE")]
    profile_file: Option<PathBuf>,
    /// Weights (a PyTorch state_dict saved with safetensors); default: seeded initialisation.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Seed of the default weights and input [default: 0].
    #[arg(long)]
    seed: Option<u64>,
    /// Optimisation level: 0 (none), 1, 2 (all) [default: 2].
    #[arg(short = 'O', value_name = "LEVEL", value_parser = clap::value_parser!(u8).range(0..=2))]
    opt: Option<u8>,
    /// A pass not to run (repeatable).
    #[arg(long = "disable-pass", value_name = "NAME")]
    disable_pass: Vec<String>,
    /// The outputs to keep, comma-separated (default: all but auxiliary classifiers `aux*`).
    #[arg(long, value_delimiter = ',')]
    outputs: Option<Vec<String>>,
    /// Worker threads, 1 to 1024 (default: all cores).
    #[arg(long)]
    threads: Option<u32>,
    /// Kernel tier [default: auto].
    #[arg(long, value_enum)]
    tier: Option<TierArg>,
    /// Debug mode: surround every buffer with guard values and verify them after each kernel.
    #[arg(long)]
    check_bounds: bool,
}

impl CompileArgs {
    /// The profile file (if any) with the flags over it.
    fn profile(&self) -> incc::Result<Profile> {
        if let Some(t) = self.threads.filter(|t| !(1..=1024).contains(t)) {
            return Err(Error::Invalid(format!(
                "invalid value {t} for --threads: expected from 1 to 1024 (leave it out to use all cores)"
            )));
        }
        let file = match &self.profile_file {
            Some(p) => Profile::load(p)?,
            None => Profile::default(),
        };
        let flags = Profile {
            opt_level: self.opt,
            disable_passes: self.disable_pass.clone(),
            threads: self.threads,
            tier: self.tier.map(|t| match t {
                TierArg::Auto => incc::Tier::Auto,
                TierArg::Portable => incc::Tier::Portable,
                TierArg::Wide => incc::Tier::Avx512,
                TierArg::Avx2 => incc::Tier::Avx2,
            }),
            outputs: self.outputs.clone(),
            seed: self.seed,
            weights: self.weights.clone(),
        };
        Ok(file.overlay(flags))
    }

    fn compiler(&self) -> incc::Result<Compiler> {
        Ok(self.profile()?.compiler()?.check_bounds(self.check_bounds))
    }
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
    /// Compile to native code and report each stage's time and what it produced.
    Compile {
        /// The .incep file (optional with --write-profile).
        #[arg(required_unless_present = "write_profile")]
        file: Option<PathBuf>,
        #[command(flatten)]
        args: CompileArgs,
        /// Report format.
        #[arg(long, value_enum, default_value = "text")]
        format: ReportFormat,
        /// Say what each optimisation pass did.
        #[arg(long)]
        explain: bool,
        /// Print the IR before (`ir`) or after (`opt-ir`) the optimiser instead.
        #[arg(long, value_enum, conflicts_with = "output")]
        emit: Option<Emit>,
        /// Write a relocatable object with a C ABI here, and its header beside it (`.h`);
        /// with `--weights`, also the packed weights (`.params`).
        #[arg(short = 'o', long = "output", value_name = "OBJECT")]
        output: Option<PathBuf>,
        /// Symbol prefix of the object's functions and macros (default: the object's file stem).
        #[arg(long, requires = "output")]
        name: Option<String>,
        /// The form of `--emit`.
        #[arg(long, value_enum, default_value = "text", requires = "emit")]
        emit_format: EmitFormat,
        /// Write the effective profile (the profile file with the flags over it) to this file.
        #[arg(long, value_name = "FILE")]
        write_profile: Option<PathBuf>,
    },
    /// Draw the network: blocks as clusters, branches side by side, shapes on the edges.
    Graph {
        /// The .incep file.
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "dot")]
        format: GraphFormat,
        /// Draw each scope N levels down as one box (1: every top-level block is one box).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
        depth: Option<u32>,
        /// Write to this file instead of standard output.
        #[arg(short = 'o', long, value_name = "OUT")]
        output: Option<PathBuf>,
        /// Draw the graph after the optimiser at this level (0: the network as written).
        #[arg(short = 'O', value_name = "LEVEL", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
        opt: u8,
    },
    /// Run a network on one input and print or save its outputs.
    Run {
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
        /// How many classes to print with --image.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100000))]
        top: u32,
        /// Write the first output here (.npy); further outputs go to `<stem>_<name>.npy` beside it.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Which engine computes.
        #[arg(long, value_enum, default_value = "jit")]
        engine: Engine,
        /// Activation precision of the reference engine (`f64` proves semantics without rounding).
        #[arg(long, value_enum, default_value = "f32")]
        precision: Precision,
    },
    /// Time the compiled network: median, min and max latency and GFLOP/s.
    Bench {
        /// The .incep file.
        file: PathBuf,
        #[command(flatten)]
        args: CompileArgs,
        /// Timed runs.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100000))]
        iters: u32,
        /// Untimed runs first.
        #[arg(long, default_value_t = 3)]
        warmup: u32,
        /// Report format.
        #[arg(long, value_enum, default_value = "text")]
        format: ReportFormat,
        /// Time every kernel of one run.
        #[arg(long)]
        profile: bool,
    },
    /// List the weight tensors the network expects (state-dict key and shape).
    Keys {
        /// The .incep file.
        file: PathBuf,
    },
    /// Write the network and its weights as an ONNX model (opset 17).
    Export {
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
    },
    /// Print an intermediate form of the network.
    Emit {
        /// The .incep file.
        file: PathBuf,
        /// What to print.
        #[arg(long, value_enum, default_value = "ir")]
        what: Emit,
        #[command(flatten)]
        args: CompileArgs,
    },
}

fn main() -> ExitCode {
    // A closed pipe (`incc summary x.incep | head`) ends the process quietly, as it does for
    // every Unix filter, instead of making `println!` panic.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE at startup, before any thread
    // exists, has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
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
fn sibling(path: &Path, name: &str) -> PathBuf {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("output");
    path.with_file_name(format!("{stem}_{name}.npy"))
}

fn to_json<T: serde::Serialize>(v: &T) -> incc::Result<String> {
    serde_json::to_string_pretty(v).map_err(|e| Error::Invalid(e.to_string()))
}

fn emit(file: &Path, what: Emit, format: EmitFormat, args: &CompileArgs) -> incc::Result<()> {
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

/// Writes `text` to `path`, or to standard output without one. The file is written
/// atomically (a temporary file beside it, renamed into place): on error nothing is left.
fn write_out(path: Option<&Path>, text: &str) -> incc::Result<()> {
    match path {
        Some(p) => incc::npy::write_atomic(p, |w| std::io::Write::write_all(w, text.as_bytes())),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

/// A bar on stderr for `total` steps, drawn only when stderr is a terminal and the steps,
/// judged by the first, will take more than a second (see [`Bar::step`]).
struct Bar {
    bar: ProgressBar,
    started: Instant,
    total: u64,
    shown: bool,
}

impl Bar {
    fn new(total: u64) -> Bar {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
        if let Ok(style) = ProgressStyle::with_template("{msg:>8} [{bar:30}] {pos}/{len} {elapsed}<{eta}") {
            bar.set_style(style.progress_chars("=> "));
        }
        Bar { bar, started: Instant::now(), total, shown: false }
    }

    /// One step done; the bar appears once the whole job looks longer than a second.
    fn step(&mut self, msg: &'static str) {
        self.bar.set_message(msg);
        self.bar.inc(1);
        let done = self.bar.position().max(1);
        let expected = self.started.elapsed().as_secs_f64() / done as f64 * self.total as f64;
        if !self.shown && expected > 1.0 && std::io::stderr().is_terminal() {
            self.shown = true;
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// The network's input: a .npy file checked against the declared shape, or seeded random values.
fn load_input(g: &incc::ir::Graph, input: Option<&Path>, seed: u64) -> incc::Result<Vec<f32>> {
    let in_id = g.inputs.first().copied().ok_or_else(|| Error::Invalid("the network has no input".into()))?;
    let in_shape = &g.node(in_id).shape;
    let Some(p) = input else { return Ok(incc::weights::random_input(in_shape.numel(), seed)) };
    let (shape, data) = incc::npy::read_npy(p)?;
    if shape != in_shape.0 && shape[..] != in_shape.0[1..] {
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        return Err(Error::Npy {
            path: p.display().to_string(),
            message: format!("has shape {}, but the network's input is {in_shape}", dims.join("x")),
        });
    }
    Ok(data)
}

/// The input from `--image` (decoded already, preprocessed as the network declares),
/// `--input`, or the seed.
fn run_input(
    g: &incc::ir::Graph,
    file: &Path,
    input: Option<&Path>,
    image: Option<&(PathBuf, incc::preprocess::Rgb8)>,
    seed: u64,
    quiet: bool,
) -> incc::Result<Vec<f32>> {
    let Some((path, img)) = image else { return load_input(g, input, seed) };
    let Some(pre) = &g.preprocess else {
        return Err(Error::Invalid(format!(
            "{}: the network declares no `preprocess`, so incc does not know how to turn an image into its \
             input: add e.g. `preprocess resize 256 crop 224 normalize inception` (docs/LANGUAGE.md), or give \
             a tensor with --input",
            file.display()
        )));
    };
    if !quiet {
        println!("image {} ({}x{}): {pre}", path.display(), img.width, img.height);
    }
    pre.apply(img).map_err(|e| Error::Image { path: path.display().to_string(), message: e.to_string() })
}

/// The `top` most probable classes of each output (`run --image`).
fn print_classes(outs: &[incc::ir::Output], kinds: &[(String, incc::preprocess::OutputKind)], top: usize) {
    use incc::preprocess::{OutputKind, class_name, top_classes};
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

fn output_kinds(g: &incc::ir::Graph) -> Vec<(String, incc::preprocess::OutputKind)> {
    g.outputs.iter().filter_map(|(n, _)| Some((n.clone(), incc::preprocess::output_kind(g, n)?))).collect()
}

fn print_report(r: &incc::CompileReport, explain: bool) {
    println!(
        "compiled {} in {:.1} ms (parse {:.1}, lower {:.1}, weights {:.1}, passes {:.1}, codegen {:.1})",
        r.network, r.total_ms, r.parse_ms, r.lower_ms, r.weights_ms, r.passes_ms, r.codegen_ms
    );
    println!(
        "{} tier: {} kernels ({} micro-tiles), {} steps, {} bytes of code, {} bytes of arena, {} bytes of packed weights",
        r.tier,
        r.kernels,
        r.tiles,
        r.steps,
        incc::summary::group(r.code_bytes as u64),
        incc::summary::group(r.arena_bytes as u64),
        incc::summary::group(r.param_bytes as u64)
    );
    if explain {
        for p in &r.passes {
            println!(
                "  {:<24} {:>4} rewrites  nodes {:>4} -> {:<4} kernels {:>4} -> {:<4} activation bytes {} -> {}",
                p.name,
                p.rewrites,
                p.nodes_before,
                p.nodes_after,
                p.kernels_before,
                p.kernels_after,
                incc::summary::group(p.activation_bytes_before),
                incc::summary::group(p.activation_bytes_after)
            );
        }
    }
}

fn print_object_report(r: &incc::aot::AotReport) {
    println!("compiled {} to {} in {:.1} ms (symbols {}_*)", r.network, r.files.join(", "), r.total_ms, r.name);
    println!(
        "{} kernels, {} steps, {} bytes of code, {} bytes of object, {} bytes of arena, {} bytes of packed weights",
        r.kernels,
        r.steps,
        incc::summary::group(r.code_bytes as u64),
        incc::summary::group(r.object_bytes as u64),
        incc::summary::group(r.arena_bytes as u64),
        incc::summary::group(r.param_bytes as u64)
    );
    println!("input {} floats, output {} floats; link with: cc app.c {} -lm", r.input_len, r.output_len, r.files[0]);
}

fn print_outputs(outs: &[incc::ir::Output]) {
    for incc::ir::Output { name, shape, data } in outs {
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

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

fn run(cli: Cli) -> incc::Result<()> {
    match cli.cmd {
        Cmd::Check { file } => {
            let g = incc::frontend::compile_file(&file)?;
            let ops = g.g.node_count() - g.inputs.len();
            eprintln!(
                "{}: ok ({ops} operations, {} parameters)",
                file.display(),
                incc::summary::group(g.param_count())
            );
            Ok(())
        }
        Cmd::Summary { file, format } => {
            let g = incc::frontend::compile_file(&file)?;
            let s = incc::summary::Summary::of(&g);
            let text = match format {
                SummaryFormat::Table => s.table(),
                SummaryFormat::Json => to_json(&s)? + "\n",
                SummaryFormat::Yaml => serde_yaml_ng::to_string(&s).map_err(|e| Error::Invalid(e.to_string()))?,
            };
            print!("{text}");
            Ok(())
        }
        Cmd::Compile { file, args, format, explain, emit: what, emit_format, write_profile, output, name } => {
            // The profile is checked first and written last: a failed compile leaves none.
            let profile = match &write_profile {
                Some(out) => Some((out, args.profile()?.effective()?.to_yaml()?)),
                None => None,
            };
            let compile = |file: &Path| -> incc::Result<()> {
                if let Some(what) = what {
                    return emit(file, what, emit_format, &args);
                }
                if let Some(object) = output {
                    // The object embeds the seeded weights; `--weights` goes to the params file.
                    let opts = incc::aot::AotOptions { object, name, weights: args.weights.clone(), verify: false };
                    let compiler = args.compiler()?.seed(args.profile()?.seed.unwrap_or(0));
                    let r = incc::aot::compile_file(&compiler, file, &opts)?;
                    match format {
                        ReportFormat::Text => print_object_report(&r),
                        ReportFormat::Json => println!("{}", to_json(&r)?),
                    }
                    return Ok(());
                }
                let c = args.compiler()?.compile_file(file)?;
                match format {
                    ReportFormat::Text => print_report(&c.report, explain),
                    ReportFormat::Json => println!("{}", to_json(&c.report)?),
                }
                Ok(())
            };
            if let Some(file) = &file {
                compile(file)?;
            }
            if let Some((out, yaml)) = profile {
                write_out(Some(out), &yaml)?;
                eprintln!("wrote the effective profile to {}", out.display());
            }
            Ok(())
        }
        Cmd::Run { file, args, input, image, top, output, engine, precision } => {
            if precision == Precision::F64 && engine != Engine::Reference {
                return Err(Error::Invalid("--precision f64 needs --engine reference".into()));
            }
            let profile = args.profile()?;
            let seed = profile.seed.unwrap_or(0);
            let quiet = output.is_some();
            // Decode first: a bad image fails before the network is compiled.
            let image = match image {
                Some(p) => Some((p.clone(), incc::preprocess::load_image(&p)?)),
                None => None,
            };
            let mut kinds = vec![];
            let outs = match engine {
                Engine::Reference => {
                    let g = incc::frontend::compile_file(&file)?;
                    let w = match &profile.weights {
                        Some(p) => incc::weights::Weights::load_safetensors(p, &g)?,
                        None => incc::weights::Weights::init(&g, seed),
                    };
                    let x = run_input(&g, &file, input.as_deref(), image.as_ref(), seed, quiet)?;
                    kinds = output_kinds(&g);
                    if precision == Precision::F64 {
                        let x: Vec<f64> = x.iter().map(|&v| v as f64).collect();
                        let outs = incc::reference::run_f64(&g, &w, &[&x])?;
                        outs.into_iter()
                            .map(|o| incc::ir::Output {
                                name: o.name,
                                shape: o.shape,
                                data: o.data.into_iter().map(|x| x as f32).collect(),
                            })
                            .collect()
                    } else {
                        incc::reference::run(&g, &w, &[&x])?
                    }
                }
                Engine::Jit => {
                    let c = profile.compiler()?.compile_file(&file)?;
                    if output.is_none() {
                        print_report(&c.report, false);
                    }
                    let x = run_input(&c.graph, &file, input.as_deref(), image.as_ref(), seed, quiet)?;
                    kinds = output_kinds(&c.graph);
                    let t = Instant::now();
                    let outs = c.model.run(&x)?;
                    if output.is_none() {
                        println!("ran in {:.2} ms", t.elapsed().as_secs_f64() * 1e3);
                    }
                    outs
                }
            };
            match &output {
                Some(path) => {
                    // Every output or none: on an error, the files already written are removed.
                    let mut written = vec![];
                    for (i, incc::ir::Output { name, shape, data }) in outs.iter().enumerate() {
                        let p = if i == 0 { path.clone() } else { sibling(path, name) };
                        if let Err(e) = incc::npy::write_npy(&p, &shape.0, data) {
                            for w in &written {
                                let _ = std::fs::remove_file(w);
                            }
                            return Err(e);
                        }
                        written.push(p);
                    }
                    for (o, p) in outs.iter().zip(&written) {
                        let (name, shape) = (&o.name, &o.shape);
                        eprintln!("wrote output `{name}` ({shape}) to {}", p.display());
                    }
                }
                None if image.is_some() => print_classes(&outs, &kinds, top as usize),
                None => print_outputs(&outs),
            }
            Ok(())
        }
        Cmd::Bench { file, args, iters, warmup, format, profile } => {
            let settings = args.profile()?;
            let c = settings.compiler()?.compile_file(&file)?;
            let x = load_input(&c.graph, None, settings.seed.unwrap_or(0))?;
            let mut bar = Bar::new(u64::from(warmup) + u64::from(iters));
            for _ in 0..warmup {
                c.model.run(&x)?;
                bar.step("warm-up");
            }
            let mut times: Vec<f64> = Vec::with_capacity(iters as usize);
            for _ in 0..iters {
                let t = Instant::now();
                c.model.run(&x)?;
                times.push(t.elapsed().as_secs_f64() * 1e3);
                bar.step("timing");
            }
            drop(bar);
            let (min, max) = times.iter().fold((f64::MAX, 0f64), |(a, b), &t| (a.min(t), b.max(t)));
            let med = median(&mut times);
            let macs = c.graph.total_macs();
            let gflops = 2.0 * macs as f64 / (med * 1e-3) / 1e9;
            let threads = settings
                .threads
                .map(|t| t as usize)
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let layers = if profile { c.model.profile(&[&x])? } else { vec![] };
            match format {
                ReportFormat::Json => {
                    let v = serde_json::json!({
                        "network": c.report.network, "threads": threads, "iters": iters, "tier": c.report.tier,
                        "median_ms": med, "min_ms": min, "max_ms": max, "gflops": gflops, "macs": macs,
                        "compile_ms": c.report.total_ms,
                        "profile": layers.iter().map(|(k, f, t)| serde_json::json!({"kernel": k, "flops": f, "ms": t * 1e3})).collect::<Vec<_>>(),
                    });
                    println!("{}", to_json(&v)?);
                }
                ReportFormat::Text => {
                    println!(
                        "{}: median {med:.2} ms, min {min:.2} ms, max {max:.2} ms over {iters} runs, {threads} thread(s), {} tier; {gflops:.1} GFLOP/s",
                        c.report.network, c.report.tier
                    );
                    if profile {
                        let total: f64 = layers.iter().map(|l| l.2).sum();
                        for (k, f, t) in &layers {
                            let g = if *t > 0.0 { *f as f64 / t / 1e9 } else { 0.0 };
                            println!(
                                "  {:>8.3} ms {:>5.1}% {:>7.1} GFLOP/s  {k}",
                                t * 1e3,
                                100.0 * t / total.max(1e-12),
                                g
                            );
                        }
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
        Cmd::Emit { file, what, args } => emit(&file, what, EmitFormat::Text, &args),
        Cmd::Export { file, onnx, weights, seed, outputs, opt } => {
            let level = incc::driver::parse_level(&opt)?;
            let mut c = Compiler::new().seed(seed).outputs(outputs).opt_level(level);
            if let Some(w) = &weights {
                c = c.weights_file(w);
            }
            let g = incc::frontend::compile_file(&file)?;
            let (g, w) = if level == incc::passes::Level::O0 {
                c.select_outputs(g)?
            } else {
                let (g, w, _) = c.optimize(g)?;
                (g, w)
            };
            let s = incc::export::onnx::write(&onnx, &g, &w)?;
            eprintln!(
                "wrote {}: ONNX opset {}, {} nodes, {} initializers, {} bytes",
                onnx.display(),
                incc::export::onnx::OPSET,
                s.nodes,
                s.initializers,
                incc::summary::group(s.bytes as u64)
            );
            Ok(())
        }
        Cmd::Graph { file, format, depth, output, opt } => {
            let g = incc::frontend::compile_file(&file)?;
            let g = if opt == 0 {
                g
            } else {
                let level = incc::driver::parse_level(&opt.to_string())?;
                Compiler::new().opt_level(level).optimize(g)?.0
            };
            let opts = incc::graphviz::Options { depth: depth.map(|d| d as usize) };
            let text = match format {
                GraphFormat::Dot => incc::graphviz::to_dot(&g, &opts),
                GraphFormat::Svg => incc::graphviz::render_svg(&incc::graphviz::to_dot(&g, &opts))?,
                GraphFormat::Html => incc::graphviz::to_html(&g, &opts)?,
            };
            write_out(output.as_deref(), &text)
        }
    }
}
