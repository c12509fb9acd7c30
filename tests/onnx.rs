//! ONNX export (`incc export --onnx`): the structure of the files, decoded back with incc's
//! own protobuf messages (always run), and their numbers, checked by ONNX Runtime against
//! `incc run` with `conformance/onnx_check.py` (run when Python has `onnxruntime`, `onnx` and
//! `numpy`; required when `INCC_REQUIRE_ORT=1`, as `.ci/run` sets it).

use incc::Compiler;
use incc::export::onnx::{self, BATCH, IR_VERSION, OPSET};
use incc::export::proto::{AttributeProto, ModelProto, NodeProto, ValueInfoProto, data_type};
use prost::Message;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("incc-onnx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir.join(name)
}

/// Exports `graph` as `incc export` does (dead outputs removed, nothing else) and decodes the
/// bytes back.
fn export(graph: incc::ir::Graph, compiler: Compiler) -> (incc::ir::Graph, incc::weights::Weights, ModelProto) {
    let (g, w) = compiler.select_outputs(graph).expect("select outputs");
    let bytes = onnx::to_bytes(&g, &w).expect("export");
    let model = ModelProto::decode(bytes.as_slice()).expect("decodes");
    (g, w, model)
}

fn export_str(src: &str) -> ModelProto {
    export(incc::frontend::compile_str("net.incep", src).expect("compiles"), Compiler::new().seed(1)).2
}

/// `op_type -> count`.
fn histogram(m: &ModelProto) -> BTreeMap<String, usize> {
    let mut h = BTreeMap::new();
    for n in &m.graph.as_ref().expect("graph").node {
        *h.entry(n.op_type.clone().unwrap_or_default()).or_default() += 1;
    }
    h
}

fn nodes<'a>(m: &'a ModelProto, op_type: &'a str) -> impl Iterator<Item = &'a NodeProto> {
    m.graph.as_ref().expect("graph").node.iter().filter(move |n| n.op_type.as_deref() == Some(op_type))
}

fn attr<'a>(n: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    n.attribute.iter().find(|a| a.name.as_deref() == Some(name))
}

fn attr_ints(n: &NodeProto, name: &str) -> Vec<i64> {
    attr(n, name).unwrap_or_else(|| panic!("{n:?} has no `{name}`")).ints.clone()
}

/// `(name, dims)` of a graph input or output; the symbolic batch prints as `N`.
fn signature(v: &ValueInfoProto) -> (String, Vec<String>) {
    let t = v.r#type.as_ref().and_then(|t| t.tensor_type.as_ref()).expect("a tensor type");
    assert_eq!(t.elem_type, Some(data_type::FLOAT));
    let dims = t.shape.as_ref().expect("a shape").dim.iter();
    let dims = dims.map(|d| d.dim_param.clone().unwrap_or_else(|| d.dim_value.expect("a size").to_string()));
    (v.name.clone().unwrap_or_default(), dims.collect())
}

/// Every node reads only graph inputs, initializers and values of earlier nodes, and every
/// value is defined once.
fn assert_topological(m: &ModelProto) {
    let g = m.graph.as_ref().expect("graph");
    let mut defined: HashSet<&str> = g.input.iter().filter_map(|v| v.name.as_deref()).collect();
    for t in &g.initializer {
        assert!(defined.insert(t.name.as_deref().expect("named")), "initializer {:?} defined twice", t.name);
    }
    for n in &g.node {
        for i in &n.input {
            assert!(defined.contains(i.as_str()), "{:?} reads `{i}` before it is defined", n.name);
        }
        for o in &n.output {
            assert!(defined.insert(o), "`{o}` defined twice");
        }
    }
    for o in &g.output {
        assert!(defined.contains(o.name.as_deref().unwrap_or_default()), "output {:?} is not computed", o.name);
    }
}

