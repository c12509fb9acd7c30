//! From an image file to a network input, and from a classifier's output back to class names
//! (`incc run --image`).
//!
//! A `.incep` file states what its weights expect with a `preprocess` declaration (interpreted
//! by [`lower::preprocess`](crate::lower::preprocess) into a [`Preprocess`]):
//!
//! ```text
//!     decode (jpeg/png) -> RGB u8 -> resize (shorter side to N, or to HxW) -> center crop HxW
//!       -> values: u/255 (rgb, inception) or u (rgb255, bgr255), channels swapped for bgr255
//!       -> (v - mean) / std, per channel  -> CxHxW f32
//! ```
//!
//! The reference implementations all resize PIL images with torchvision's `Resize`, i.e. PIL's
//! `Image.resize` with an antialiasing (support-scaled) bilinear or bicubic filter, computed in two
//! separable passes with 8-bit fixed-point weights and an 8-bit image between the passes. The
//! `image` crate's resamplers differ (on the test scene its `Triangle` filter by up to 1 grey
//! level, its `CatmullRom` by up to 23 at edges), so [`resize`] reimplements Pillow's algorithm:
//! on a losslessly decoded image the resized pixels are identical to Pillow's (see
//! `tests/preprocess.rs` and `conformance/make_image_fixtures.py`).
//! The center crop rounds its offset half-to-even, as torchvision's `round` does.

use crate::error::{Error, Result};
pub use crate::ir::preprocess::{Interpolation, Mode, Preprocess, Resize};
use crate::ir::{Graph, Op};
use std::path::Path;

/// A decoded image: 8-bit RGB, row-major, 3 bytes a pixel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rgb8 {
    /// Pixels across.
    pub width: usize,
    /// Pixels down.
    pub height: usize,
    /// `height * width * 3` bytes.
    pub data: Vec<u8>,
}

/// Decodes a JPEG or PNG file into RGB (alpha dropped, grey replicated, as PIL's `convert("RGB")`).
///
/// The `image` crate's default limits apply (no allocation over 512 MiB), so a hostile header
/// is an error, not an out-of-memory abort.
pub fn load_image(path: impl AsRef<Path>) -> Result<Rgb8> {
    let path = path.as_ref();
    let bad = |message: String| Error::Image { path: path.display().to_string(), message };
    let reader = image::ImageReader::open(path).map_err(|e| Error::io(path, e))?;
    let reader = reader.with_guessed_format().map_err(|e| Error::io(path, e))?;
    if reader.format().is_none() {
        return Err(bad("is not a JPEG or PNG image".into()));
    }
    let img = reader.decode().map_err(|e| bad(format!("cannot be decoded: {e}")))?.into_rgb8();
    let (width, height) = (img.width() as usize, img.height() as usize);
    Ok(Rgb8 { width, height, data: img.into_raw() })
}

impl Preprocess {
    /// The image file at `path` as the network's `3 x crop[0] x crop[1]` input.
    pub fn load(&self, path: impl AsRef<Path>) -> Result<Vec<f32>> {
        let path = path.as_ref();
        self.apply(&load_image(path)?).map_err(|e| match e {
            Error::Invalid(message) => Error::Image { path: path.display().to_string(), message },
            e => e,
        })
    }

    /// The size the image is resized to, `[height, width]` (torchvision's arithmetic: the
    /// longer side is `int(N * long / short)`).
    pub fn resized_size(&self, height: usize, width: usize) -> [usize; 2] {
        match self.resize {
            Resize::Exact(hw) => hw,
            Resize::ShorterSide(n) => {
                let (short, long) = if width <= height { (width, height) } else { (height, width) };
                let new_long = ((n * long) as f64 / short as f64) as usize;
                if width <= height { [new_long, n] } else { [n, new_long] }
            }
        }
    }

