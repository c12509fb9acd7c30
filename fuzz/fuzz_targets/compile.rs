//! Any bytes through parse -> lower -> passes -> JIT compile (and one run for small networks):
//! a located error or a result, never a panic.
//!
//! Run: `fuzz/run.sh [seconds]` (seeds the corpus with the bundled architectures).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(graph) = incc::frontend::compile_str("fuzz.incep", text) else { return };
    // Keep each input cheap: big valid networks are exercised by the test suite.
    if graph.total_macs() > 20_000_000 || graph.param_count() > 2_000_000 {
        return;
    }
    let compiler = incc::Compiler::new().threads(1).verify(true);
    let Ok((g, w, _)) = compiler.optimize(graph) else { return };
    // Guard zones around every buffer: a kernel writing out of bounds is an error from `run`,
    // which must not happen for a network that compiled.
    let opts = incc::exec::JitOptions { threads: 1, verify: true, check_bounds: true, ..Default::default() };
    if let Ok(model) = incc::exec::Model::compile(&g, &w, &opts) {
        if let Some(&i) = g.inputs.first() {
            let x = vec![0.5f32; g.node(i).shape.numel()];
            if let Err(e) = model.run(&x) {
                assert!(!e.to_string().contains("bounds check"), "out-of-bounds write: {e}");
            }
        }
    }
});
