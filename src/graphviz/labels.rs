//! The words of a drawing: what each op is called in the papers' figures, shapes, counts, and
//! escaping for `dot` strings and HTML-like labels.

use crate::ir::{Op, PoolKind, Shape};
use std::fmt::Write;

/// The paper's words for an op, a fill colour and a Graphviz shape.
pub(super) fn describe(op: &Op, shape: &Shape) -> (String, &'static str, &'static str) {
    let stride = |s: [usize; 2]| match s {
        [1, 1] => String::new(),
        [a, b] if a == b => format!(", /{a}"),
        [a, b] => format!(", stride {a}x{b}"),
    };
    match op {
        Op::Input => (format!("input {}", shape_label(shape)), "#ffffff", "box"),
        Op::Conv2d(c) => {
            let mut s = format!("{}x{} conv, {}{}", c.kernel[0], c.kernel[1], c.out_channels, stride(c.stride));
            if c.groups != 1 {
                let _ = write!(s, ", {} groups", c.groups);
            }
            if let Some(r) = c.epilogue.residual {
                let _ = write!(s, " + residual ×{r}");
            }
            if c.epilogue.relu {
                s.push_str(" + ReLU");
            }
            (s, "#cfe2f3", "box")
        }
        Op::BatchNorm(_) => ("batch norm".into(), "#eeeeee", "box"),
        Op::Relu => ("ReLU".into(), "#eeeeee", "box"),
        Op::Pool(p) => {
            let kind = if p.kind == PoolKind::Max { "max" } else { "avg" };
            (format!("{}x{} {kind} pool{}", p.kernel[0], p.kernel[1], stride(p.stride)), "#fde9c9", "box")
        }
        Op::GlobalAvgPool => ("global avg pool".into(), "#fde9c9", "box"),
        Op::Lrn(l) => (format!("LRN {}", l.size), "#eeeeee", "box"),
        Op::Dropout { p } => (format!("dropout {p}"), "#eeeeee", "box"),
        Op::Flatten => ("flatten".into(), "#eeeeee", "box"),
        Op::Linear(l) => (format!("fc {}{}", l.out_features, if l.relu { " + ReLU" } else { "" }), "#e4d7f5", "box"),
        Op::L2Norm { .. } => ("L2 norm".into(), "#eeeeee", "box"),
        Op::Softmax => ("softmax".into(), "#eeeeee", "box"),
        Op::Concat => ("concat".into(), "#d9ead3", "box"),
        Op::Add { scale } if *scale == 1.0 => ("+".into(), "#f4cccc", "circle"),
        Op::Add { scale } => (format!("+ ×{scale}"), "#f4cccc", "ellipse"),
        Op::Slice { start, len } => (format!("channels {start}..{}", start + len), "#eeeeee", "box"),
    }
}

/// `inception_a()` -> `inception_a`; calls with arguments are kept whole.
pub(super) fn short_call(call: &str) -> &str {
    call.strip_suffix("()").unwrap_or(call)
}

/// `name` without the `home` prefix and the separator after it (`Mixed_5b.branch1x1` in
/// `Mixed_5b` -> `branch1x1`; `inception_3a_3x3` in `inception_3a` -> `3x3`).
pub(super) fn relative<'a>(name: &'a str, home: &str) -> &'a str {
    if home.is_empty() {
        return name;
    }
    match name.strip_prefix(home) {
        Some(rest) => {
            let mut c = rest.chars();
            match c.next() {
                Some(ch) if !ch.is_alphanumeric() => c.as_str(),
                Some(_) => name,
                None => "",
            }
        }
        None => name,
    }
}

/// A tensor shape without the batch of 1: `384x35x35`, `1000`.
pub(super) fn shape_label(s: &Shape) -> String {
    let dims = if s.0.len() > 1 && s.0[0] == 1 { &s.0[1..] } else { &s.0[..] };
    dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x")
}

/// `1234567` -> `1.2M`.
pub(super) fn compact(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

/// Escapes text for a Graphviz HTML-like label (and for HTML).
pub(super) fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Escapes text for a double-quoted `dot` string.
pub(super) fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_names() {
        assert_eq!(relative("Mixed_5b.branch1x1", "Mixed_5b"), "branch1x1");
        assert_eq!(relative("inception_3a_3x3", "inception_3a"), "3x3");
        assert_eq!(relative("Mixed_5b", "Mixed_5b"), "");
        assert_eq!(relative("Mixed_5bb.x", "Mixed_5b"), "Mixed_5bb.x");
        assert_eq!(relative("gap", ""), "gap");
    }

    #[test]
    fn labels() {
        assert_eq!(shape_label(&Shape::nchw(384, 35, 35)), "384x35x35");
        assert_eq!(shape_label(&Shape::flat(1000)), "1000");
        assert_eq!(compact(42_679_816), "42.7M");
        assert_eq!(html_escape("a<b>&\""), "a&lt;b&gt;&amp;&quot;");
    }
}
