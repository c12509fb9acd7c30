//! Layer words (`64 3x3 stride 2 pad 1 nobias`) interpreted into typed attributes.

use super::eval::{Env, Value};
use super::kind::{AttrOwner, LayerKind};
use crate::diag::{Diagnostic, Span};
use crate::ir::Pad;
use crate::syntax::ast::{Word, WordKind};

/// How padding was written.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PadSpec {
    /// Explicit per-side padding.
    Fixed(Pad),
    /// TensorFlow `SAME`.
    Same,
    /// No padding.
    Valid,
}

/// A value written as a layer word, with its location.
#[derive(Clone, Debug)]
pub struct Positional {
    /// A number, or `[h, w]` dimensions.
    pub value: PosValue,
    /// Where.
    pub span: Span,
}

/// Positional word values.
#[derive(Clone, Debug)]
pub enum PosValue {
    /// A scalar.
    Scalar(Value),
    /// `HxW`.
    Dims(Vec<u64>),
}

/// Every attribute any layer can have; `None` = not written (the default applies).
#[allow(missing_docs)]
#[derive(Clone, Debug, Default)]
pub struct Attrs {
    pub positional: Vec<Positional>,
    pub stride: Option<[usize; 2]>,
    pub pad: Option<PadSpec>,
    pub groups: Option<usize>,
    pub bias: Option<bool>,
    pub bn: Option<bool>,
    pub eps: Option<f64>,
    pub relu: Option<bool>,
    pub ceil: Option<bool>,
    pub include_pad: Option<bool>,
    pub size: Option<usize>,
    pub alpha: Option<f64>,
    pub beta: Option<f64>,
    pub k: Option<f64>,
    pub p: Option<f64>,
    pub scale: Option<f64>,
}

macro_rules! overlay {
    ($base:expr, $top:expr, $($f:ident),*) => { $( if $top.$f.is_some() { $base.$f = $top.$f.clone(); } )* };
}

impl Attrs {
    /// `self` with every attribute `top` writes replaced (positional words come from `top`).
    pub fn overlay(&self, top: &Attrs) -> Attrs {
        let mut a = self.clone();
        overlay!(a, top, stride, pad, groups, bias, bn, eps, relu, ceil, include_pad, size, alpha, beta, k, p, scale);
        a.positional = top.positional.clone();
        a
    }
}

/// The attribute keywords the layer kind (or `residual`) named `kind` accepts
/// ([`AttrOwner::keywords`]); `None` for an unknown kind.
pub fn keywords(kind: &str) -> Option<&'static [&'static str]> {
    AttrOwner::parse(kind).map(AttrOwner::keywords)
}

/// Every layer kind, for suggestions: the names of [`LayerKind::ALL`].
pub const LAYER_KINDS: &[&str] = &LAYER_NAMES;

const LAYER_NAMES: [&str; LayerKind::ALL.len()] = {
    let mut names = [""; LayerKind::ALL.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = LayerKind::ALL[i].name();
        i += 1;
    }
    names
};