    /// Resizes, crops and normalises `img` into a `3 x crop[0] x crop[1]` tensor (C, H, W).
    ///
    /// An empty image, or one so elongated that resizing it would make more than
    /// [`MAX_RESIZED_PIXELS`], is an [`Error::Invalid`].
    pub fn apply(&self, img: &Rgb8) -> Result<Vec<f32>> {
        if img.width == 0 || img.height == 0 {
            return Err(Error::Invalid("the image is empty".into()));
        }
        let [rh, rw] = self.resized_size(img.height, img.width);
        if rh.saturating_mul(rw) > MAX_RESIZED_PIXELS {
            return Err(Error::Invalid(format!(
                "a {}x{} image resized to {rw}x{rh} would exceed {MAX_RESIZED_PIXELS} pixels",
                img.width, img.height
            )));
        }
        let resized = resize(img, rw, rh, self.interpolation);
        let [ch, cw] = self.crop;
        // torchvision's center_crop: int(round((size - crop) / 2.0)), ties to even. Lowering
        // guarantees the crop fits; `min` keeps an invariant violation from reading out of bounds.
        let top = ((rh.saturating_sub(ch)) as f64 / 2.0).round_ties_even() as usize;
        let left = ((rw.saturating_sub(cw)) as f64 / 2.0).round_ties_even() as usize;
        let (ch, cw) = (ch.min(rh - top), cw.min(rw - left));
        let (scale, order) = match self.mode {
            Mode::Rgb | Mode::Inception => (Some(255f32), [0, 1, 2]),
            Mode::Rgb255 => (None, [0, 1, 2]),
            Mode::Bgr255 => (None, [2, 1, 0]),
        };
        let mut out = vec![0f32; 3 * self.crop[0] * self.crop[1]];
        for (c, &src) in order.iter().enumerate() {
            let (mean, std) = (self.mean[c], self.std[c]);
            for y in 0..ch {
                let row = &resized.data[((top + y) * rw + left) * 3..];
                let dst = &mut out[(c * self.crop[0] + y) * self.crop[1]..][..cw];
                for (x, d) in dst.iter_mut().enumerate() {
                    let u = row[x * 3 + src] as f32;
                    // As torch computes it: ToTensor's division, then Normalize's sub_ and div_.
                    let v = match scale {
                        Some(s) => u / s,
                        None => u,
                    };
                    *d = (v - mean) / std;
                }
            }
        }
        Ok(out)
    }
}

/// Most pixels of a resized image (192 MiB as RGB): `resize N` of a very elongated image would
/// otherwise make its longer side arbitrarily large.
pub const MAX_RESIZED_PIXELS: usize = 1 << 26;

/// Fixed-point bits of the resampling weights (PIL's `PRECISION_BITS`: 32 - 8 - 2).
const PRECISION_BITS: u32 = 22;

impl Interpolation {
    /// Radius of the filter at scale 1.
    fn support(self) -> f64 {
        match self {
            Interpolation::Bilinear => 1.0,
            Interpolation::Bicubic => 2.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Interpolation::Bilinear => (1.0 - x).max(0.0),
            Interpolation::Bicubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}

/// For each output pixel of one axis: the first input pixel and the fixed-point weights.
struct Taps {
    first: Vec<usize>,
    weights: Vec<Vec<i32>>,
}

/// The weights resampling `in_size` pixels to `out_size`: the filter centred on each output
/// pixel's centre in input coordinates, widened by the downscale factor (antialiasing),
/// normalised to sum 1, then rounded to [`PRECISION_BITS`] fixed point — PIL's arithmetic,
/// including its rounding of the window bounds.
fn taps(in_size: usize, out_size: usize, filter: Interpolation) -> Taps {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = filter.support() * filter_scale;
    let mut t = Taps { first: Vec::with_capacity(out_size), weights: Vec::with_capacity(out_size) };
    for o in 0..out_size {
        let center = (o as f64 + 0.5) * scale;
        // C's `(int)` truncates; below zero both truncation and flooring clamp to 0.
        let lo = ((center - support + 0.5) as i64).max(0) as usize;
        let hi = ((center + support + 0.5) as i64).clamp(0, in_size as i64) as usize;
        let w: Vec<f64> = (lo..hi.max(lo)).map(|i| filter.weight((i as f64 - center + 0.5) / filter_scale)).collect();
        let sum: f64 = w.iter().sum();
        let one = (1u32 << PRECISION_BITS) as f64;
        let fixed = w
            .iter()
            .map(|&k| {
                let k = if sum != 0.0 { k / sum } else { k };
                (if k < 0.0 { -0.5 + k * one } else { 0.5 + k * one }) as i32
            })
            .collect();
        t.first.push(lo);
        t.weights.push(fixed);
    }
    t
}

/// A fixed-point sum back to 8 bits: floor, clamped to 0..=255.
fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes `img` to `width` x `height` exactly as PIL's `Image.resize(size, BILINEAR|BICUBIC)`
/// does on an RGB image: a horizontal pass over the rows the vertical pass needs, rounded to 8
/// bits, then a vertical pass. An axis whose size does not change is not resampled.
pub fn resize(img: &Rgb8, width: usize, height: usize, filter: Interpolation) -> Rgb8 {
    let half = 1i64 << (PRECISION_BITS - 1);
    let vertical = taps(img.height, height, filter);
    // Horizontal pass, over the source rows the vertical pass reads.
    let (rows_from, rows) = if width != img.width {
        let (first, last) = match (vertical.first.first(), vertical.first.last(), vertical.weights.last()) {
            (Some(&a), Some(&b), Some(w)) if height != img.height => (a, b + w.len()),
            _ => (0, img.height),
        };
        let h = taps(img.width, width, filter);
        let mut data = vec![0u8; (last - first) * width * 3];
        for y in first..last {
            let src = &img.data[y * img.width * 3..][..img.width * 3];
            let dst = &mut data[(y - first) * width * 3..][..width * 3];
            for (x, px) in dst.chunks_exact_mut(3).enumerate() {
                let mut acc = [half; 3];
                for (i, &k) in h.weights[x].iter().enumerate() {
                    let s = &src[(h.first[x] + i) * 3..][..3];
                    for c in 0..3 {
                        acc[c] += s[c] as i64 * k as i64;
                    }
                }
                for c in 0..3 {
                    px[c] = clip8(acc[c]);
                }
            }
        }
        (first, Rgb8 { width, height: last - first, data })
    } else {
        (0, img.clone())
    };
    if height == img.height {
        return rows;
    }
    let mut data = vec![0u8; height * width * 3];
    for (y, dst) in data.chunks_exact_mut(width * 3).enumerate() {
        let start = vertical.first[y] - rows_from;
        for (x, px) in dst.chunks_exact_mut(3).enumerate() {
            let mut acc = [half; 3];
            for (i, &k) in vertical.weights[y].iter().enumerate() {
                let s = &rows.data[((start + i) * width + x) * 3..][..3];
                for c in 0..3 {
                    acc[c] += s[c] as i64 * k as i64;
                }
            }
            for c in 0..3 {
                px[c] = clip8(acc[c]);
            }
        }
    }
    Rgb8 { width, height, data }
}

/// The 1000 ImageNet-1k class names in the usual index order (torchvision's
/// `_IMAGENET_CATEGORIES`; `data/imagenet_classes.txt`).
pub fn imagenet_classes() -> impl Iterator<Item = &'static str> {
    include_str!("../data/imagenet_classes.txt").lines()
}

/// The name of class `index` of a classifier with `n` outputs: ImageNet names for 1000 outputs,
/// and for 1001 outputs (TF-slim checkpoints) `background` at 0 followed by the 1000; `None`
/// for classifiers of any other size.
pub fn class_name(index: usize, n: usize) -> Option<&'static str> {
    match n {
        1000 => imagenet_classes().nth(index),
        1001 if index == 0 => Some("background"),
        1001 => imagenet_classes().nth(index - 1),
        _ => None,
    }
}

