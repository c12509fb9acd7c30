//! `run` takes no page faults: the activation arena is mapped when the model is compiled
//! (first-touch pages cost ~10x a mapped one's write here). A test binary of its own: the
//! other tests' allocations on other threads would make the kernel remap pages meanwhile.

#![cfg(target_os = "linux")]

use incc::exec::JitOptions;
use incc::exec::Model;
use incc::ir::{Conv2d, Op, Pad, Shape};
use incc::target::TierChoice;
use incc::weights::Weights;

mod common;
use common::{add, with_input};

/// Minor page faults of this thread so far.
fn page_faults() -> i64 {
    // SAFETY: `rusage` is plain integers, for which all zeros is a valid value.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid `rusage` to fill.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) }, 0);
    u.ru_minflt
}

/// The first run of a model with a 12 MB arena (one thread, a small output) takes no page
/// faults, on every tier, once the run path's code is mapped; untouched, the arena would
/// take thousands (4 KiB pages) or, with huge pages, six or more.
#[test]
fn the_first_run_takes_no_page_faults() {
    let (mut g, x) = with_input(Shape::nchw(32, 145, 145));
    let conv = Conv2d {
        out_channels: 64,
        in_channels: 32,
        kernel: [3, 3],
        stride: [1, 1],
        pad: Pad { top: 1, bottom: 1, left: 1, right: 1 },
        groups: 1,
        key: "conv".into(),
        bias: true,
        epilogue: Default::default(),
        winograd: None,
    };
    let c = add(&mut g, Op::Conv2d(conv), &[x]);
    let p = add(&mut g, Op::GlobalAvgPool, &[c]);
    g.outputs.push(("y".into(), p));
    let w = Weights::init(&g, 1);
    let input = vec![0.5; g.node(x).shape.numel()];
    for tier in TierChoice::runnable() {
        let opts = JitOptions { threads: 1, verify: false, tier, precision: Default::default(), check_bounds: false };
        // A first model's run maps the code of incc's run path (file pages fault once too).
        Model::compile(&g, &w, &opts).expect("compile").run(&input).expect("run");
        let m = Model::compile(&g, &w, &opts).expect("compile");
        assert!(m.stats().arena_bytes > 8 << 20);
        let before = page_faults();
        m.run(&input).expect("run");
        let faults = page_faults() - before;
        assert!(faults <= 2, "{tier:?}: {faults} page faults in the first run");
    }
}
