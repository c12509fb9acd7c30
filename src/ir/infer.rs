//! Shape inference: the output shape of every op from its operands' shapes.
//!
//! Lowering uses it to type the graph as it builds it, and the verifier re-runs it after
//! every pass, so both agree by construction.

use super::op::{Op, PoolKind};
use super::shape::{Shape, window_out};

/// Largest number of elements a single tensor may have (4 GiB of f32).
pub const MAX_TENSOR_ELEMENTS: usize = 1 << 30;

/// The output shape of `op` applied to operands of shapes `ins`, or why it is invalid.
pub fn infer(op: &Op, ins: &[&Shape]) -> Result<Shape, String> {
    let arity = |n: usize| -> Result<(), String> {
        if ins.len() == n { Ok(()) } else { Err(format!("{} takes {n} operand(s), found {}", op.kind(), ins.len())) }
    };
    let map = |s: &Shape| -> Result<(), String> {
        if s.is_map() { Ok(()) } else { Err(format!("{} needs a feature map (NxCxHxW), found {s}", op.kind())) }
    };
    let out = match op {
        Op::Input => return Err("an input has no operands to infer from".into()),
        Op::Conv2d(c) => {
            arity(if c.epilogue.residual.is_some() { 2 } else { 1 })?;
            let x = ins[0];
            map(x)?;
            if c.groups == 0 || c.out_channels == 0 {
                return Err("a convolution needs at least one group and one output channel".into());
            }
            if x.c() != c.in_channels {
                return Err(format!("convolution expects {} input channels, found {}", c.in_channels, x.c()));
            }
            if c.in_channels % c.groups != 0 || c.out_channels % c.groups != 0 {
                return Err(format!(
                    "groups {} must divide both the input channels {} and the output channels {}",
                    c.groups, c.in_channels, c.out_channels
                ));
            }
            let (h, w) = window2(x, c.kernel, c.stride, &c.pad, false)?;
            let out = Shape::nchw(c.out_channels, h, w);
            if let Some(r) = ins.get(1).filter(|r| ***r != out) {
                return Err(format!("residual input is {r}, the convolution gives {out}"));
            }
            out
        }
        Op::BatchNorm(b) => {
            arity(1)?;
            let x = ins[0];
            if x.rank() != 4 && x.rank() != 2 {
                return Err(format!("batch norm needs NxC or NxCxHxW, found {x}"));
            }
            if x.c() != b.channels {
                return Err(format!("batch norm has {} channels, its input has {}", b.channels, x.c()));
            }
            x.clone()
        }
        Op::Relu | Op::Dropout { .. } => {
            arity(1)?;
            ins[0].clone()
        }
        Op::Softmax | Op::L2Norm { .. } => {
            arity(1)?;
            if ins[0].rank() != 2 {
                return Err(format!("{} needs a flat input (NxF), found {}; flatten first", op.kind(), ins[0]));
            }
            ins[0].clone()
        }
        Op::Pool(p) => {
            arity(1)?;
            map(ins[0])?;
            if p.kind == PoolKind::Max
                && (p.pad.top.max(p.pad.bottom) * 2 > p.kernel[0] || p.pad.left.max(p.pad.right) * 2 > p.kernel[1])
            {
                return Err(format!(
                    "padding {} is more than half the window {}x{} (PyTorch refuses it)",
                    p.pad, p.kernel[0], p.kernel[1]
                ));
            }
            let (h, w) = window2(ins[0], p.kernel, p.stride, &p.pad, p.ceil)?;
            Shape::nchw(ins[0].c(), h, w)
        }
        Op::GlobalAvgPool => {
            arity(1)?;
            map(ins[0])?;
            Shape::nchw(ins[0].c(), 1, 1)
        }
        Op::Lrn(l) => {
            arity(1)?;
            map(ins[0])?;
            if l.size == 0 {
                return Err("LRN size must be at least 1".into());
            }
            ins[0].clone()
        }
        Op::Flatten => {
            arity(1)?;
            Shape::flat(ins[0].0[1..].iter().product())
        }
        Op::Linear(l) => {
            arity(1)?;
            let x = ins[0];
            if x.rank() != 2 {
                return Err(format!("a fully connected layer needs a flat input (NxF), found {x}; flatten first"));
            }
            if x.c() != l.in_features {
                return Err(format!("fully connected layer expects {} input features, found {}", l.in_features, x.c()));
            }
            Shape::flat(l.out_features)
        }
        Op::Concat => {
            if ins.is_empty() {
                return Err("concat needs at least one branch".into());
            }
            let first = ins[0];
            let mut c = 0usize;
            for (i, s) in ins.iter().enumerate() {
                if s.rank() != first.rank() || s.0[0] != first.0[0] || s.0[2..] != first.0[2..] {
                    return Err(format!("branch {} is {}, branch 1 is {}: only channels may differ", i + 1, s, first));
                }
                c = c.checked_add(s.c()).ok_or("channel count overflows")?;
            }
            let mut d = first.0.clone();
            d[1] = c;
            Shape(d)
        }
        Op::Slice { start, len } => {
            arity(1)?;
            map(ins[0])?;
            if start.checked_add(*len).is_none_or(|end| end > ins[0].c()) {
                return Err(format!(
                    "channels {start}..{} are outside the input's {}",
                    start.saturating_add(*len),
                    ins[0].c()
                ));
            }
            Shape(vec![ins[0].0[0], *len, ins[0].h(), ins[0].w()])
        }
        Op::Add { .. } => {
            arity(2)?;
            if ins[0] != ins[1] {
                return Err(format!("residual sum of {} and {}: the shapes must be equal", ins[0], ins[1]));
            }
            ins[0].clone()
        }
    };
    let mut n: usize = 1;
    for &d in &out.0 {
        if d == 0 {
            return Err(format!("{} would produce an empty tensor {out}", op.kind()));
        }
        n = n.checked_mul(d).filter(|&n| n <= MAX_TENSOR_ELEMENTS).ok_or_else(|| {
            format!("{} would produce a tensor of more than {MAX_TENSOR_ELEMENTS} elements ({out})", op.kind())
        })?;
    }
    Ok(out)
}

fn window2(
    x: &Shape,
    k: [usize; 2],
    s: [usize; 2],
    pad: &super::shape::Pad,
    ceil: bool,
) -> Result<(usize, usize), String> {
    if s[0] == 0 || s[1] == 0 {
        return Err("stride must be at least 1".into());
    }
    if k[0] == 0 || k[1] == 0 {
        return Err("window must be at least 1x1".into());
    }
    let h = window_out(x.h(), k[0], s[0], pad.top, pad.bottom, ceil);
    let w = window_out(x.w(), k[1], s[1], pad.left, pad.right, ceil);
    match (h, w) {
        (Some(h), Some(w)) => Ok((h, w)),
        _ => Err(format!(
            "window {}x{} is larger than its padded input {}x{}",
            k[0],
            k[1],
            x.h().saturating_add(pad.top).saturating_add(pad.bottom),
            x.w().saturating_add(pad.left).saturating_add(pad.right)
        )),
    }
}
