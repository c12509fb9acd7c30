//! Unit tests of the weights, and graph-building helpers other modules' tests import.

use super::file::{f16_to_f32, to_f32};
use super::*;
use crate::diag::Span;
use crate::ir::infer::infer;
use crate::ir::{BatchNorm, Conv2d, Linear, NodeId, Op, Pad, Shape};
use safetensors::{Dtype, SafeTensors};
use std::path::Path;

/// Adds `op` on `operands` with its inferred shape.
pub(crate) fn add(g: &mut Graph, op: Op, operands: &[NodeId]) -> NodeId {
    let shapes: Vec<Shape> = operands.iter().map(|&o| g.node(o).shape.clone()).collect();
    let refs: Vec<&Shape> = shapes.iter().collect();
    let shape = infer(&op, &refs).expect("a valid test graph");
    let name = format!("n{}", g.node_ids().len());
    g.add(op, shape, Span::default(), name, operands)
}

/// A graph with one input of `shape`.
pub(crate) fn with_input(shape: Shape) -> (Graph, NodeId) {
    let mut g = Graph::new("test");
    let x = g.add(Op::Input, shape, Span::default(), "x", &[]);
    g.inputs.push(x);
    (g, x)
}

pub(crate) fn conv(key: &str, cin: usize, cout: usize, k: [usize; 2], bias: bool) -> Op {
    Op::Conv2d(Conv2d {
        out_channels: cout,
        in_channels: cin,
        kernel: k,
        stride: [1, 1],
        pad: Pad::default(),
        groups: 1,
        key: key.into(),
        bias,
        epilogue: Default::default(),
        winograd: None,
    })
}

/// conv(3->4, 3x3, bias) -> bn -> flatten -> linear(4*4*4 -> 5).
fn small_net() -> Graph {
    let (mut g, x) = with_input(Shape::nchw(3, 6, 6));
    let c = add(&mut g, conv("features.conv", 3, 4, [3, 3], true), &[x]);
    let b = add(&mut g, Op::BatchNorm(BatchNorm { channels: 4, eps: 1e-3, key: "features.bn".into() }), &[c]);
    let f = add(&mut g, Op::Flatten, &[b]);
    let l = add(
        &mut g,
        Op::Linear(Linear { in_features: 64, out_features: 5, key: "fc".into(), bias: true, relu: false }),
        &[f],
    );
    g.outputs.push(("logits".into(), l));
    g
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temporary directory")
}

