//! Helpers the command-line tests share (`mod common;` in each test file).
#![allow(dead_code)] // each test binary uses its own subset

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
