//! Image preprocessing (`preprocess` declarations, `incc run --image`).
//!
//! The fixtures in `tests/fixtures/images/` were written by `conformance/make_image_fixtures.py`:
//! each reference implementation's own transform pipeline (torchvision, timm, pretrainedmodels,
//! facenet-pytorch, all on Pillow) applied to the committed test images, saved subsampled
//! `[:, ::S, ::S]`. Here each `architectures/<arch>.incep` declaration is applied by incc to the
//! same image and compared at the same pixels.
//!
//! Tolerances, in grey levels of the 8-bit resized image (one level is `1/255/std` for `rgb`
//! and `inception`, `1/std` for the 0..255 modes):
//! - PNG: 0.001 levels. incc reimplements Pillow's resampling, so the resized pixels are equal;
//!   what remains is float32 rounding of the normalisation. Measured: 0 for timm,
//!   pretrainedmodels and facenet-pytorch; 1.5e-5 levels for torchvision, whose
//!   `transform_input` composes two affine maps that the `.incep` declaration folds into one.
//! - JPEG: the decoders differ (Pillow's libjpeg-turbo against the `image` crate's zune-jpeg).
//!   Measured: at most 2 levels (bilinear) and 4 levels (bicubic) at any pixel, 0.19 and 0.21
//!   on average; the bounds are 8 and 0.5, about twice that.

use std::path::{Path, PathBuf};

mod common;
use common::incc;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn images() -> PathBuf {
    root().join("tests/fixtures/images")
}

fn preprocess_of(arch: &str) -> incc::preprocess::Preprocess {
    let g = incc::frontend::compile_file(root().join("architectures").join(format!("{arch}.incep")))
        .unwrap_or_else(|e| panic!("{arch}: {e}"));
    g.preprocess.unwrap_or_else(|| panic!("{arch} declares no preprocess"))
}

/// One grey level of the resized image in the units of the network input, per channel.
fn grey_level(p: &incc::preprocess::Preprocess, c: usize) -> f64 {
    use incc::preprocess::Mode;
    let unit = if matches!(p.mode, Mode::Rgb | Mode::Inception) { 1.0 / 255.0 } else { 1.0 };
    unit / p.std[c] as f64
}

/// `(max, mean)` difference in grey levels between incc's preprocessing of `image` by the
/// declaration of `arch` and the reference fixture `<arch>.<tag>.npy`, sampled every `stride`.
fn compare(arch: &str, image: &str, tag: &str, stride: usize) -> (f64, f64) {
    let p = preprocess_of(arch);
    let x = p.load(images().join(image)).expect("image loads");
    let (shape, expected) = incc::npy::read_npy(images().join(format!("{arch}.{tag}.npy"))).expect("fixture");
    let [h, w] = p.crop;
    assert_eq!(x.len(), 3 * h * w, "{arch}");
    assert_eq!(shape, vec![3, h.div_ceil(stride), w.div_ceil(stride)], "{arch}.{tag}: fixture shape");
    let (mut max, mut sum, mut n) = (0f64, 0f64, 0usize);
    for c in 0..3 {
        for (i, y) in (0..h).step_by(stride).enumerate() {
            for (j, xx) in (0..w).step_by(stride).enumerate() {
                let a = x[(c * h + y) * w + xx] as f64;
                let b = expected[(c * shape[1] + i) * shape[2] + j] as f64;
                let d = (a - b).abs() / grey_level(&p, c);
                max = max.max(d);
                sum += d;
                n += 1;
            }
        }
    }
    (max, sum / n as f64)
}

const ARCHS: [&str; 6] = [
    "googlenet_torchvision",
    "inception_v3",
    "bn_inception",
    "inception_v4",
    "inception_resnet_v2",
    "inception_resnet_v1",
];