/// Interprets `words` for a layer of `kind`; errors are pushed to `errs`.
pub fn parse_attrs(kind: AttrOwner, words: &[Word], env: &Env, errs: &mut Vec<Diagnostic>) -> Attrs {
    let allowed = kind.keywords();
    let mut a = Attrs::default();
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        i += 1;
        // `key = expr` form.
        if let WordKind::FlagSet(name, e) = &w.kind {
            if !allowed.contains(&name.name.as_str()) {
                errs.push(unknown_attr(kind, &name.name, name.span, allowed));
                continue;
            }
            let Some(v) = env.eval(e, errs) else { continue };
            let key = name.name.as_str();
            if key.starts_with("no") || key == "floor" || key == "exclude_pad" {
                errs.push(
                    Diagnostic::error(name.span, format!("`{key}` cannot take a value"))
                        .with_label("write the positive flag with a value instead, e.g. `relu = false`"),
                );
                continue;
            }
            set(&mut a, kind, key, ValueWord::Value(v, e.span), errs);
            continue;
        }
        let Some(key) = w.as_ident().filter(|k| allowed.contains(k) || !env.has(k)) else {
            // A positional value.
            match &w.kind {
                WordKind::Dims(d) => a.positional.push(Positional { value: PosValue::Dims(d.clone()), span: w.span }),
                WordKind::Expr(e) => {
                    if let Some(v) = env.eval(e, errs) {
                        a.positional.push(Positional { value: PosValue::Scalar(v), span: w.span });
                    }
                }
                WordKind::Tuple(_) => errs.push(
                    Diagnostic::error(w.span, format!("unexpected tuple in `{kind}`"))
                        .with_label("a tuple is only valid after `pad`"),
                ),
                WordKind::FlagSet(..) => {}
            }
            continue;
        };
        if !allowed.contains(&key) {
            // Not an attribute and not a defined name: say which it most likely meant.
            if let Some(var) = super::suggest(key, env.names()) {
                errs.push(
                    Diagnostic::error(w.span, format!("unknown name `{key}`"))
                        .with_label("not a parameter or attribute")
                        .with_note(format!("did you mean `{var}`?")),
                );
                continue;
            }
            errs.push(unknown_attr(kind, key, w.span, allowed));
            // A misspelt keyword is usually followed by its value: skip that too, so one typo
            // gives one error.
            if words.get(i).is_some_and(|v| v.as_ident().is_none_or(|n| !allowed.contains(&n))) {
                i += 1;
            }
            continue;
        }
        match key {
            "bias" | "bn" | "relu" | "ceil" | "include_pad" => {
                set(&mut a, kind, key, ValueWord::Value(Value::Bool(true), w.span), errs)
            }
            "nobias" | "nobn" | "norelu" | "floor" | "exclude_pad" => {
                let pos = match key {
                    "nobias" => "bias",
                    "nobn" => "bn",
                    "norelu" => "relu",
                    "floor" => "ceil",
                    _ => "include_pad",
                };
                set(&mut a, kind, pos, ValueWord::Value(Value::Bool(false), w.span), errs)
            }
            _ => {
                // A keyword that takes the next word as its value.
                let Some(v) = words.get(i) else {
                    errs.push(
                        Diagnostic::error(w.span, format!("`{key}` needs a value"))
                            .with_label(format!("expected a value after `{key}`")),
                    );
                    continue;
                };
                i += 1;
                let vw = match &v.kind {
                    WordKind::Dims(d) => ValueWord::Dims(d.clone(), v.span),
                    WordKind::Tuple(es) => {
                        let vals: Option<Vec<Value>> = es.iter().map(|e| env.eval(e, errs)).collect();
                        let Some(vals) = vals else { continue };
                        ValueWord::Tuple(vals, v.span)
                    }
                    WordKind::Expr(e) => match v.as_ident() {
                        Some(id @ ("same" | "valid")) if key == "pad" => ValueWord::Word(id.to_string(), v.span),
                        _ => {
                            let Some(val) = env.eval(e, errs) else { continue };
                            ValueWord::Value(val, v.span)
                        }
                    },
                    WordKind::FlagSet(..) => {
                        errs.push(Diagnostic::error(v.span, format!("expected a value after `{key}`")));
                        continue;
                    }
                };
                set(&mut a, kind, key, vw, errs);
            }
        }
    }
    a
}

fn unknown_attr(kind: AttrOwner, key: &str, span: Span, allowed: &[&str]) -> Diagnostic {
    let d = Diagnostic::error(span, format!("`{kind}` has no attribute `{key}`")).with_label("unknown attribute");
    match super::suggest(key, allowed.iter().copied()) {
        Some(s) => d.with_note(format!("did you mean `{s}`?")),
        None if allowed.is_empty() => d.with_note(format!("`{kind}` takes no attributes")),
        None => d.with_note(format!("`{kind}` accepts: {}", allowed.join(", "))),
    }
}

/// The value following a keyword.
enum ValueWord {
    Value(Value, Span),
    Dims(Vec<u64>, Span),
    Tuple(Vec<Value>, Span),
    Word(String, Span),
}

