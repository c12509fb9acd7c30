//! What the commands print: compile reports, outputs, JSON, errors; and [`write_out`], a
//! command's text to a file or standard output.

use incc::Error;
use incc::ir::Output;
use incc::summary::group;
use std::io::IsTerminal;
use std::path::Path;

/// Prints a failed command's error on stderr: source errors as codespan diagnostics (in
/// colour on a terminal; they name the file and line themselves), the rest as
/// `error: what the command was doing: what went wrong`.
pub fn print_error(e: &anyhow::Error) {
    match e.downcast_ref::<Error>() {
        Some(Error::Source(d)) => {
            for what in e.chain().take_while(|c| !c.is::<Error>()) {
                eprintln!("error: {what}:");
            }
            eprint!("{}", d.render(std::io::stderr().is_terminal()));
        }
        _ => eprintln!("error: {e:#}"),
    }
}

pub fn to_json<T: serde::Serialize>(v: &T) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(v)?)
}

/// Writes `text` to `path`, or to standard output without one. The file is written
/// atomically (a temporary file beside it, renamed into place): on error nothing is left.
pub fn write_out(path: Option<&Path>, text: &str) -> anyhow::Result<()> {
    match path {
        Some(p) => Ok(incc::npy::write_atomic(p, |w| std::io::Write::write_all(w, text.as_bytes()))?),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

pub fn print_report(r: &incc::CompileReport, explain: bool) {
    println!(
        "compiled {} in {:.1} ms (parse {:.1}, lower {:.1}, weights {:.1}, passes {:.1}, codegen {:.1})",
        r.network, r.total_ms, r.parse_ms, r.lower_ms, r.weights_ms, r.passes_ms, r.codegen_ms
    );
    println!(
        "{} tier, {}: {} kernels ({} micro-tiles), {} steps, {} bytes of code, {} bytes of arena, {} bytes of packed weights",
        r.tier,
        r.precision,
        r.kernels,
        r.tiles,
        r.steps,
        group(r.code_bytes as u64),
        group(r.arena_bytes as u64),
        group(r.param_bytes as u64)
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
                group(p.activation_bytes_before),
                group(p.activation_bytes_after)
            );
        }
    }
}

pub fn print_object_report(r: &incc::aot::AotReport) {
    println!("compiled {} to {} in {:.1} ms (symbols {}_*)", r.network, r.files.join(", "), r.total_ms, r.name);
    println!(
        "{} kernels, {} steps, {} bytes of code, {} bytes of object, {} bytes of arena, {} bytes of packed weights",
        r.kernels,
        r.steps,
        group(r.code_bytes as u64),
        group(r.object_bytes as u64),
        group(r.arena_bytes as u64),
        group(r.param_bytes as u64)
    );
    println!("input {} floats, output {} floats; link with: cc app.c {} -lm", r.input_len, r.output_len, r.files[0]);
}

/// Each output's shape and its five top scores (a rank-2 output) or first values.
pub fn print_outputs(outs: &[Output]) {
    for Output { name, shape, data } in outs {
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
