//! Compile profiles (`--profile-file`, `--write-profile`): good profiles take effect, flags
//! override them, bad ones are refused with file:line:column; and `--emit-format yaml`.

use incc::profile::Profile;
use std::path::{Path, PathBuf};

mod common;
use common::{incc, scratch};

const NET: &str = "input 3x8x8\ndefault conv nobias bn relu\nc1: conv 4 3x3\nc2: conv 4 1x1\ngap\nflatten\nfc: fc 5\n\
                   output logits\noutput aux { aux_fc: fc 3 }\n";

/// The network, in a file of its own per caller (tests run in parallel).
fn net() -> PathBuf {
    let caller = std::thread::current().name().unwrap_or("main").replace("::", "_");
    let p = scratch(&format!("{caller}.incep"));
    std::fs::write(&p, NET).expect("write");
    p
}

fn write(name: &str, text: &str) -> String {
    let p = scratch(name);
    std::fs::write(&p, text).expect("write");
    p.display().to_string()
}

/// `incc compile --format json` with `args`; the report as JSON.
fn report(args: &[&str]) -> serde_json::Value {
    let n = net();
    let mut all = vec!["compile", n.to_str().unwrap(), "--format", "json"];
    all.extend_from_slice(args);
    let (code, out, err) = incc(&all);
    assert_eq!(code, 0, "{args:?}: {err}");
    serde_json::from_str(&out).expect("json report")
}

