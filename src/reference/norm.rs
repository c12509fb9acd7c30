//! Normalisations: batch norm, local response norm, and the per-fibre helper behind L2 norm and softmax.

use super::{Elem, nchw, param};
use crate::error::Result;
use crate::ir::{BatchNorm, Lrn, Shape};
use crate::weights::Weights;

/// `y = (x - mean) / sqrt(var + eps) * gamma + beta` per channel (dimension 1), in the
/// element type.
pub(super) fn batch_norm<E: Elem>(bn: &BatchNorm, x: &[E], xs: &Shape, w: &Weights) -> Result<Vec<E>> {
    let gamma = param(w, &bn.key, "weight")?;
    let beta = param(w, &bn.key, "bias")?;
    let mean = param(w, &bn.key, "running_mean")?;
    let var = param(w, &bn.key, "running_var")?;
    let eps = E::from_f32(bn.eps);
    let inner: usize = xs.0[2..].iter().product();
    let channels = xs.c();
    Ok(x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let c = (i / inner) % channels;
            let (mean, var, gamma, beta) =
                (E::from_f32(mean[c]), E::from_f32(var[c]), E::from_f32(gamma[c]), E::from_f32(beta[c]));
            (v - mean) / (var + eps).sqrt() * gamma + beta
        })
        .collect())
}

/// PyTorch `LocalResponseNorm`: `y_c = x_c / (k + alpha/size * sum x_{c'}^2)^beta` over
/// `c' = c - size/2 ..= c + (size-1)/2`, channels outside `0..C` counting as zero.
pub(super) fn lrn<E: Elem>(l: &Lrn, x: &[E], xs: &Shape) -> Vec<E> {
    let (n, ch, h, wd) = nchw(xs);
    let plane = h * wd;
    let mut y = vec![E::ZERO; x.len()];
    for b in 0..n {
        for c in 0..ch {
            let lo = c.saturating_sub(l.size / 2);
            let hi = (c + (l.size - 1) / 2).min(ch - 1);
            for s in 0..plane {
                let at = |c: usize| x[(b * ch + c) * plane + s].to_f64();
                let sum: f64 = (lo..=hi).map(|c| at(c) * at(c)).sum();
                let div = (l.k as f64 + l.alpha as f64 / l.size as f64 * sum).powf(l.beta as f64);
                y[(b * ch + c) * plane + s] = E::from_f64(at(c) / div);
            }
        }
    }
    y
}

/// Applies `f` to every fibre along dimension 1 (for each batch element and each position
/// of the dimensions after 1) and writes the results back in place.
pub(super) fn along_channels<E: Elem>(x: &[E], xs: &Shape, f: impl Fn(&[E]) -> Vec<E>) -> Vec<E> {
    let ch = xs.c();
    let inner: usize = xs.0[2..].iter().product();
    let mut y = vec![E::ZERO; x.len()];
    for b in 0..xs.0[0] {
        for s in 0..inner {
            let at = |c: usize| (b * ch + c) * inner + s;
            let fibre: Vec<E> = (0..ch).map(|c| x[at(c)]).collect();
            for (c, v) in f(&fibre).into_iter().enumerate() {
                y[at(c)] = v;
            }
        }
    }
    y
}