#[test]
fn png_preprocessing_matches_every_reference_pipeline() {
    let mut failures = vec![];
    for arch in ARCHS {
        for (image, tag, stride) in [("scene.png", "scene", 3), ("portrait.png", "portrait", 4)] {
            let (max, mean) = compare(arch, image, tag, stride);
            println!("{arch:24} {image:13} max {max:.6} mean {mean:.6} grey levels");
            if max > 1e-3 {
                failures.push(format!("{arch} {image}: max difference {max} grey levels"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn jpeg_preprocessing_is_within_decoder_differences() {
    for arch in ["googlenet_torchvision", "inception_v4"] {
        let (max, mean) = compare(arch, "scene.jpg", "scene_jpg", 3);
        println!("{arch:24} scene.jpg     max {max:.3} mean {mean:.4} grey levels");
        assert!(max <= 8.0 && mean <= 0.5, "{arch}: max {max}, mean {mean} grey levels");
    }
}

#[test]
fn the_caffe_googlenet_declares_caffe_preprocessing() {
    // bvlc_googlenet's train_val.prototxt: images warped to 256x256, crop_size 224, BGR 0..255,
    // mean_value 104, 117, 123 (no reference implementation to run here).
    let p = preprocess_of("googlenet");
    assert_eq!(
        p.to_string(),
        "resize 256x256 bilinear crop 224x224 normalize bgr255 mean (104, 117, 123) std (1, 1, 1)"
    );
}

#[test]
fn unreadable_images_are_errors() {
    let p = preprocess_of("inception_v4");
    let missing = p.load(images().join("no_such_image.jpg")).expect_err("missing file");
    assert!(matches!(missing, incc::Error::Io { .. }), "{missing}");
    let dir = std::env::temp_dir().join(format!("incc-preprocess-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch");
    // A PNG signature followed by garbage, and a JPEG cut short.
    let bad_png = dir.join("bad.png");
    std::fs::write(&bad_png, b"\x89PNG\r\n\x1a\nnot really a png").expect("write");
    let jpeg = std::fs::read(images().join("scene.jpg")).expect("jpeg");
    let short_jpeg = dir.join("short.jpg");
    std::fs::write(&short_jpeg, &jpeg[..200]).expect("write");
    let text = dir.join("notes.jpg");
    std::fs::write(&text, "hello").expect("write");
    for f in [bad_png, short_jpeg, text] {
        let e = p.load(&f).expect_err("corrupt image");
        assert!(matches!(e, incc::Error::Image { .. }), "{}: {e}", f.display());
        assert!(e.to_string().starts_with(&f.display().to_string()), "{e}");
    }
}

/// The `N. probability  name (index)` lines of `incc run --image` output.
fn ranked(out: &str) -> Vec<(f64, String)> {
    out.lines()
        .filter_map(|l| {
            let (rank, rest) = l.trim_start().split_once(". ")?;
            rank.parse::<usize>().ok()?;
            let (p, name) = rest.trim().split_once(' ')?;
            Some((p.parse().ok()?, name.trim().to_string()))
        })
        .collect()
}

#[test]
fn run_image_prints_the_top_five() {
    for engine in ["jit", "reference"] {
        let (code, out, err) =
            incc(&["run", "tests/user/tiny.incep", "--image", "tests/fixtures/images/scene.jpg", "--engine", engine]);
        assert_eq!(code, 0, "{err}");
        let top = ranked(&out);
        assert_eq!(top.len(), 5, "{out}");
        let probs: Vec<f64> = top.iter().map(|t| t.0).collect();
        assert!(probs.windows(2).all(|w| w[0] >= w[1]), "not ranked: {out}");
        assert!(probs.iter().all(|&p| p > 0.0 && p < 1.0) && probs.iter().sum::<f64>() <= 1.0 + 1e-6, "{out}");
        assert!(top.iter().all(|t| t.1.starts_with("class ")), "tiny has 10 unnamed classes: {out}");
        assert!(out.contains("resize 36 bilinear crop 32x32"), "the preprocessing is shown: {out}");
    }
}

#[test]
fn run_image_names_imagenet_classes() {
    let (code, out, err) = incc(&[
        "run",
        "architectures/googlenet_torchvision.incep",
        "--image",
        "tests/fixtures/images/portrait.png",
        "--top",
        "3",
    ]);
    assert_eq!(code, 0, "{err}");
    let top = ranked(&out);
    assert_eq!(top.len(), 3, "{out}");
    let names: Vec<&str> = incc::preprocess::imagenet_classes().collect();
    for (_, line) in &top {
        let (name, index) = line.rsplit_once(" (").expect("name (index)");
        let index: usize = index.trim_end_matches(')').parse().expect("index");
        assert_eq!(names[index], name, "{out}");
    }
}

#[test]
fn run_image_errors() {
    let fails = |args: &[&str], needle: &str| {
        let (code, _, err) = incc(args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(err.contains(needle), "{args:?}: expected {needle:?} in {err}");
    };
    let scene = "tests/fixtures/images/scene.png";
    fails(&["run", "tests/user/mini_inception.incep", "--image", scene], "declares no `preprocess`");
    fails(&["run", "tests/user/tiny.incep", "--image", "tests/fixtures/images/missing.png"], "missing.png");
    fails(&["run", "tests/user/tiny.incep", "--image", "tests/user/tiny.incep"], "is not a JPEG or PNG image");
    // --image and --input exclude each other (a usage error: clap's exit code 2).
    let (code, _, _) = incc(&["run", "tests/user/tiny.incep", "--image", scene, "--input", "x.npy"]);
    assert_eq!(code, 2);
}
