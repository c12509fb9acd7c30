//! Embedding incc: compile `architectures/inception_v3.incep` to native code and run it.
//!
//! `cargo run --release --example embed [-- path/to/net.incep]`

use incc::exec::JitOptions;
use incc::exec::Model;
use incc::weights::Weights;
use std::time::Instant;

fn main() -> incc::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/architectures/inception_v3.incep").into());
    let t0 = Instant::now();
    let graph = incc::frontend::compile_file(&path)?;
    let weights = Weights::init(&graph, 0);
    let model = Model::compile(&graph, &weights, &JitOptions::default())?;
    let s = model.stats();
    println!(
        "compiled {path} in {:.0} ms (plan {:.0} ms, codegen {:.0} ms while packing): {} kernels, {} steps, {} KiB code, {} MiB arena",
        t0.elapsed().as_secs_f64() * 1e3,
        s.plan_ms,
        s.codegen_ms,
        s.kernels,
        s.steps,
        s.code_bytes / 1024,
        s.arena_bytes >> 20
    );
    let (name, shape) = model
        .inputs()
        .next()
        .map(|(n, s)| (n.to_string(), s.clone()))
        .ok_or_else(|| incc::Error::Invalid("no input".into()))?;
    let x = vec![0.5f32; shape.numel()];
    let t1 = Instant::now();
    let outputs = model.run(&x)?;
    println!("ran on `{name}` {shape} in {:.1} ms", t1.elapsed().as_secs_f64() * 1e3);
    for incc::ir::Output { name, shape, data: values } in outputs {
        let (arg, max) = values.iter().enumerate().fold((0, f32::MIN), |a, (i, &v)| if v > a.1 { (i, v) } else { a });
        println!("output `{name}` {shape}: argmax {arg} ({max:.4})");
    }
    Ok(())
}
