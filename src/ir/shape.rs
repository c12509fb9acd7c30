//! Static tensor shapes and the output-size arithmetic of windows.

use std::fmt;

/// The exact shape of a tensor: `[N, C, H, W]` for feature maps, `[N, F]` for vectors.
///
/// The batch dimension `N` is always 1 in this version of incc.
#[derive(Clone, PartialEq, Eq, Hash, Debug, serde::Serialize)]
pub struct Shape(pub Vec<usize>);

impl Shape {
    /// A feature map `[1, c, h, w]`.
    pub fn nchw(c: usize, h: usize, w: usize) -> Shape {
        Shape(vec![1, c, h, w])
    }
    /// A vector `[1, f]`.
    pub fn flat(f: usize) -> Shape {
        Shape(vec![1, f])
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }
    /// Rank (number of dimensions).
    pub fn rank(&self) -> usize {
        self.0.len()
    }
    /// Channels (dimension 1).
    pub fn c(&self) -> usize {
        self.0[1]
    }
    /// Height of a feature map.
    pub fn h(&self) -> usize {
        self.0[2]
    }
    /// Width of a feature map.
    pub fn w(&self) -> usize {
        self.0[3]
    }
    /// True for `[N, C, H, W]`.
    pub fn is_map(&self) -> bool {
        self.0.len() == 4
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("x")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// Padding of a 2-D window, per side.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug, Default, serde::Serialize)]
pub struct Pad {
    /// Rows added above.
    pub top: usize,
    /// Rows added below.
    pub bottom: usize,
    /// Columns added on the left.
    pub left: usize,
    /// Columns added on the right.
    pub right: usize,
}

impl Pad {
    /// The same padding on every side.
    pub fn all(p: usize) -> Pad {
        Pad { top: p, bottom: p, left: p, right: p }
    }
    /// `ph` rows above and below, `pw` columns left and right (PyTorch's `padding=(ph, pw)`).
    pub fn hw(ph: usize, pw: usize) -> Pad {
        Pad { top: ph, bottom: ph, left: pw, right: pw }
    }
    /// True when no side is padded.
    pub fn is_zero(&self) -> bool {
        *self == Pad::default()
    }
}

impl fmt::Display for Pad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.top == self.bottom && self.left == self.right {
            if self.top == self.left { write!(f, "{}", self.top) } else { write!(f, "{}x{}", self.top, self.left) }
        } else {
            write!(f, "({},{},{},{})", self.top, self.bottom, self.left, self.right)
        }
    }
}

/// Output length of a window of size `k` sliding with stride `s` over `n` elements
/// padded with `before` and `after`.
///
/// Floor mode: `floor((n + before + after - k) / s) + 1`. Ceil mode rounds up, and, as
/// PyTorch does, drops a last window that would start in the padding after the input.
/// Returns `None` when the window does not fit (`k > n + before + after`) or `s == 0`.
pub fn window_out(n: usize, k: usize, s: usize, before: usize, after: usize, ceil: bool) -> Option<usize> {
    let padded = n.checked_add(before)?.checked_add(after)?;
    if s == 0 || k == 0 || k > padded {
        return None;
    }
    let span = padded - k;
    if !ceil {
        return Some(span / s + 1);
    }
    let mut out = span.div_ceil(s) + 1;
    // PyTorch: the last pooling window must start inside the input or the left padding.
    if (out - 1) * s >= n + before {
        out -= 1;
    }
    Some(out)
}

/// TensorFlow's `SAME` padding for one dimension: output `ceil(n / s)`, with any odd
/// padding element placed after the input.
pub fn same_pad(n: usize, k: usize, s: usize) -> (usize, usize) {
    let out = n.div_ceil(s.max(1));
    let total = ((out.saturating_sub(1)) * s + k).saturating_sub(n);
    (total / 2, total - total / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_mode_matches_the_formula() {
        // Inception-v3 stem: 299 -> 149 (3x3 s2), 147 (3x3), 147 (3x3 p1), 73 (pool 3x3 s2).
        assert_eq!(window_out(299, 3, 2, 0, 0, false), Some(149));
        assert_eq!(window_out(149, 3, 1, 0, 0, false), Some(147));
        assert_eq!(window_out(147, 3, 1, 1, 1, false), Some(147));
        assert_eq!(window_out(147, 3, 2, 0, 0, false), Some(73));
        assert_eq!(window_out(17, 7, 1, 3, 3, false), Some(17));
        assert_eq!(window_out(1, 1, 1, 0, 0, false), Some(1));
    }

    #[test]
    fn ceil_mode_rounds_up() {
        // GoogLeNet: 112 -> 56 with maxpool 3x3 s2 ceil; 28 -> 14; 14 -> 7.
        assert_eq!(window_out(112, 3, 2, 0, 0, true), Some(56));
        assert_eq!(window_out(112, 3, 2, 0, 0, false), Some(55));
        assert_eq!(window_out(14, 3, 2, 0, 0, true), Some(7));
        assert_eq!(window_out(14, 2, 2, 0, 0, true), Some(7));
    }

    #[test]
    fn ceil_mode_drops_a_window_starting_in_the_padding() {
        // n=5, k=2, s=2, pad 1: ceil gives 4 windows, but the 4th starts at 6 >= 5+1.
        assert_eq!(window_out(5, 2, 2, 1, 1, true), Some(3));
        // n=6, k=2, s=2, pad 1: (8-2)/2+1 = 4; last starts at 6 < 7: kept.
        assert_eq!(window_out(6, 2, 2, 1, 1, true), Some(4));
    }

    #[test]
    fn too_large_kernels_and_zero_strides_are_refused() {
        assert_eq!(window_out(2, 3, 1, 0, 0, false), None);
        assert_eq!(window_out(2, 3, 1, 1, 0, false), Some(1));
        assert_eq!(window_out(8, 3, 0, 0, 0, false), None);
        assert_eq!(window_out(usize::MAX, 3, 1, 1, 1, false), None);
    }

    #[test]
    fn same_padding_puts_the_odd_element_after() {
        assert_eq!(same_pad(35, 3, 1), (1, 1));
        assert_eq!(same_pad(35, 3, 2), (1, 1));
        assert_eq!(same_pad(8, 3, 2), (0, 1));
        assert_eq!(same_pad(17, 7, 1), (3, 3));
        assert_eq!(same_pad(4, 2, 1), (0, 1));
    }
}
