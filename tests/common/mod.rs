//! Helpers the tests share (`mod common;` in each test file): running the CLI, scratch
//! files, building small graphs.
#![allow(dead_code)] // each test binary uses its own subset

use incc::ir::{Graph, NodeId, Op, Shape};
use std::path::PathBuf;
use std::process::Command;

/// Runs the `incc` binary of this build (in the package root, cargo's test directory):
/// exit code, stdout, stderr.
pub fn incc(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_incc")).args(args).output().expect("run incc");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// A fresh path in this process's scratch folder: tests run in parallel, so every call
/// gets its own folder (a shared file was once read half-written by another test).
pub fn scratch(name: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("incc-test-{}", std::process::id())).join(n.to_string());
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir.join(name)
}

/// A graph named `t` with one input `x` of `shape`.
pub fn with_input(shape: Shape) -> (Graph, NodeId) {
    let mut g = Graph::new("t");
    let x = g.add(Op::Input, shape, Default::default(), "x", &[]);
    g.inputs.push(x);
    (g, x)
}

/// Adds `op` on `operands`, inferring its shape.
pub fn add(g: &mut Graph, op: Op, operands: &[NodeId]) -> NodeId {
    let shapes: Vec<Shape> = operands.iter().map(|&o| g.node(o).shape.clone()).collect();
    let refs: Vec<&Shape> = shapes.iter().collect();
    let s = incc::ir::infer::infer(&op, &refs).expect("shape");
    let n = format!("n{}", g.node_ids().len());
    g.add(op, s, Default::default(), n, operands)
}

/// Deterministic input values in about [-1, 1] (xorshift from `seed`).
pub fn input(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}