/// What an output's values are, judged by the operation computing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputKind {
    /// A `softmax`: already probabilities.
    Probabilities,
    /// An `l2norm`: an embedding, not classes.
    Embedding,
    /// Anything else on a flat output: logits, to go through a softmax.
    Logits,
}

/// The kind of the output `name` of `g` (`None` if there is no such output).
pub fn output_kind(g: &Graph, name: &str) -> Option<OutputKind> {
    let id = g.output(name)?;
    Some(match g.node(id).op {
        Op::Softmax => OutputKind::Probabilities,
        Op::L2Norm { .. } => OutputKind::Embedding,
        _ => OutputKind::Logits,
    })
}

/// The `n` most probable classes of one output: `(index, probability)`, most probable first.
/// Logits go through a softmax (in `f64`, shifted by the maximum).
pub fn top_classes(values: &[f32], kind: OutputKind, n: usize) -> Vec<(usize, f64)> {
    let probs: Vec<f64> = match kind {
        OutputKind::Logits => {
            let max = values.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
            let e: Vec<f64> = values.iter().map(|&v| (v as f64 - max).exp()).collect();
            let sum: f64 = e.iter().sum();
            e.iter().map(|v| v / sum).collect()
        }
        _ => values.iter().map(|&v| v as f64).collect(),
    };
    let mut idx: Vec<usize> = (0..probs.len()).collect();
    idx.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    idx.into_iter().take(n).map(|i| (i, probs[i])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(width: usize, height: usize) -> Rgb8 {
        let data = (0..height * width * 3).map(|i| ((i * 7 + i / (width * 3) * 13) % 256) as u8).collect();
        Rgb8 { width, height, data }
    }

    #[test]
    fn resizing_to_the_same_size_is_the_identity() {
        let img = gradient(9, 7);
        for f in [Interpolation::Bilinear, Interpolation::Bicubic] {
            assert_eq!(resize(&img, 9, 7, f), img);
        }
    }

    #[test]
    fn a_constant_image_stays_constant() {
        let img = Rgb8 { width: 37, height: 23, data: vec![200; 37 * 23 * 3] };
        for f in [Interpolation::Bilinear, Interpolation::Bicubic] {
            for (w, h) in [(10, 6), (80, 50), (37, 5)] {
                let r = resize(&img, w, h, f);
                assert!(r.data.iter().all(|&v| v == 200), "{f:?} {w}x{h}");
            }
        }
    }

    #[test]
    fn halving_with_bilinear_averages_a_window() {
        // Downscale by 2: the triangle filter widens to radius 2, sampled at the input pixel
        // centres within it (distances 0.5, 0.5 and 1.5 from the output centre, weights 3/4,
        // 3/4, 1/4; the fourth input falls outside the image), normalised to 3/7, 3/7, 1/7.
        let img = Rgb8 { width: 4, height: 1, data: [0u8, 0, 0, 80, 80, 80, 160, 160, 160, 240, 240, 240].into() };
        let r = resize(&img, 2, 1, Interpolation::Bilinear);
        // Output 0 (centre 1.0): (0 * 3 + 80 * 3 + 160) / 7 = 57.1, rounded to 57.
        assert_eq!(r.data[0], 57);
        // Output 1 (centre 3.0): (80 + 160 * 3 + 240 * 3) / 7 = 182.9, rounded to 183.
        assert_eq!(r.data[3], 183);
    }

    #[test]
    fn shorter_side_and_crop_arithmetic() {
        let p = Preprocess {
            resize: Resize::ShorterSide(256),
            interpolation: Interpolation::Bilinear,
            crop: [224, 224],
            mode: Mode::Rgb,
            mean: [0.0; 3],
            std: [1.0; 3],
        };
        assert_eq!(p.resized_size(300, 400), [256, 341]); // int(256 * 400 / 300) = 341
        assert_eq!(p.resized_size(400, 300), [341, 256]);
        assert_eq!(p.resized_size(10, 10), [256, 256]);
        // 341 - 224 = 117: the offset 58.5 rounds to the even 58, as Python's round does.
        let img = gradient(400, 300);
        let x = p.apply(&img).expect("preprocesses");
        let r = resize(&img, 341, 256, Interpolation::Bilinear);
        assert_eq!(x.len(), 3 * 224 * 224);
        assert_eq!(x[0], r.data[(16 * 341 + 58) * 3] as f32 / 255.0);
    }

    #[test]
    fn empty_and_extremely_elongated_images_are_errors() {
        let p = Preprocess {
            resize: Resize::ShorterSide(256),
            interpolation: Interpolation::Bilinear,
            crop: [224, 224],
            mode: Mode::Rgb,
            mean: [0.0; 3],
            std: [1.0; 3],
        };
        let empty = Rgb8 { width: 0, height: 5, data: vec![] };
        assert!(matches!(p.apply(&empty), Err(Error::Invalid(_))));
        let strip = Rgb8 { width: 300_000, height: 1, data: vec![0; 900_000] };
        let e = p.apply(&strip).expect_err("too large");
        assert!(e.to_string().contains("would exceed"), "{e}");
    }

    #[test]
    fn modes_scale_and_order_channels() {
        let img = Rgb8 { width: 1, height: 1, data: vec![10, 20, 30] };
        let mut p = Preprocess {
            resize: Resize::Exact([1, 1]),
            interpolation: Interpolation::Bilinear,
            crop: [1, 1],
            mode: Mode::Bgr255,
            mean: [1.0, 2.0, 3.0],
            std: [1.0, 2.0, 7.0],
        };
        // B, G, R = 30, 20, 10.
        assert_eq!(p.apply(&img).expect("bgr255"), vec![29.0, 9.0, 1.0]);
        p.mode = Mode::Rgb255;
        assert_eq!(p.apply(&img).expect("rgb255"), vec![9.0, 9.0, 27.0 / 7.0]);
        p.mode = Mode::Inception;
        p.mean = [0.5; 3];
        p.std = [0.5; 3];
        assert_eq!(p.apply(&img).expect("inception")[0], (10.0 / 255.0 - 0.5) / 0.5);
    }

    #[test]
    fn class_names_handle_a_background_class() {
        assert_eq!(imagenet_classes().count(), 1000);
        assert_eq!(class_name(0, 1000), Some("tench"));
        assert_eq!(class_name(999, 1000), Some("toilet tissue"));
        assert_eq!(class_name(0, 1001), Some("background"));
        assert_eq!(class_name(1, 1001), Some("tench"));
        assert_eq!(class_name(1000, 1001), Some("toilet tissue"));
        assert_eq!(class_name(1000, 1000), None);
        assert_eq!(class_name(3, 10), None);
    }

    #[test]
    fn softmax_of_logits_ranks_and_normalises() {
        let top = top_classes(&[1.0, 3.0, 2.0], OutputKind::Logits, 2);
        assert_eq!(top.iter().map(|t| t.0).collect::<Vec<_>>(), vec![1, 2]);
        let z = 1.0 + std::f64::consts::E + std::f64::consts::E.powi(2);
        assert!((top[0].1 - std::f64::consts::E.powi(2) / z).abs() < 1e-12);
        let top = top_classes(&[0.2, 0.7, 0.1], OutputKind::Probabilities, 5);
        assert_eq!(top.len(), 3);
        assert!((top[0].1 - 0.7).abs() < 1e-7);
    }
}
