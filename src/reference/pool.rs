//! Max and average pooling.

use super::{Elem, nchw};
use crate::ir::{Pool, PoolKind, Shape};

/// Max or average pooling, as PyTorch's `max_pool2d` / `avg_pool2d` (extended to padding
/// that differs per side).
///
/// A window starts at `i*stride - pad_before`. Max: the largest real input element (the
/// padding is `-inf`, so it never wins; NaN propagates). Average: the sum of the real input
/// elements divided by, with `count_include_pad`, the window clipped to the *padded* input
/// (`min(start + k, n + pad_after) - start` per dimension: a ceil-mode window running past
/// the padding is not counted in full), and otherwise the number of real elements.
pub(super) fn pool<E: Elem>(p: &Pool, x: &[E], xs: &Shape, ys: &Shape) -> Vec<E> {
    let (n, ch, h, wd) = nchw(xs);
    let (_, _, oh, ow) = nchw(ys);
    let (top, left) = (p.pad.top as isize, p.pad.left as isize);
    let (h_i, w_i) = (h as isize, wd as isize);
    let mut y = Vec::with_capacity(ys.numel());
    for plane in x.chunks(h * wd).take(n * ch) {
        for i in 0..oh {
            for j in 0..ow {
                let y0 = (i * p.stride[0]) as isize - top;
                let x0 = (j * p.stride[1]) as isize - left;
                let (y1, x1) = (y0 + p.kernel[0] as isize, x0 + p.kernel[1] as isize);
                // Real input rows and columns covered by the window.
                let rows = y0.max(0)..y1.min(h_i);
                let cols = x0.max(0)..x1.min(w_i);
                let real = || rows.clone().flat_map(|r| cols.clone().map(move |c| plane[r as usize * wd + c as usize]));
                let v = match p.kind {
                    PoolKind::Max => real().fold(E::NEG_INFINITY, |m, v| if v > m || v.is_nan() { v } else { m }),
                    PoolKind::Avg => {
                        let count = rows.len() * cols.len();
                        let divisor = if p.count_include_pad {
                            let ph = y1.min(h_i + p.pad.bottom as isize) - y0;
                            let pw = x1.min(w_i + p.pad.right as isize) - x0;
                            (ph * pw) as usize
                        } else {
                            count
                        };
                        if count == 0 {
                            E::ZERO
                        } else {
                            E::from_f64(real().map(|v| v.to_f64()).sum::<f64>() / divisor as f64)
                        }
                    }
                };
                y.push(v);
            }
        }
    }
    y
}