#[test]
fn tiny_exports_its_layers_and_weights_exactly() {
    let path = root().join("tests/user/tiny.incep");
    let graph = incc::frontend::compile_file(&path).expect("compiles");
    let (g, w, m) = export(graph, Compiler::new().seed(3));

    assert_eq!(m.ir_version, Some(IR_VERSION));
    assert_eq!((IR_VERSION, OPSET), (8, 17));
    assert_eq!(m.opset_import.len(), 1);
    assert_eq!(m.opset_import[0].domain.as_deref(), Some(""));
    assert_eq!(m.opset_import[0].version, Some(17));
    assert_eq!(m.producer_name.as_deref(), Some("incc"));
    let graph = m.graph.as_ref().expect("graph");
    assert_eq!(graph.name.as_deref(), Some("tiny"));
    let n = BATCH.to_string();
    let sig = |d: &[&str]| d.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(graph.input.iter().map(signature).collect::<Vec<_>>(), [("image".into(), sig(&[&n, "3", "32", "32"]))]);
    assert_eq!(graph.output.iter().map(signature).collect::<Vec<_>>(), [("logits".into(), sig(&[&n, "10"]))]);

    // stem, m1 (b1, b3_reduce, b3, pool.proj), m2 (the same): 9 conv + BN + ReLU.
    let expected: BTreeMap<String, usize> = [
        ("BatchNormalization", 9),
        ("Concat", 2),
        ("Conv", 9),
        ("Flatten", 1),
        ("Gemm", 1),
        ("GlobalAveragePool", 1),
        ("MaxPool", 2),
        ("Relu", 9),
    ]
    .map(|(k, v)| (k.to_string(), v))
    .into();
    assert_eq!(histogram(&m), expected);
    assert_eq!(graph.node.len(), 34);
    assert_topological(&m);

    // Initializers: the state-dict keys in order, their shapes, their exact values.
    let specs = g.params();
    assert_eq!(graph.initializer.len(), specs.len());
    for (t, spec) in graph.initializer.iter().zip(&specs) {
        assert_eq!(t.name.as_deref(), Some(spec.key.as_str()));
        assert_eq!(t.dims, spec.shape.iter().map(|&d| d as i64).collect::<Vec<_>>(), "{}", spec.key);
        assert_eq!(t.data_type, Some(data_type::FLOAT));
        let bytes: Vec<u8> = w.get(&spec.key).expect("weight").data.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(t.raw_data.as_deref(), Some(bytes.as_slice()), "{}", spec.key);
    }
    assert_eq!(graph.initializer[0].name.as_deref(), Some("stem.conv.weight"));
    assert_eq!(graph.initializer[0].dims, [32, 3, 3, 3]);

    // The stem: 3x3, stride 2, padding 1 on every side, no bias, then its batch norm.
    let stem = nodes(&m, "Conv").next().expect("a conv");
    assert_eq!(stem.input, ["image", "stem.conv.weight"]);
    assert_eq!(attr_ints(stem, "kernel_shape"), [3, 3]);
    assert_eq!(attr_ints(stem, "strides"), [2, 2]);
    assert_eq!(attr_ints(stem, "pads"), [1, 1, 1, 1]);
    assert_eq!(attr(stem, "group").and_then(|a| a.i), Some(1));
    let bn = nodes(&m, "BatchNormalization").next().expect("a batch norm");
    assert_eq!(bn.input[0], stem.output[0]);
    assert_eq!(attr(bn, "epsilon").and_then(|a| a.f), Some(0.001));
    let gemm = nodes(&m, "Gemm").next().expect("the classifier");
    assert_eq!(gemm.input[1..], ["fc.weight", "fc.bias"]);
    assert_eq!(attr(gemm, "transB").and_then(|a| a.i), Some(1));
    assert_eq!(gemm.output, ["logits"]);
}

#[test]
fn auxiliary_classifiers_are_dropped_unless_chosen() {
    let path = root().join("tests/fixtures/aux_output/net.incep");
    let graph = incc::frontend::compile_file(&path).expect("compiles");
    let outputs = |m: &ModelProto| -> Vec<String> {
        m.graph.as_ref().expect("graph").output.iter().map(|o| o.name.clone().unwrap_or_default()).collect()
    };
    let keys = |m: &ModelProto| -> Vec<String> {
        m.graph.as_ref().expect("graph").initializer.iter().map(|t| t.name.clone().unwrap_or_default()).collect()
    };
    let (_, _, main) = export(graph.clone(), Compiler::new());
    assert_eq!(outputs(&main), ["logits"]);
    let (g, _, both) = export(graph.clone(), Compiler::new().outputs(Some(vec!["aux".into(), "logits".into()])));
    assert_eq!(outputs(&both), ["aux", "logits"]);
    // The aux head's weights appear only when it is kept.
    let all: Vec<String> = g.params().into_iter().map(|p| p.key).collect();
    assert_eq!(keys(&both), all);
    assert!(keys(&main).len() < all.len(), "{:?} vs {all:?}", keys(&main));
    assert!(keys(&main).iter().all(|k| all.contains(k)));
    assert_topological(&main);
    assert_topological(&both);
    let wrong = Compiler::new().outputs(Some(vec!["nope".into()])).select_outputs(graph);
    assert!(wrong.is_err_and(|e| e.to_string().contains("no output named `nope`")));
}

