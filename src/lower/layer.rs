//! Layer lowering: a layer statement's words and defaults become one or more ops.

use super::attrs::{PadSpec, PosValue, Positional, parse_attrs};
use super::eval::Env;
use super::kind::{AttrOwner, LayerKind};
use super::{Defaults, Lowering, display_path, suggest};
use crate::diag::{Diagnostic, Span};
use crate::ir::shape::same_pad;
use crate::ir::{self, NodeId, Op, Pad};
use crate::syntax::ast::{Ident, Word};

impl<'a> Lowering<'a> {
    pub(super) fn unknown_layer(&mut self, kind: &Ident) {
        let mut d = Diagnostic::error(kind.span, format!("unknown layer `{}`", kind.name)).with_label("not a layer");
        if self.blocks.contains_key(kind.name.as_str()) {
            d = d.with_note(format!("`{}` is a block: call it with arguments, e.g. `{}(...)`", kind.name, kind.name));
        } else if ["concat", "residual", "repeat", "output", "block", "default", "names", "input", "network"]
            .contains(&kind.name.as_str())
        {
            d = Diagnostic::error(kind.span, format!("`{}` is incomplete here", kind.name))
                .with_label("see docs/LANGUAGE.md for its form");
        } else if let Some(s) = suggest(&kind.name, LayerKind::ALL.iter().map(|k| k.name())) {
            d = d.with_note(format!("did you mean `{s}`?"));
        } else {
            d = d.with_note(format!("layers are: {}", LayerKind::ALL.map(LayerKind::name).join(", ")));
        }
        self.error(d);
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn layer(
        &mut self,
        kind: &Ident,
        words: &[Word],
        x: Option<NodeId>,
        path: &str,
        span: Span,
        env: &Env,
        defaults: &Defaults,
    ) -> Option<NodeId> {
        let Some(k) = LayerKind::parse(&kind.name) else {
            self.unknown_layer(kind);
            return None;
        };
        let mut errs = vec![];
        let own = parse_attrs(AttrOwner::Layer(k), words, env, &mut errs);
        if !errs.is_empty() {
            // Positional counts are meaningless after a word failed to parse.
            self.report(errs);
            return None;
        }
        let a = defaults.get(&AttrOwner::Layer(k)).cloned().unwrap_or_default().overlay(&own);
        let pos = &a.positional;
        let arity = k.arity();
        if pos.len() < arity.0 {
            errs.push(
                Diagnostic::error(span, format!("`{k}` needs {}", arity.2))
                    .with_label(format!("found {} value(s)", pos.len())),
            );
        } else if pos.len() > arity.1 {
            errs.push(
                Diagnostic::error(pos[arity.1].span, format!("unexpected value in `{k}`"))
                    .with_label(format!("`{k}` takes {}", arity.2)),
            );
        }
        let ok = errs.is_empty();
        self.report(errs);
        if !ok {
            return None;
        }
        let mut errs = vec![];
        let count = |p: &Positional, what: &str, errs: &mut Vec<Diagnostic>| -> Option<usize> {
            match &p.value {
                PosValue::Scalar(v) => match v.as_size() {
                    Some(n) if n >= 1 => Some(n),
                    _ => {
                        errs.push(
                            Diagnostic::error(p.span, format!("invalid {what}"))
                                .with_label(format!("expected a positive integer, found {v}")),
                        );
                        None
                    }
                },
                PosValue::Dims(_) => {
                    errs.push(
                        Diagnostic::error(p.span, format!("invalid {what}")).with_label("expected a single number"),
                    );
                    None
                }
            }
        };
        let window = |p: &Positional, errs: &mut Vec<Diagnostic>| -> Option<[usize; 2]> {
            let r = match &p.value {
                PosValue::Dims(d) if d.len() == 2 => match (usize::try_from(d[0]).ok(), usize::try_from(d[1]).ok()) {
                    (Some(h), Some(w)) if h >= 1 && w >= 1 => Some([h, w]),
                    _ => None,
                },
                PosValue::Scalar(v) => v.as_size().filter(|&n| n >= 1).map(|n| [n, n]),
                _ => None,
            };
            if r.is_none() {
                errs.push(
                    Diagnostic::error(p.span, "invalid window")
                        .with_label("expected `KHxKW` with both at least 1, e.g. `3x3`"),
                );
            }
            r
        };
        let xin = x.map(|x| self.g.node(x).shape.clone());
        let pad_of = |spec: Option<PadSpec>, kernel: [usize; 2], stride: [usize; 2]| -> Pad {
            match (spec, &xin) {
                (Some(PadSpec::Fixed(p)), _) => p,
                (Some(PadSpec::Same), Some(s)) if s.is_map() => {
                    let (t, b) = same_pad(s.h(), kernel[0], stride[0]);
                    let (l, r) = same_pad(s.w(), kernel[1], stride[1]);
                    Pad { top: t, bottom: b, left: l, right: r }
                }
                _ => Pad::default(),
            }
        };
        let eps = a.eps.unwrap_or(1e-5) as f32;
        let name_of = |t: &str| t.replace("{}", path);
        let result = match k {
            LayerKind::Conv => {
                let out = count(&pos[0], "output channel count", &mut errs);
                let kernel = window(&pos[1], &mut errs);
                let ok = errs.is_empty();
                self.report(std::mem::take(&mut errs));
                let (out, kernel, x, xs) = (out?, kernel?, x?, xin.clone()?);
                if !ok || !xs.is_map() {
                    if !xs.is_map() {
                        self.error(
                            Diagnostic::error(
                                span,
                                format!("conv in {}: needs a feature map, found {xs}", display_path(path)),
                            )
                            .with_label("input is flat"),
                        );
                    }
                    return None;
                }
                let stride = a.stride.unwrap_or([1, 1]);
                let bn = a.bn.unwrap_or(false);
                let key = if bn { name_of(&self.names.conv) } else { path.to_string() };
                let conv = ir::Conv2d {
                    out_channels: out,
                    in_channels: xs.c(),
                    kernel,
                    stride,
                    pad: pad_of(a.pad, kernel, stride),
                    groups: a.groups.unwrap_or(1),
                    key,
                    bias: a.bias.unwrap_or(true),
                    epilogue: ir::Epilogue::default(),
                    winograd: None,
                };
                let mut y = self.add_op(Op::Conv2d(conv), &[x], span, path, "conv")?;
                if bn {
                    let b = ir::BatchNorm { channels: out, eps, key: name_of(&self.names.bn) };
                    y = self.add_op(Op::BatchNorm(b), &[y], span, path, "batch norm")?;
                }
                Some(y)
            }
            LayerKind::Bn => {
                let (x, xs) = (x?, xin.clone()?);
                let ch = if xs.rank() >= 2 { xs.c() } else { 0 };
                let b = ir::BatchNorm { channels: ch, eps, key: path.to_string() };
                self.add_op(Op::BatchNorm(b), &[x], span, path, "batch norm")
            }
            LayerKind::MaxPool | LayerKind::AvgPool => {
                let kernel = window(&pos[0], &mut errs);
                self.report(std::mem::take(&mut errs));
                let (kernel, x) = (kernel?, x?);
                let stride = a.stride.unwrap_or(kernel);
                let p = ir::Pool {
                    kind: if k == LayerKind::MaxPool { ir::PoolKind::Max } else { ir::PoolKind::Avg },
                    kernel,
                    stride,
                    pad: pad_of(a.pad, kernel, stride),
                    ceil: a.ceil.unwrap_or(false),
                    count_include_pad: a.include_pad.unwrap_or(true),
                };
                self.add_op(Op::Pool(p), &[x], span, path, k.name())
            }
            LayerKind::Gap => self.add_op(Op::GlobalAvgPool, &[x?], span, path, "gap"),
            LayerKind::Relu => return self.add_op(Op::Relu, &[x?], span, path, "relu"),
            LayerKind::Flatten => self.add_op(Op::Flatten, &[x?], span, path, "flatten"),
            LayerKind::Softmax => self.add_op(Op::Softmax, &[x?], span, path, "softmax"),
            LayerKind::L2Norm => {
                self.add_op(Op::L2Norm { eps: a.eps.unwrap_or(1e-12) as f32 }, &[x?], span, path, "l2norm")
            }
            LayerKind::Dropout => {
                let p = match pos.first().map(|p| &p.value) {
                    Some(PosValue::Scalar(v)) => v.as_f64().filter(|p| (0.0..=1.0).contains(p)),
                    Some(_) => None,
                    None => Some(a.p.unwrap_or(0.5)),
                };
                let Some(p) = p else {
                    self.error(
                        Diagnostic::error(pos[0].span, "invalid dropout probability")
                            .with_label("expected a number from 0 to 1"),
                    );
                    return None;
                };
                self.add_op(Op::Dropout { p: p as f32 }, &[x?], span, path, "dropout")
            }
            LayerKind::Lrn => {
                let size = match pos.first() {
                    Some(p) => count(p, "LRN size", &mut errs),
                    None => a.size,
                };
                self.report(std::mem::take(&mut errs));
                let Some(size) = size else {
                    self.error(
                        Diagnostic::error(span, "`lrn` needs a size")
                            .with_label("e.g. `lrn size 5 alpha 0.0001 beta 0.75 k 1`"),
                    );
                    return None;
                };
                let l = ir::Lrn {
                    size,
                    alpha: a.alpha.unwrap_or(1e-4) as f32,
                    beta: a.beta.unwrap_or(0.75) as f32,
                    k: a.k.unwrap_or(1.0) as f32,
                };
                self.add_op(Op::Lrn(l), &[x?], span, path, "lrn")
            }
            LayerKind::Fc => {
                let out = count(&pos[0], "feature count", &mut errs);
                self.report(std::mem::take(&mut errs));
                let (out, x, xs) = (out?, x?, xin.clone()?);
                let l = ir::Linear {
                    in_features: xs.0.get(1).copied().unwrap_or(0),
                    out_features: out,
                    key: path.to_string(),
                    bias: a.bias.unwrap_or(true),
                    relu: false,
                };
                self.add_op(Op::Linear(l), &[x], span, path, "fc")
            }
        };
        let y = result?;
        if a.relu.unwrap_or(false) { self.add_op(Op::Relu, &[y], span, path, "relu") } else { Some(y) }
    }
}
