//! A reader that stops early (`incc summary ... | head -1`) ends incc quietly: no panic
//! message on stderr, killed by SIGPIPE like any Unix filter.

#[cfg(unix)]
#[test]
fn closed_stdout_is_not_a_panic() {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};
    // More than a pipe holds (64 KiB), so a write must come after the close.
    let arch = concat!(env!("CARGO_MANIFEST_DIR"), "/architectures/inception_resnet_v2.incep");
    let mut child = Command::new(env!("CARGO_BIN_EXE_incc"))
        .args(["summary", arch, "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run incc");
    // Read one byte, then close the pipe while incc still has most of its output to write.
    let mut out = child.stdout.take().expect("stdout");
    let mut first = [0u8; 1];
    out.read_exact(&mut first).expect("some output");
    drop(out);
    let mut err = String::new();
    child.stderr.take().expect("stderr").read_to_string(&mut err).expect("stderr");
    let status = child.wait().expect("wait");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(status.signal(), Some(libc::SIGPIPE), "{status:?}: {err}");
}