#[test]
fn ceil_mode_pools_become_explicit_padding() {
    // 8 -> 4 with 3x3 stride 2 in ceil mode: the last window starts at 6 and ends at 9, one
    // past the input, so the padding after is 1 and ONNX's floor mode gives 4.
    let m = export_str("input 2x8x8\nmaxpool 3x3 stride 2 ceil\noutput y\n");
    let pool = nodes(&m, "MaxPool").next().expect("max pool");
    assert_eq!(attr_ints(pool, "pads"), [0, 0, 1, 1]);
    assert!(attr(pool, "ceil_mode").is_none());
    // Counting the padding, a ceil-mode window that runs past it divides by the window
    // clipped to the declared padding: the padding becomes a `Pad`, the rest is excluded.
    // 8 padded to 10, 3x3 stride 2 ceil: 5 windows, the last over 8..11, one past the padding.
    let m = export_str("input 2x8x8\navgpool 3x3 stride 2 pad 1 ceil\noutput y\n");
    assert_eq!(histogram(&m).get("Pad"), Some(&1));
    let pool = nodes(&m, "AveragePool").next().expect("avg pool");
    assert_eq!(attr(pool, "count_include_pad").and_then(|a| a.i), Some(0));
    assert_eq!(attr_ints(pool, "pads"), [0, 0, 1, 1]);
    // Within the declared padding: one `AveragePool` that counts it.
    let m = export_str("input 2x8x8\navgpool 3x3 stride 1 pad 1\noutput y\n");
    assert_eq!(histogram(&m).get("Pad"), None);
    let pool = nodes(&m, "AveragePool").next().expect("avg pool");
    assert_eq!(attr(pool, "count_include_pad").and_then(|a| a.i), Some(1));
    assert_eq!(attr_ints(pool, "pads"), [1, 1, 1, 1]);
}

#[test]
fn lrn_l2_norm_and_scaled_sums_map_to_their_onnx_forms() {
    let m = export_str(
        "input 8x5x5\nc: conv 8 1x1\nlrn size 5 alpha 0.001 beta 0.75 k 2\nlrn size 4\n\
         residual scale 0.25 { d: conv 8 1x1 }\ngap\nflatten\nl2norm\noutput y\n",
    );
    let h = histogram(&m);
    // Size 5 is ONNX's `LRN` with the same constants; size 4 is written out.
    assert_eq!(h.get("LRN"), Some(&1));
    let lrn = nodes(&m, "LRN").next().expect("lrn");
    assert_eq!(attr(lrn, "size").and_then(|a| a.i), Some(5));
    assert_eq!(attr(lrn, "alpha").and_then(|a| a.f), Some(0.001));
    assert_eq!(attr(lrn, "bias").and_then(|a| a.f), Some(2.0));
    assert_eq!(h.get("Pow"), Some(&1));
    let window = nodes(&m, "AveragePool").next().expect("the even LRN's window");
    assert_eq!(attr_ints(window, "kernel_shape"), [4, 1, 1]);
    assert_eq!(attr_ints(window, "pads"), [2, 0, 0, 1, 0, 0]);
    // x + 0.25 * d: `Mul` then `Add` (the LRN adds one `Mul` and one `Add` of its own).
    assert_eq!((h.get("Mul"), h.get("Add")), (Some(&3), Some(&2)));
    // x / max(||x||, eps).
    assert_eq!((h.get("ReduceL2"), h.get("Max"), h.get("Div")), (Some(&1), Some(&1), Some(&2)));
    assert_topological(&m);
}

#[test]
fn optimised_graphs_export_their_fused_forms() {
    let path = root().join("tests/fixtures/bn_inception/net.incep");
    let graph = incc::frontend::compile_file(&path).expect("compiles");
    let (g, w, _) = Compiler::new().optimize(graph).expect("optimises");
    let m = ModelProto::decode(onnx::to_bytes(&g, &w).expect("export").as_slice()).expect("decodes");
    let h = histogram(&m);
    assert_eq!(h.get("BatchNormalization"), None, "{h:?}");
    assert!(h.get("Slice").is_some_and(|&n| n > 0), "fuse-sibling-1x1 made slices: {h:?}");
    assert_topological(&m);
}

