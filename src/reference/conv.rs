//! Convolution and the fully connected layer: the reference's sums of products.

use super::{Elem, nchw};
use crate::ir::{Conv2d, Linear, Shape};

/// Cross-correlation with zero padding per side, grouped:
/// `y[o, i, j] = bias[o] + sum_{c in group(o), ky, kx} x[c, i*sh + ky - top, j*sw + kx - left] * w[o, c % (C/g), ky, kx]`.
pub(super) fn conv2d<E: Elem>(c: &Conv2d, x: &[E], xs: &Shape, ys: &Shape, w: &[f32], bias: Option<&[f32]>) -> Vec<E> {
    let (n, cin, h, wd) = nchw(xs);
    let (_, cout, oh, ow) = nchw(ys);
    let (in_per_group, out_per_group) = (cin / c.groups, cout / c.groups);
    let [kh, kw] = c.kernel;
    let [sh, sw] = c.stride;
    let mut y = vec![E::ZERO; ys.numel()];
    // One output channel's plane per work item; the planes are independent, so they are shared
    // out over the cores. Each sum is computed the same way whatever the thread count.
    let plane = oh * ow;
    let out_channel = |b: usize, o: usize, out: &mut [E]| {
        let g = o / out_per_group;
        for i in 0..oh {
            for j in 0..ow {
                let mut acc = bias.map_or(0.0, |b| b[o] as f64);
                for ic in 0..in_per_group {
                    let ci = g * in_per_group + ic;
                    for ky in 0..kh {
                        let Some(iy) = (i * sh + ky).checked_sub(c.pad.top).filter(|&iy| iy < h) else {
                            continue;
                        };
                        for kx in 0..kw {
                            let Some(ix) = (j * sw + kx).checked_sub(c.pad.left).filter(|&ix| ix < wd) else {
                                continue;
                            };
                            let xv = x[((b * cin + ci) * h + iy) * wd + ix].to_f64();
                            let wv = w[((o * in_per_group + ic) * kh + ky) * kw + kx] as f64;
                            acc += xv * wv;
                        }
                    }
                }
                out[i * ow + j] = E::from_f64(acc);
            }
        }
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(cout.max(1));
    let per = cout.div_ceil(threads.max(1)).max(1);
    for b in 0..n {
        let batch = &mut y[b * cout * plane..(b + 1) * cout * plane];
        std::thread::scope(|s| {
            for (t, chunk) in batch.chunks_mut(per * plane.max(1)).enumerate() {
                let out_channel = &out_channel;
                s.spawn(move || {
                    for (k, out) in chunk.chunks_mut(plane.max(1)).enumerate() {
                        out_channel(b, t * per + k, out);
                    }
                });
            }
        });
    }
    y
}

/// `y[b, o] = bias[o] + sum_i x[b, i] * w[o, i]`.
pub(super) fn linear<E: Elem>(l: &Linear, x: &[E], w: &[f32], bias: Option<&[f32]>) -> Vec<E> {
    let mut y = Vec::with_capacity(x.len() / l.in_features * l.out_features);
    for row in x.chunks(l.in_features) {
        for o in 0..l.out_features {
            let wrow = &w[o * l.in_features..(o + 1) * l.in_features];
            let dot: f64 = row.iter().zip(wrow).map(|(&a, &b)| a.to_f64() * b as f64).sum();
            y.push(E::from_f64(bias.map_or(0.0, |b| b[o] as f64) + dot));
        }
    }
    y
}
