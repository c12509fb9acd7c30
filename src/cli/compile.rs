//! `incc compile`: JIT-compile and report, print the IR (`--emit`), write an object (`-o`),
//! or write the effective profile (`--write-profile`).

use super::args::{CompileArgs, ReportFormat};
use super::emit::{Emit, EmitFormat, emit};
use super::print::{print_object_report, print_report, to_json, write_out};
use anyhow::Context;
use clap::Args;
use incc::driver::PrecisionChoice;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct Compile {
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
}

impl Compile {
    pub fn run(self) -> anyhow::Result<()> {
        // The profile is checked first and written last: a failed compile leaves none.
        let profile = match &self.write_profile {
            Some(out) => Some((out, self.args.profile()?.effective()?.to_yaml()?)),
            None => None,
        };
        if let Some(file) = &self.file {
            self.compile(file)?;
        }
        if let Some((out, yaml)) = profile {
            write_out(Some(out), &yaml).context("writing the effective profile")?;
            eprintln!("wrote the effective profile to {}", out.display());
        }
        Ok(())
    }

    fn compile(&self, file: &Path) -> anyhow::Result<()> {
        let args = &self.args;
        if let Some(what) = self.emit {
            return emit(file, what, self.emit_format, args);
        }
        if let Some(object) = &self.output {
            // The object embeds the seeded weights; `--weights` goes to the params file.
            let opts = incc::aot::AotOptions {
                object: object.clone(),
                name: self.name.clone(),
                weights: args.weights.clone(),
                verify: false,
            };
            // C objects run the portable tier's f32 kernels: bf16 cannot apply (issue 16).
            let profile = args.profile()?;
            match profile.precision.unwrap_or_default() {
                PrecisionChoice::Bf16 => anyhow::bail!(
                    "--precision bf16 does not apply to a C object (-o): objects compute in f32 with the portable \
                     tier's kernels"
                ),
                PrecisionChoice::Auto => eprintln!("note: precision auto is f32 for a C object (-o)"),
                PrecisionChoice::F32 => {}
            }
            let compiler = args.compiler()?.seed(profile.seed.unwrap_or(0)).precision(incc::ir::Precision::F32);
            let r = incc::aot::compile_file(&compiler, file, &opts)?;
            match self.format {
                ReportFormat::Text => print_object_report(&r),
                ReportFormat::Json => println!("{}", to_json(&r)?),
            }
            return Ok(());
        }
        let c = args.compiler()?.compile_file(file)?;
        match self.format {
            ReportFormat::Text => print_report(&c.report, self.explain),
            ReportFormat::Json => println!("{}", to_json(&c.report)?),
        }
        Ok(())
    }
}
