//! Files incc writes get the mode a plain create would give (issue 22, item 5): `0666` less
//! the umask for a new file, an existing file's own mode when it is replaced, though every
//! write goes through a temporary file renamed into place.

#![cfg(unix)]

mod common;
use common::scratch;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// Runs `incc ARGS` under `umask`; panics unless it succeeds.
fn incc_with_umask(umask: &str, args: &[&str]) {
    let script = format!("umask {umask}; exec \"$0\" \"$@\"");
    let out = Command::new("sh").arg("-c").arg(script).arg(env!("CARGO_BIN_EXE_incc")).args(args).output().expect("sh");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("written").permissions().mode() & 0o777
}

#[test]
fn written_files_honour_the_umask_and_keep_an_existing_mode() {
    let net = format!("{}/tests/user/tour.incep", env!("CARGO_MANIFEST_DIR"));
    for (umask, want) in [("022", 0o644), ("077", 0o600), ("002", 0o664)] {
        let dir = scratch("modes");
        std::fs::create_dir_all(&dir).expect("dir");
        let p = |name: &str| dir.join(name).to_string_lossy().into_owned();
        incc_with_umask(umask, &["graph", &net, "-o", &p("g.dot")]);
        incc_with_umask(umask, &["run", &net, "--output", &p("y.npy")]);
        incc_with_umask(umask, &["compile", &net, "-o", &p("m.o")]);
        incc_with_umask(umask, &["export", &net, "--onnx", &p("m.onnx")]);
        incc_with_umask(umask, &["compile", "--write-profile", &p("p.yaml")]);
        for f in ["g.dot", "y.npy", "m.o", "m.h", "m.onnx", "p.yaml"] {
            assert_eq!(mode(&dir.join(f)), want, "umask {umask}: {f}");
        }
        // Replacing a file keeps its mode.
        std::fs::set_permissions(dir.join("g.dot"), std::fs::Permissions::from_mode(0o640)).expect("chmod");
        incc_with_umask(umask, &["graph", &net, "-o", &p("g.dot")]);
        assert_eq!(mode(&dir.join("g.dot")), 0o640, "umask {umask}: replaced g.dot");
    }
}
