//! Embedding incc: compile `architectures/inception_v3.incep` to native code, optimised as
//! `incc compile` does (`-O2`, every pass), and run it.
//!
//! `cargo run --release --example embed [-- path/to/net.incep [bf16]]`

use incc::ir::Precision;
use incc::{Compiler, Level};
use std::time::Instant;

fn main() -> incc::Result<()> {
    let mut args = std::env::args().skip(1);
    let path =
        args.next().unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/architectures/inception_v3.incep").into());
    let precision = if args.next().as_deref() == Some("bf16") { Precision::Bf16 } else { Precision::F32 };
    let t0 = Instant::now();
    // Seeded weights; `.weights_file("v3.safetensors")` loads a PyTorch state_dict instead.
    let compiled = Compiler::new().opt_level(Level::O2).seed(0).precision(precision).compile_file(&path)?;
    let (model, r) = (&compiled.model, &compiled.report);
    println!(
        "compiled {path} in {:.0} ms (passes {:.0} ms, codegen {:.0} ms): {} tier, {}, {} kernels, {} steps, {} KiB code, {} MiB arena",
        t0.elapsed().as_secs_f64() * 1e3,
        r.passes_ms,
        r.codegen_ms,
        r.tier,
        r.precision,
        r.kernels,
        r.steps,
        r.code_bytes / 1024,
        r.arena_bytes >> 20
    );
    let (name, shape) = model
        .inputs()
        .next()
        .map(|(n, s)| (n.to_string(), s.clone()))
        .ok_or_else(|| incc::Error::Invalid("no input".into()))?;
    let x = vec![0.5f32; shape.numel()];
    model.run(&x)?; // warm up
    let t1 = Instant::now();
    let outputs = model.run(&x)?;
    println!("ran on `{name}` {shape} in {:.1} ms", t1.elapsed().as_secs_f64() * 1e3);
    for incc::ir::Output { name, shape, data: values } in outputs {
        let (arg, max) = values.iter().enumerate().fold((0, f32::MIN), |a, (i, &v)| if v > a.1 { (i, v) } else { a });
        println!("output `{name}` {shape}: argmax {arg} ({max:.4})");
    }
    Ok(())
}
