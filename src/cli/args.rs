//! The options every compiling command shares (`compile`, `run`, `bench`, `emit`) and the
//! report format of `compile` and `bench`.

use anyhow::Context;
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, ValueEnum};
use incc::Compiler;
use incc::driver::PrecisionChoice;
use incc::profile::Profile;
use incc::target::TierChoice;
use std::path::PathBuf;

/// `--precision`: the arithmetic of convolutions and linear layers, or the reference
/// engine's f64 activations.
#[derive(Copy, Clone, ValueEnum, PartialEq, Eq, Debug)]
pub enum PrecisionArg {
    /// f32 throughout (the default).
    F32,
    /// bf16 products, f32 sums (an error on a CPU without AVX512_BF16).
    Bf16,
    /// bf16 where the CPU has AVX512_BF16, else f32 (says which).
    Auto,
    /// The reference engine with f64 activations (`run --engine reference` only).
    F64,
}

#[derive(Copy, Clone, ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
}

/// `--tier`: the library's names ([`TierChoice::NAMES`]) and parser, its aliases accepted
/// but not listed, each name with its line of `--help`.
fn tier_parser() -> impl TypedValueParser<Value = TierChoice> {
    let values = TierChoice::ALL.map(|t| {
        let aliases = TierChoice::ALIASES.iter().filter(|(_, a)| *a == t).map(|(name, _)| *name);
        PossibleValue::new(t.name()).help(tier_help(t)).aliases(aliases)
    });
    PossibleValuesParser::new(values).try_map(|name| name.parse::<TierChoice>())
}

fn tier_help(t: TierChoice) -> &'static str {
    match t {
        TierChoice::Auto => "The widest tier this CPU supports",
        TierChoice::Avx512 => "AVX-512 tiles (an error on a CPU without AVX-512F)",
        TierChoice::Avx2 => "AVX2 tiles (an error on a CPU without AVX2 and FMA)",
        TierChoice::Portable => "The f32x4 kernels that run everywhere",
    }
}

/// Options shared by every command that compiles. Each overrides the same key of
/// `--profile-file`; unset, the profile's value or the default applies.
#[derive(Args, Clone)]
pub struct CompileArgs {
    /// A YAML compile profile (opt_level, disable_passes, threads, tier, outputs, seed, weights).
    #[arg(long, value_name = "FILE")]
    profile_file: Option<PathBuf>,
    /// Weights (a PyTorch state_dict saved with safetensors); default: seeded initialisation.
    #[arg(long)]
    pub weights: Option<PathBuf>,
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
    #[arg(long, value_parser = tier_parser())]
    tier: Option<TierChoice>,
    /// Arithmetic of convolutions and linear layers [default: f32].
    #[arg(long, value_enum)]
    pub precision: Option<PrecisionArg>,
    /// Debug mode: surround every buffer with guard values and verify them after each kernel.
    #[arg(long)]
    check_bounds: bool,
}

impl CompileArgs {
    /// The profile file (if any) with the flags over it; `--precision f64` is refused (it is
    /// the reference engine's, see [`CompileArgs::profile_for_reference`]).
    pub fn profile(&self) -> anyhow::Result<Profile> {
        if self.precision == Some(PrecisionArg::F64) {
            anyhow::bail!("--precision f64 is the reference engine's: incc run --engine reference --precision f64");
        }
        self.profile_for_reference()
    }

    /// [`CompileArgs::profile`], `--precision f64` allowed (as f32 arithmetic).
    pub fn profile_for_reference(&self) -> anyhow::Result<Profile> {
        if let Some(t) = self.threads.filter(|t| !(1..=1024).contains(t)) {
            anyhow::bail!("invalid value {t} for --threads: expected from 1 to 1024 (leave it out to use all cores)");
        }
        let file = match &self.profile_file {
            Some(p) => Profile::load(p).context("reading the compile profile")?,
            None => Profile::default(),
        };
        let precision = match self.precision {
            None => None,
            Some(PrecisionArg::F32) => Some(PrecisionChoice::F32),
            Some(PrecisionArg::Bf16) => Some(PrecisionChoice::Bf16),
            Some(PrecisionArg::Auto) => Some(PrecisionChoice::Auto),
            // The reference's f64 activations compute the f32 network (`run` checks the engine).
            Some(PrecisionArg::F64) => Some(PrecisionChoice::F32),
        };
        let flags = Profile {
            opt_level: self.opt,
            disable_passes: self.disable_pass.clone(),
            threads: self.threads,
            tier: self.tier,
            precision,
            outputs: self.outputs.clone(),
            seed: self.seed,
            weights: self.weights.clone(),
        };
        let profile = file.overlay(flags);
        // Said once, however often a command reads its profile.
        static SAID: std::sync::Once = std::sync::Once::new();
        if profile.precision == Some(PrecisionChoice::Auto) {
            SAID.call_once(|| {
                let p = PrecisionChoice::Auto.resolve();
                let why = if p == incc::ir::Precision::Bf16 {
                    "this CPU has AVX512_BF16"
                } else {
                    "this CPU has no AVX512_BF16"
                };
                eprintln!("note: precision auto is {p} ({why})");
            });
        }
        Ok(profile)
    }

    /// A compiler with the effective profile's options and `--check-bounds`.
    pub fn compiler(&self) -> anyhow::Result<Compiler> {
        Ok(self.profile()?.compiler()?.check_bounds(self.check_bounds))
    }

    /// The flags that do nothing on the reference engine, as given.
    pub fn jit_only(&self) -> Vec<&'static str> {
        let mut v = vec![];
        if self.tier.is_some() {
            v.push("--tier");
        }
        if self.threads.is_some() {
            v.push("--threads");
        }
        if self.check_bounds {
            v.push("--check-bounds");
        }
        v
    }
}
