//! `incc bench` draws a progress bar on stderr only when stderr is a terminal: piped, its
//! output has no bar, carriage returns or escape sequences. The same run under a
//! pseudo-terminal (`script` from util-linux) does show the bar, so the first check means something.

use std::path::PathBuf;
use std::process::Command;

/// About 80 M multiply-adds a run: 300 runs take well over the bar's one-second threshold.
const NET: &str = "input 3x64x64\ndefault conv nobias relu\nc1: conv 32 3x3 pad 1\nc2: conv 32 3x3 pad 1\n\
                   c3: conv 32 3x3 pad 1\ngap\nflatten\nfc: fc 10\noutput logits\n";

fn net() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("incc-progress-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let p = dir.join("bench.incep");
    std::fs::write(&p, NET).expect("write");
    p
}

const ARGS: [&str; 7] = ["--iters", "300", "--warmup", "2", "--threads", "1", "--seed"];

#[test]
fn no_bar_when_stderr_is_not_a_terminal() {
    let n = net();
    let mut args = vec!["bench", n.to_str().unwrap()];
    args.extend_from_slice(&ARGS);
    args.push("1");
    let t = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_incc")).args(&args).output().expect("run");
    let secs = t.elapsed().as_secs_f64();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("median") && stdout.contains("over 300 runs"), "{stdout}");
    assert!(stderr.is_empty(), "stderr of a piped bench: {stderr:?}");
    assert!(!stdout.contains('\r') && !stdout.contains('\x1b'), "{stdout:?}");
    eprintln!("bench took {secs:.1} s");
}

#[test]
fn bar_on_a_terminal() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("`script` (util-linux) is not installed: terminal case not checked");
        return;
    }
    let n = net();
    let mut cmd = format!("{} bench {}", env!("CARGO_BIN_EXE_incc"), n.display());
    // 1000 runs on the portable tier stay above the one-second threshold of the bar (300
    // took 0.86 s on an idle Sapphire Rapids core).
    for a in ARGS {
        cmd.push(' ');
        cmd.push_str(if a == "300" { "1000" } else { a });
    }
    cmd.push_str(" 1 --tier portable");
    // `script -qec CMD /dev/null` runs CMD on a pseudo-terminal and copies what it shows.
    let out = Command::new("script").args(["-qec", &cmd, "/dev/null"]).output().expect("run script");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("timing [") && shown.contains("/1002"), "no bar on a terminal: {shown:?}");
    assert!(shown.contains("over 1000 runs"), "{shown:?}");
}