fn incc(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_incc")).args(args).output().expect("run incc");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn the_command_writes_the_file_or_nothing() {
    let net = root().join("tests/user/tiny.incep");
    let net = net.to_str().expect("utf-8 path");
    let out = scratch("tiny.onnx");
    let (code, err) = incc(&["export", net, "--onnx", out.to_str().unwrap(), "--seed", "3"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("ONNX opset 17, 34 nodes"), "{err}");
    let m = ModelProto::decode(std::fs::read(&out).expect("written").as_slice()).expect("decodes");
    let graph = incc::frontend::compile_file(root().join("tests/user/tiny.incep")).expect("compiles");
    assert_eq!(m, export(graph, Compiler::new().seed(3)).2, "the CLI writes what the library makes");

    // A failed export leaves an existing file as it was.
    std::fs::write(&out, b"old").expect("write");
    let (code, err) = incc(&["export", net, "--onnx", out.to_str().unwrap(), "--outputs", "nope"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no output named `nope`"), "{err}");
    assert_eq!(std::fs::read(&out).expect("still there"), b"old");

    let (code, err) = incc(&["export", net, "--onnx", "/nonexistent-dir/x.onnx"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/nonexistent-dir/x.onnx") && !err.contains("panicked"), "{err}");
    assert!(!Path::new("/nonexistent-dir").exists());

    // A pool ONNX cannot express: padding that excludes itself, as large as the window.
    let bad = scratch("bad.incep");
    std::fs::write(&bad, "network bad\ninput 3x6x6\np: avgpool 2x2 stride 1 pad 2 exclude_pad\noutput y\n").unwrap();
    let target = scratch("bad.onnx");
    let (code, err) = incc(&["export", bad.to_str().unwrap(), "--onnx", target.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot export to ONNX: network `bad`, layer `p`"), "{err}");
    assert!(!target.exists());
}

/// The Python interpreter to run the checker with: `$INCC_PYTHON` or `python3`.
fn python() -> String {
    std::env::var("INCC_PYTHON").unwrap_or_else(|_| "python3".into())
}

#[test]
fn onnxruntime_agrees_with_incc() {
    let py = python();
    let probe = Command::new(&py).args(["-c", "import onnxruntime, onnx, numpy"]).output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        let why = match &probe {
            Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
            Err(e) => e.to_string(),
        };
        assert!(
            std::env::var("INCC_REQUIRE_ORT").as_deref() != Ok("1"),
            "INCC_REQUIRE_ORT=1 but `{py}` cannot import onnxruntime, onnx and numpy: {why}"
        );
        eprintln!("skipped: `{py}` cannot import onnxruntime, onnx and numpy (set INCC_PYTHON): {why}");
        return;
    }
    // Every small network of the repository: each op and each padding and pooling corner
    // case (the fixtures), as written (-O0) and optimised (-O2: folded batch norms, fused
    // epilogues, slices of merged 1x1 convolutions).
    let mut nets = vec![root().join("tests/user/tiny.incep"), root().join("tests/user/mini_inception.incep")];
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(root().join("tests/fixtures"))
        .expect("fixtures")
        .map(|e| e.expect("entry").path().join("net.incep"))
        // Network cases only: `tests/fixtures/images/` holds preprocessing fixtures.
        .filter(|p| p.is_file())
        .collect();
    fixtures.sort();
    nets.extend(fixtures);
    for level in ["0", "2"] {
        let out = Command::new(&py)
            .arg(root().join("conformance/onnx_check.py"))
            .args(["--incc", env!("CARGO_BIN_EXE_incc"), "-O", level])
            .args(&nets)
            .output()
            .expect("run the checker");
        let text = String::from_utf8_lossy(&out.stdout);
        eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "onnx_check.py -O {level} failed:\n{text}");
        assert!(text.contains(" passed, 0 failed"), "{text}");
    }
}

/// `export` takes what every compiling command takes (issue 22, item 4): `--disable-pass`
/// and `--profile-file` (flags over the file), and says what of a profile cannot apply.
#[test]
fn export_takes_passes_and_profiles() {
    let net = root().join("tests/user/tour.incep");
    let out = scratch("flags.onnx");
    let nodes = |args: &[&str]| -> (usize, String) {
        let mut all = vec!["export", net.to_str().unwrap(), "--onnx", out.to_str().unwrap()];
        all.extend_from_slice(args);
        let o = Command::new(env!("CARGO_BIN_EXE_incc")).args(&all).output().expect("run incc");
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{args:?}: {err}");
        let m = ModelProto::decode(std::fs::read(&out).expect("written").as_slice()).expect("decodes");
        (m.graph.expect("graph").node.len(), err)
    };
    let (as_written, _) = nodes(&[]);
    let (folded, _) = nodes(&["-O", "2"]);
    let (unfolded, _) = nodes(&["-O", "2", "--disable-pass", "fold-batch-norm"]);
    assert!(folded < unfolded && folded < as_written, "{folded} {unfolded} {as_written}");
    let profile = scratch("export.yaml");
    std::fs::write(&profile, "opt_level: 2\ntier: avx2\n").expect("write");
    let (from_file, err) = nodes(&["--profile-file", profile.to_str().unwrap()]);
    assert_eq!(from_file, folded);
    assert!(err.contains("tier has no effect on an export"), "{err}");
    let (flag_wins, _) = nodes(&["--profile-file", profile.to_str().unwrap(), "-O", "0"]);
    assert_eq!(flag_wins, as_written);
    let o = Command::new(env!("CARGO_BIN_EXE_incc"))
        .args(["export", net.to_str().unwrap(), "--onnx", out.to_str().unwrap(), "-O", "1", "--disable-pass", "nope"])
        .output()
        .expect("run incc");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown pass `nope`"));
}
