//! The input tensor of `run` and `bench`: a `.npy` file, an image, or seeded values.

use anyhow::Context;
use incc::Error;
use incc::ir::{Graph, Shape};
use incc::preprocess::Rgb8;
use std::path::{Path, PathBuf};

/// The network's input: a .npy file checked against the declared shape, or seeded random values.
pub fn load_input(g: &Graph, input: Option<&Path>, seed: u64) -> anyhow::Result<Vec<f32>> {
    let in_id = g.inputs.first().copied().context("the network has no input")?;
    let in_shape = &g.node(in_id).shape;
    let Some(p) = input else { return Ok(incc::weights::random_input(in_shape.numel(), seed)) };
    read_input(p, in_shape).context("reading the input tensor")
}

/// The tensor of `path`, if its shape is `shape` (the batch of 1 may be left out).
fn read_input(path: &Path, shape: &Shape) -> incc::Result<Vec<f32>> {
    let (found, data) = incc::npy::read_npy(path)?;
    if found != shape.0 && found[..] != shape.0[1..] {
        let dims: Vec<String> = found.iter().map(|d| d.to_string()).collect();
        return Err(Error::Npy {
            path: path.display().to_string(),
            message: format!("has shape {}, but the network's input is {shape}", dims.join("x")),
        });
    }
    Ok(data)
}

/// The input from `--image` (decoded already, preprocessed as the network declares),
/// `--input`, or the seed.
pub fn run_input(
    g: &Graph,
    file: &Path,
    input: Option<&Path>,
    image: Option<&(PathBuf, Rgb8)>,
    seed: u64,
    quiet: bool,
) -> anyhow::Result<Vec<f32>> {
    let Some((path, img)) = image else { return load_input(g, input, seed) };
    let Some(pre) = &g.preprocess else {
        anyhow::bail!(
            "{}: the network declares no `preprocess`, so incc does not know how to turn an image into its \
             input: add e.g. `preprocess resize 256 crop 224 normalize inception` (docs/LANGUAGE.md), or give \
             a tensor with --input",
            file.display()
        );
    };
    if !quiet {
        println!("image {} ({}x{}): {pre}", path.display(), img.width, img.height);
    }
    let x = pre.apply(img).map_err(|e| Error::Image { path: path.display().to_string(), message: e.to_string() })?;
    Ok(x)
}
