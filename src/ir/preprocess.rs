//! The image preprocessing a network declares (`preprocess` in the source), as plain data the
//! graph carries: resize, filter, crop and value convention. Applying it to an image is the
//! work of the image tools (`crate::preprocess`), which build on these types.

use std::fmt;

/// How the image is resized before the center crop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resize {
    /// The shorter side to this many pixels, the aspect ratio kept (torchvision `Resize(N)`).
    ShorterSide(usize),
    /// Exactly height x width (torchvision `Resize((H, W))`).
    Exact([usize; 2]),
}

/// The resampling filter, both antialiased as PIL's (its support grows with the downscale factor).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interpolation {
    /// Triangle filter of radius 1 (`InterpolationMode.BILINEAR`, torchvision's default).
    Bilinear,
    /// Keys cubic with a = -0.5, radius 2 (`InterpolationMode.BICUBIC`, timm's Inception cfgs).
    Bicubic,
}

/// Pixel value convention before `(v - mean) / std`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// RGB scaled to [0, 1] (`ToTensor`).
    Rgb,
    /// RGB in [0, 255] (facenet-pytorch's `fixed_image_standardization` input).
    Rgb255,
    /// BGR in [0, 255] (Caffe ports: pretrainedmodels' `input_space BGR, input_range [0, 255]`).
    Bgr255,
    /// RGB scaled to [-1, 1]: `rgb` with mean and std 0.5 (TF-slim Inception checkpoints).
    Inception,
}

impl Mode {
    /// Every mode with its keyword, as `normalize MODE` writes it.
    pub const ALL: [(&'static str, Mode); 4] =
        [("rgb", Mode::Rgb), ("rgb255", Mode::Rgb255), ("bgr255", Mode::Bgr255), ("inception", Mode::Inception)];

    /// The keyword of this mode.
    pub fn keyword(self) -> &'static str {
        Mode::ALL.iter().find(|(_, m)| *m == self).map_or("?", |(k, _)| k)
    }
}

/// A network's image preprocessing: what its `preprocess` declaration says.
///
/// Invariants (checked by lowering): the crop fits inside the resized image and equals the
/// network input's height and width; the input has 3 channels; every `std` is positive.
#[derive(Clone, Debug, PartialEq)]
pub struct Preprocess {
    /// The resize step.
    pub resize: Resize,
    /// Its filter.
    pub interpolation: Interpolation,
    /// The center crop, height x width.
    pub crop: [usize; 2],
    /// The value convention.
    pub mode: Mode,
    /// Subtracted per channel, in the channel order of the mode (B, G, R for `bgr255`).
    pub mean: [f32; 3],
    /// Divides per channel after the mean is subtracted.
    pub std: [f32; 3],
}

impl fmt::Display for Preprocess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.resize {
            Resize::ShorterSide(n) => write!(f, "resize {n}")?,
            Resize::Exact([h, w]) => write!(f, "resize {h}x{w}")?,
        }
        let filter = if self.interpolation == Interpolation::Bilinear { "bilinear" } else { "bicubic" };
        write!(f, " {filter} crop {}x{} normalize {}", self.crop[0], self.crop[1], self.mode.keyword())?;
        if self.mode != Mode::Inception {
            let list = |v: &[f32; 3]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ");
            write!(f, " mean ({}) std ({})", list(&self.mean), list(&self.std))?;
        }
        Ok(())
    }
}