/// Writes `tensors` (name, dtype, shape, little-endian bytes) with the safetensors crate.
fn write_raw(path: &Path, tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.to_string(), safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

fn f32_bytes(n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect()
}

/// Every tensor of `g` as F32 bytes, except those for which `skip` is true.
fn tensors_of(g: &Graph, skip: impl Fn(&str) -> bool) -> Vec<(String, Dtype, Vec<usize>, Vec<u8>)> {
    g.params()
        .into_iter()
        .filter(|p| !skip(&p.key))
        .map(|p| {
            let n = p.shape.iter().product();
            (p.key, Dtype::F32, p.shape, f32_bytes(n))
        })
        .collect()
}

fn load_error(path: &Path, g: &Graph) -> String {
    match Weights::load_safetensors(path, g) {
        Err(Error::Weights { path: p, message }) => {
            assert_eq!(p, path.display().to_string());
            message
        }
        other => panic!("expected a weights error, got {other:?}"),
    }
}

fn as_refs(v: &[(String, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> {
    v.iter().map(|(n, d, s, b)| (n.as_str(), *d, s.clone(), b.clone())).collect()
}

#[test]
fn init_is_deterministic_keyed_and_has_the_right_statistics() {
    let g = small_net();
    let a = Weights::init(&g, 7);
    assert_eq!(a, Weights::init(&g, 7));
    assert_ne!(a.get("fc.weight"), Weights::init(&g, 8).get("fc.weight"));
    assert_eq!(a.len(), 2 + 4 + 2);
    for p in g.params() {
        let t = a.get(&p.key).unwrap();
        assert_eq!(t.shape, p.shape);
        assert_eq!(t.data.len(), p.shape.iter().product::<usize>());
    }
    // Adding a layer leaves the others' values alone.
    let mut g2 = g.clone();
    let out = g2.outputs[0].1;
    let extra = add(
        &mut g2,
        Op::Linear(Linear { in_features: 5, out_features: 2, key: "head".into(), bias: false, relu: false }),
        &[out],
    );
    g2.outputs[0].1 = extra;
    let b = Weights::init(&g2, 7);
    assert_eq!(b.len(), a.len() + 1);
    for (k, t) in a.iter() {
        assert_eq!(b.get(k), Some(t), "{k}");
    }
    // Bit-exact values, pinned so that a platform or refactoring change shows up.
    let w = &a.get("features.conv.weight").unwrap().data;
    let pinned: Vec<u32> = w[..3].iter().map(|v| v.to_bits()).collect();
    assert_eq!(pinned, PINNED_CONV_WEIGHT_BITS);
    // He-normal: std sqrt(2/27) for the 3x3x3 conv. 108 samples: within 25%.
    let std = (w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32).sqrt();
    assert!((std / (2.0f32 / 27.0).sqrt() - 1.0).abs() < 0.25, "std {std}");
    let bias = &a.get("features.conv.bias").unwrap().data;
    assert!(bias.iter().all(|b| b.abs() <= 1.0 / 27f32.sqrt()));
    let gamma = &a.get("features.bn.weight").unwrap().data;
    let var = &a.get("features.bn.running_var").unwrap().data;
    let mean = &a.get("features.bn.running_mean").unwrap().data;
    for v in gamma.iter().chain(var) {
        assert!((0.9..=1.1).contains(v) && *v != 1.0, "{v}");
    }
    assert!(mean.iter().all(|m| m.abs() <= 0.1) && mean.iter().any(|m| *m != 0.0));
}

const PINNED_CONV_WEIGHT_BITS: [u32; 3] = [3201431406, 1049708768, 3188855700];

/// `a` with every tensor generated now (a copy whose tensors are all dense).
fn dense_copy(a: &Weights) -> Weights {
    let mut d = Weights::new();
    for (k, t) in a.clone().iter() {
        d.insert(k, t.clone());
    }
    d
}

/// Rows `rows` of `key` read through [`Weights::columns`] in blocks `width` wide, as
/// rows (`[row][column]`).
fn rows_of_by(w: &Weights, key: &str, rows: Range<usize>, width: usize) -> Vec<f32> {
    let reader = w.columns(key).unwrap();
    let len = reader.row_len();
    let mut columns = vec![f32::NAN; len * width];
    reader.block(rows.clone(), width).unwrap().read(0, 1, len, &mut columns, width).unwrap();
    let n = rows.len();
    assert!(columns.chunks_exact(width).all(|c| c[n..].iter().all(|&v| v == 0.0)), "lanes past the rows are zero");
    (0..n).flat_map(|k| (0..len).map(move |c| (k, c))).map(|(k, c)| columns[c * width + k]).collect()
}

/// [`rows_of_by`] one vector wide.
fn rows_of(w: &Weights, key: &str, rows: Range<usize>) -> Vec<f32> {
    rows_of_by(w, key, rows, LANES)
}

#[test]
fn lazy_tensors_read_scale_and_concatenate_like_dense_ones() {
    let g = small_net();
    let mut lazy = Weights::init(&g, 11);
    let mut dense = dense_copy(&lazy);
    assert!(lazy.resident("features.conv.weight").is_none(), "init generates nothing");
    assert!(dense.resident("features.conv.weight").is_some());
    // Rows of a lazy tensor are generated without being kept.
    for w in [&lazy, &dense] {
        assert_eq!(rows_of(w, "features.conv.weight", 1..3), dense.get("features.conv.weight").unwrap().data[27..81]);
    }
    assert!(lazy.resident("features.conv.weight").is_none());
    let reader = lazy.columns("features.conv.weight").unwrap();
    assert!(reader.block(3..5, LANES).is_err());
    assert!(reader.block(0..2, 8).is_err() && reader.block(0..2, 80).is_err());
    let block = reader.block(0..2, LANES).unwrap();
    assert!(block.read(0, 1, 28, &mut [0.0; 28 * LANES], LANES).is_err(), "27 columns");
    assert!(block.read(0, 1, 2, &mut [0.0; LANES + 15], LANES).is_err(), "too short");
    // Every other column, into every third vector.
    let mut strided = vec![-1.0; 3 * 3 * LANES];
    block.read(1, 2, 3, &mut strided, 3 * LANES).unwrap();
    let rows = rows_of(&lazy, "features.conv.weight", 0..2);
    for t in 0..3 {
        assert_eq!(strided[t * 3 * LANES..][..2], [rows[1 + 2 * t], rows[27 + 1 + 2 * t]]);
        assert!(strided[t * 3 * LANES + LANES..][..2 * LANES].iter().all(|&v| v == -1.0), "left alone");
    }
    // Scaling and concatenating give the same values lazily and eagerly, and scaling a
    // second time (which generates the tensor) rounds after each scale, as eagerly.
    for w in [&mut lazy, &mut dense] {
        w.scale_rows("features.conv.weight", &[0.5, 3.0, -1.25, 1e-3]).unwrap();
        w.concat_rows("both", &["features.conv.weight", "features.conv.weight"]).unwrap();
        w.concat_rows("three", &["features.conv.weight", "features.conv.weight", "features.conv.weight"]).unwrap();
        w.concat_rows("twice", &["both", "both"]).unwrap();
        w.scale_rows("both", &[1.5; 8]).unwrap();
        w.concat_rows("biases", &["features.conv.bias", "fc.bias"]).unwrap();
        w.scale_rows("fc.weight", &[0.25]).unwrap();
        assert!(w.scale_rows("fc.bias", &[1.0; 3]).is_err());
        assert!(w.concat_rows("bad", &["fc.weight", "features.conv.weight"]).is_err());
    }
    assert!(lazy.resident("features.conv.weight").is_none() && lazy.resident("biases").is_none());
    assert!(lazy.resident("three").is_none() && lazy.resident("twice").is_none());
    assert!(lazy.resident("both").is_some(), "scaled twice: generated");
    assert_eq!(lazy.shape("twice"), Some(&[16, 3, 3, 3][..]));
    assert_eq!(lazy.get("biases").unwrap().shape, [9]);
    // Blocks within one part and across parts.
    for (key, rows) in [("both", 3..6), ("three", 2..12), ("three", 3..5), ("twice", 0..16), ("twice", 7..8)] {
        let want = &dense.get(key).unwrap().data[rows.start * 27..rows.end * 27];
        assert_eq!(rows_of(&lazy, key, rows.clone()), want, "{key} {rows:?}");
        for width in [32, MAX_ROWS] {
            assert_eq!(rows_of_by(&lazy, key, rows.clone(), width), want, "{key} {rows:?} {width}");
            assert_eq!(rows_of_by(&dense, key, rows.clone(), width), want, "{key} {rows:?} {width}");
        }
    }
    assert_eq!(lazy, dense);
    // A mutated tensor is dense from then on.
    lazy.get_mut("fc.bias").unwrap().data[0] = 7.0;
    assert_eq!(lazy.resident("fc.bias").unwrap().data[0], 7.0);
}

#[test]
fn save_then_load_round_trips() {
    let g = small_net();
    let w = Weights::init(&g, 3);
    let dir = tmp();
    let p = dir.path().join("w.safetensors");
    w.save_safetensors(&p).unwrap();
    assert_eq!(Weights::load_safetensors(&p, &g).unwrap(), w);
    // The crate reads it back too, with every tensor as F32.
    let bytes = std::fs::read(&p).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.len(), w.len());
    assert!(st.iter().all(|(_, v)| v.dtype() == Dtype::F32));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file is left");
}

#[test]
fn saving_is_atomic() {
    let g = small_net();
    let w = Weights::init(&g, 3);
    let dir = tmp();
    let p = dir.path().join("w.safetensors");
    w.save_safetensors(&p).unwrap();
    let before = std::fs::read(&p).unwrap();
    let mut bad = w.clone();
    bad.insert("broken", Tensor { shape: vec![2, 2], data: vec![1.0] });
    let e = bad.save_safetensors(&p).unwrap_err().to_string();
    assert!(e.contains("`broken` of shape [2, 2] has 1 values"), "{e}");
    let e = w.save_safetensors(dir.path().join("missing/dir/w.safetensors")).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    assert_eq!(std::fs::read(&p).unwrap(), before);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn num_batches_tracked_is_ignored_and_half_precision_converted() {
    let g = small_net();
    let dir = tmp();
    let p = dir.path().join("w.safetensors");
    let mut t = tensors_of(&g, |k| k == "features.bn.weight");
    // f16 bit patterns: 1.0, -2.0, 65504 (largest), 2^-24 (smallest subnormal).
    let halves: Vec<u8> = [0x3c00u16, 0xc000, 0x7bff, 0x0001].iter().flat_map(|h| h.to_le_bytes()).collect();
    t.push(("features.bn.weight".into(), Dtype::F16, vec![4], halves));
    t.push(("features.bn.num_batches_tracked".into(), Dtype::I64, vec![], 5i64.to_le_bytes().to_vec()));
    write_raw(&p, &as_refs(&t));
    let w = Weights::load_safetensors(&p, &g).unwrap();
    assert_eq!(w.get("features.bn.weight").unwrap().data, [1.0, -2.0, 65504.0, 2f32.powi(-24)]);
    assert_eq!(w.get("fc.bias").unwrap().data, [0.0, 1.0, 2.0, 3.0, 4.0]);
    assert!(w.get("features.bn.num_batches_tracked").is_none());
}

#[test]
fn f16_and_bf16_convert_exactly() {
    assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
    assert_eq!(f16_to_f32(0x03ff), 1023.0 * 2f32.powi(-24));
    assert_eq!(f16_to_f32(0x0400), 2f32.powi(-14));
    assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
    assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
    assert_eq!(f16_to_f32(0xfc00), f32::NEG_INFINITY);
    assert!(f16_to_f32(0x7e00).is_nan());
    let bf = to_f32(Dtype::BF16, &[0x80, 0x3f, 0x49, 0xc0]).unwrap();
    assert_eq!(bf, [1.0, -3.140625]);
}

#[test]
fn a_mismatch_lists_everything_at_once() {
    let g = small_net();
    let dir = tmp();
    let p = dir.path().join("w.safetensors");
    let mut t = tensors_of(&g, |k| k == "fc.bias" || k == "features.bn.running_var" || k.starts_with("features.conv"));
    t.push(("features.conv.weight".into(), Dtype::F32, vec![4, 3, 1, 1], f32_bytes(12)));
    t.push(("features.conv.bias".into(), Dtype::I64, vec![4], vec![0; 32]));
    t.push(("classifier.weight".into(), Dtype::F32, vec![2, 2], f32_bytes(4)));
    t.push(("bn.num_batches_tracked".into(), Dtype::F32, vec![], f32_bytes(1)));
    write_raw(&p, &as_refs(&t));
    let m = load_error(&p, &g);
    let expected = "the weights do not fit network `test`
  2 missing tensors:
    `features.bn.running_var` F32 [4]
    `fc.bias` F32 [5]
  2 unexpected tensors:
    `bn.num_batches_tracked` F32 []
    `classifier.weight` F32 [2, 2]
  2 tensors with the wrong shape or dtype (F16, BF16 and F64 are converted):
    `features.conv.weight`: expected F32 [4, 3, 3, 3], found F32 [4, 3, 1, 1]
    `features.conv.bias`: expected F32 [4], found I64 [4]";
    assert_eq!(m, expected);
}

#[test]
fn long_lists_are_cut_at_twenty() {
    let (mut g, x) = with_input(Shape::nchw(1, 4, 4));
    let mut last = x;
    for i in 0..25 {
        last = add(&mut g, conv(&format!("c{i:02}"), 1, 1, [1, 1], false), &[last]);
    }
    g.outputs.push(("y".into(), last));
    let dir = tmp();
    let p = dir.path().join("w.safetensors");
    write_raw(&p, &[]);
    let m = load_error(&p, &g);
    assert!(m.contains("25 missing tensors"), "{m}");
    assert!(m.contains("`c19.weight` F32 [1, 1, 1, 1]\n    ... and 5 more"), "{m}");
    assert!(!m.contains("c20"), "{m}");
}

#[test]
fn corrupt_files_are_clear_errors() {
    let g = small_net();
    let dir = tmp();
    let p = dir.path().join("w.safetensors");
    Weights::init(&g, 1).save_safetensors(&p).unwrap();
    let good = std::fs::read(&p).unwrap();
    let header_len = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&good[8..8 + header_len]).unwrap().to_string();
    let with_header = |h: &str, data_len: usize| with_raw_header(h.as_bytes(), data_len);
    fn with_raw_header(h: &[u8], data_len: usize) -> Vec<u8> {
        let mut v = (h.len() as u64).to_le_bytes().to_vec();
        v.extend(h);
        v.extend(vec![0u8; data_len]);
        v
    }
    let mut huge = u64::MAX.to_le_bytes().to_vec();
    huge.extend(b"{}");
    let data_len = good.len() - 8 - header_len;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![], "shorter than the 8-byte header length"),
        (b"GIF89a\x01\x00\x01\x00\x00\x00\x00".to_vec(), "runs past the end of the file"),
        (huge, "runs past the end of the file"),
        (good[..good.len() - 3].to_vec(), "truncated or extended"),
        (good[..8 + header_len / 2].to_vec(), "runs past the end of the file"),
        ([good.clone(), vec![0; 4]].concat(), "truncated or extended"),
        (with_header("this is not json", 0), "not a safetensors JSON header"),
        (with_raw_header(b"{\"\xff\xfe\": 1}", 0), "not UTF-8"),
        (with_header(r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,1000000]}}"#, 8), "do not match its shape"),
        (with_header(r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, 4), "truncated or extended"),
        (with_header(r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, 12), "tensor `a` has data offsets"),
        (
            with_header(r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}}"#, 8),
            "too large",
        ),
        (with_header(r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, 8), "do not match its shape"),
        (with_header(&header.replace("F32", "Q99"), data_len), "not a safetensors JSON header"),
    ];
    for (bytes, expected) in cases {
        std::fs::write(&p, &bytes).unwrap();
        let m = load_error(&p, &g);
        assert!(m.contains(expected), "{m:?} should mention {expected:?}");
    }
}

#[test]
fn unreadable_paths_are_io_errors_naming_them() {
    let g = small_net();
    let e = Weights::load_safetensors("/no/such/w.safetensors", &g).unwrap_err();
    assert!(matches!(&e, Error::Io { path, .. } if path == "/no/such/w.safetensors"), "{e:?}");
    let dir = tmp();
    let e = Weights::load_safetensors(dir.path(), &g).unwrap_err();
    assert!(e.to_string().contains("not a regular file"), "{e}");
}

#[test]
fn check_reports_missing_and_mis_shaped_tensors() {
    let g = small_net();
    let mut w = Weights::init(&g, 1);
    assert!(w.check(&g).is_ok());
    w.insert("unused", Tensor { shape: vec![1], data: vec![0.0] });
    assert!(w.check(&g).is_ok(), "extra tensors are allowed");
    w.map.remove("fc.bias");
    w.insert("fc.weight", Tensor { shape: vec![5, 64], data: vec![0.0; 3] });
    let e = w.check(&g).unwrap_err().to_string();
    assert!(e.contains("1 missing tensor:\n    `fc.bias` F32 [5]"), "{e}");
    assert!(e.contains("`fc.weight`: shape [5, 64] holds 320 values, the tensor has 3"), "{e}");
}