#[test]
fn a_profile_sets_the_options_and_flags_override_it() {
    let default = report(&[]);
    let o0 = report(&["-O", "0"]);
    assert_ne!(default["kernels"], o0["kernels"], "-O0 and -O2 must differ for this test to mean anything");
    let p = write("o0.yaml", "opt_level: 0\nthreads: 1\ntier: portable\nseed: 3\n");
    let from_file = report(&["--profile-file", &p]);
    assert_eq!(from_file["kernels"], o0["kernels"]);
    assert_eq!(from_file["passes"].as_array().map(Vec::len), Some(0), "no passes at opt_level 0");
    assert_eq!(from_file["tier"], "portable");
    // The flag wins over the file.
    let overridden = report(&["--profile-file", &p, "-O", "2"]);
    assert_eq!(overridden["kernels"], default["kernels"]);
    // Disabled passes and outputs from the file: the aux output is kept when asked for.
    let p = write("keep.yaml", "disable_passes: [fuse-activation]\noutputs: [logits, aux]\n");
    let r = report(&["--profile-file", &p, "--explain"]);
    let names: Vec<&str> = r["passes"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert!(!names.contains(&"fuse-activation") && names.contains(&"fold-batch-norm"), "{names:?}");
    let n = net();
    let (code, out, err) = incc(&["run", n.to_str().unwrap(), "--profile-file", &p]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("output aux: 1x3"), "{out}");
    let (_, out, _) = incc(&["run", n.to_str().unwrap()]);
    assert!(!out.contains("output aux"), "{out}");
}

#[test]
fn weights_are_found_beside_the_profile() {
    let dir = scratch("with_weights");
    std::fs::create_dir_all(&dir).expect("dir");
    let n = net();
    let g = incc::frontend::compile_file(&n).expect("compiles");
    incc::weights::Weights::init(&g, 11).save_safetensors(dir.join("w11.safetensors")).expect("save");
    incc::weights::Weights::init(&g, 12).save_safetensors(dir.join("w12.safetensors")).expect("save");
    // `seed` still seeds the input when the weights come from a file.
    std::fs::write(dir.join("p11.yaml"), "weights: w11.safetensors\nseed: 11\n").expect("write");
    std::fs::write(dir.join("p12.yaml"), "weights: w12.safetensors\nseed: 11\n").expect("write");
    let run = |args: &[&str], out: &str| {
        let o = scratch(out);
        let mut all = vec!["run", n.to_str().unwrap(), "--output", o.to_str().unwrap()];
        all.extend_from_slice(args);
        let (code, _, err) = incc(&all);
        assert_eq!(code, 0, "{args:?}: {err}");
        incc::npy::read_npy(&o).expect("output").1
    };
    // From another working directory, the profile's relative path still finds its weights.
    let p11 = dir.join("p11.yaml").display().to_string();
    let p12 = dir.join("p12.yaml").display().to_string();
    let a = run(&["--profile-file", &p11], "a.npy");
    let b = run(&["--seed", "11"], "b.npy");
    let c = run(&["--profile-file", &p12], "c.npy");
    assert_eq!(a, b, "weights from the file = the seed-11 initialisation");
    assert_ne!(a, c, "other weights, other output");
    // A missing weights file is named with the path it was looked for at.
    std::fs::write(dir.join("q.yaml"), "weights: missing.safetensors\n").expect("write");
    let (code, _, err) =
        incc(&["compile", n.to_str().unwrap(), "--profile-file", dir.join("q.yaml").to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains(&dir.join("missing.safetensors").display().to_string()), "{err}");
}

#[test]
fn write_profile_round_trips() {
    let base = write("base.yaml", "opt_level: 1\nthreads: 2\nseed: 4\ndisable_passes: [fuse-activation]\n");
    let out = scratch("effective.yaml");
    let (code, _, err) = incc(&[
        "compile",
        "--profile-file",
        &base,
        "--seed",
        "9",
        "--outputs",
        "logits",
        "--write-profile",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&out).expect("written");
    assert!(text.starts_with("# incc compile profile"), "{text}");
    let p = Profile::load(&out).expect("loads back");
    assert_eq!(
        p,
        Profile {
            opt_level: Some(1),
            disable_passes: vec!["fuse-activation".into()],
            threads: Some(2),
            tier: Some(incc::Tier::Auto),
            precision: Some(incc::driver::PrecisionChoice::F32),
            outputs: Some(vec!["logits".into()]),
            seed: Some(9),
            weights: None,
        }
    );
    // Written and then used: the same compilation as the flags.
    let a = report(&["--profile-file", out.to_str().unwrap()]);
    let b = report(&["-O", "1", "--threads", "2", "--disable-pass", "fuse-activation", "--outputs", "logits"]);
    assert_eq!(a["kernels"], b["kernels"]);
    assert_eq!(a["steps"], b["steps"]);
    // With a FILE, --write-profile also compiles.
    let n = net();
    let (code, stdout, err) =
        incc(&["compile", n.to_str().unwrap(), "--write-profile", scratch("also.yaml").to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("compiled"), "{stdout}");
    // Unwritable: exit 1 with the path.
    let (code, _, err) = incc(&["compile", "--write-profile", "/nonexistent-dir/p.yaml"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent-dir/p.yaml"), "{err}");
}

#[test]
fn bad_profiles_are_located() {
    let n = net();
    let cases: [(&str, &str, &[&str]); 9] = [
        ("unknown.yaml", "opt_level: 1\nthreds: 2\n", &[":2:1:", "unknown field `threds`", "`threads`"]),
        ("type.yaml", "seed: 1\nthreads: two\n", &[":2:10:", "threads", "invalid type", "\"two\""]),
        ("range.yaml", "opt_level: 7\n", &[":1:12:", "opt_level", "from 0 to 2"]),
        ("zero.yaml", "threads: 0\n", &[":1:10:", "from 1 to 1024"]),
        ("tier.yaml", "tier: fast\n", &[":1:7:", "unknown tier `fast`", "auto, avx512, avx2, portable"]),
        ("list.yaml", "outputs: logits\n", &[":1:10:", "expected a sequence"]),
        ("syntax.yaml", "opt_level: [1\n", &[":2:1:", "flow sequence"]),
        ("negative.yaml", "seed: -1\n", &[":1:7:", "seed"]),
        ("not_a_map.yaml", "- 1\n- 2\n", &[":1:1:", "expected struct Profile"]),
    ];
    for (name, text, needles) in cases {
        let p = write(name, text);
        let (code, _, err) = incc(&["compile", n.to_str().unwrap(), "--profile-file", &p]);
        assert_eq!(code, 1, "{name}: {err}");
        assert!(err.contains(&p), "{name}: no file name in {err}");
        for needle in needles {
            assert!(err.contains(needle), "{name}: expected {needle:?} in {err}");
        }
        assert!(!err.contains("panicked"), "{err}");
    }
    // Unknown pass names are refused by the optimiser as they are from the flag.
    let p = write("pass.yaml", "disable_passes: [fold-batchnorm]\n");
    let (code, _, err) = incc(&["compile", n.to_str().unwrap(), "--profile-file", &p]);
    assert_eq!(code, 1);
    assert!(err.contains("fold-batchnorm") && err.contains("fold-batch-norm"), "{err}");
    // A missing profile file.
    let (code, _, err) = incc(&["compile", n.to_str().unwrap(), "--profile-file", "/nonexistent/p.yaml"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/p.yaml"), "{err}");
    // An empty profile is the default one.
    let p = write("empty.yaml", "# nothing here\n");
    assert_eq!(Profile::load(Path::new(&p)).expect("empty"), Profile::default());
}

#[test]
fn emit_ir_as_yaml() {
    let n = net();
    let (code, text, err) = incc(&["compile", n.to_str().unwrap(), "--emit", "ir"]);
    assert_eq!(code, 0, "{err}");
    let (code, yaml, err) = incc(&["compile", n.to_str().unwrap(), "--emit", "ir", "--emit-format", "yaml"]);
    assert_eq!(code, 0, "{err}");
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&yaml).expect("valid YAML");
    let nodes = doc["nodes"].as_sequence().expect("nodes");
    // One node per line of the text form (its first line is the network, then nodes, then outputs).
    let node_lines = text.lines().filter(|l| l.starts_with('%')).count();
    assert_eq!(nodes.len(), node_lines);
    assert_eq!(nodes[0]["op"].as_str(), Some("Input"));
    let conv = &nodes[1];
    assert_eq!(conv["id"].as_str(), Some("%1"));
    assert_eq!(conv["op"]["Conv2d"]["out_channels"].as_u64(), Some(4));
    assert_eq!(conv["op"]["Conv2d"]["kernel"][0].as_u64(), Some(3));
    assert_eq!(conv["operands"][0].as_str(), Some("%0"));
    assert_eq!(conv["shape"][1].as_u64(), Some(4));
    assert_eq!(doc["outputs"][0]["name"].as_str(), Some("logits"));
    // After the optimiser the batch norms are folded and the ReLUs fused into the convolutions.
    let (code, yaml, err) = incc(&["compile", n.to_str().unwrap(), "--emit", "opt-ir", "--emit-format", "yaml"]);
    assert_eq!(code, 0, "{err}");
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&yaml).expect("valid YAML");
    let ops: Vec<&serde_yaml_ng::Value> = doc["nodes"].as_sequence().expect("nodes").iter().map(|n| &n["op"]).collect();
    assert!(ops.iter().all(|op| op.get("BatchNorm").is_none() && op.as_str() != Some("Relu")), "{yaml}");
    let convs: Vec<_> = ops.iter().filter_map(|op| op.get("Conv2d")).collect();
    assert_eq!(convs.len(), 2);
    assert!(convs.iter().all(|c| c["epilogue"]["relu"].as_bool() == Some(true)), "{yaml}");
    // --emit-format needs --emit.
    let (code, _, err) = incc(&["compile", n.to_str().unwrap(), "--emit-format", "yaml"]);
    assert_eq!(code, 2, "{err}");
}