impl ValueWord {
    fn span(&self) -> Span {
        match self {
            ValueWord::Value(_, s) | ValueWord::Dims(_, s) | ValueWord::Tuple(_, s) | ValueWord::Word(_, s) => *s,
        }
    }
}

fn set(a: &mut Attrs, kind: AttrOwner, key: &str, v: ValueWord, errs: &mut Vec<Diagnostic>) {
    let span = v.span();
    let bad = |what: &str| {
        Diagnostic::error(span, format!("invalid value for `{key}` in `{kind}`")).with_label(format!("expected {what}"))
    };
    let dim = |d: u64| usize::try_from(d).ok();
    match key {
        "bias" | "bn" | "relu" | "ceil" | "include_pad" => {
            let b = match &v {
                ValueWord::Value(val, _) => val.as_bool(),
                _ => None,
            };
            let Some(b) = b else { return errs.push(bad("`true` or `false`")) };
            match key {
                "bias" => a.bias = Some(b),
                "bn" => a.bn = Some(b),
                "relu" => a.relu = Some(b),
                "ceil" => a.ceil = Some(b),
                _ => a.include_pad = Some(b),
            }
        }
        "stride" => match v {
            ValueWord::Value(val, _) => match val.as_size() {
                Some(s) if s >= 1 => a.stride = Some([s, s]),
                _ => errs.push(bad("a positive integer")),
            },
            ValueWord::Dims(d, _) if d.len() == 2 && d.iter().all(|&x| x >= 1) => match (dim(d[0]), dim(d[1])) {
                (Some(h), Some(w)) => a.stride = Some([h, w]),
                _ => errs.push(bad("a smaller stride")),
            },
            _ => errs.push(bad("a positive integer or `HxW`")),
        },
        "pad" => match v {
            ValueWord::Value(val, _) => match val.as_size() {
                Some(p) => a.pad = Some(PadSpec::Fixed(Pad::all(p))),
                None => errs.push(bad("a non-negative integer")),
            },
            ValueWord::Dims(d, _) if d.len() == 2 => match (dim(d[0]), dim(d[1])) {
                (Some(h), Some(w)) => a.pad = Some(PadSpec::Fixed(Pad::hw(h, w))),
                _ => errs.push(bad("a smaller padding")),
            },
            ValueWord::Tuple(t, _) if t.len() == 4 => {
                let s: Option<Vec<usize>> = t.iter().map(|x| x.as_size()).collect();
                match s {
                    Some(s) => a.pad = Some(PadSpec::Fixed(Pad { top: s[0], bottom: s[1], left: s[2], right: s[3] })),
                    None => errs.push(bad("non-negative integers (top, bottom, left, right)")),
                }
            }
            ValueWord::Word(w, _) => a.pad = Some(if w == "same" { PadSpec::Same } else { PadSpec::Valid }),
            _ => errs.push(bad("`P`, `PHxPW`, `(top, bottom, left, right)`, `same` or `valid`")),
        },
        "groups" | "size" => {
            let n = match &v {
                ValueWord::Value(val, _) => val.as_size().filter(|&n| n >= 1),
                _ => None,
            };
            let Some(n) = n else { return errs.push(bad("a positive integer")) };
            if key == "groups" { a.groups = Some(n) } else { a.size = Some(n) }
        }
        _ => {
            let x = match &v {
                ValueWord::Value(val, _) => val.as_f64(),
                _ => None,
            };
            let Some(x) = x else { return errs.push(bad("a number")) };
            let ok = match key {
                "eps" => x > 0.0 && x.is_finite(),
                "p" => (0.0..=1.0).contains(&x),
                _ => x.is_finite(),
            };
            if !ok {
                let what = if key == "eps" { "a positive number" } else { "a number between 0 and 1" };
                return errs.push(bad(what));
            }
            match key {
                "eps" => a.eps = Some(x),
                "alpha" => a.alpha = Some(x),
                "beta" => a.beta = Some(x),
                "k" => a.k = Some(x),
                "p" => a.p = Some(x),
                _ => a.scale = Some(x),
            }
        }
    }
}
