//! The `preprocess` declaration's words interpreted into a [`Preprocess`].
//!
//! ```text
//! preprocess resize 342 bilinear crop 299 normalize rgb mean (0.485, 0.456, 0.406) std (0.229, 0.224, 0.225)
//!            ^^^^^^^^^^ ^^^^^^^^ ^^^^^^^^ ^^^^^^^^^^^^^ ^^^^^^^^^^^^^^^^^^^^^^^^^ ^^^^^^^^^^^^^^^^^^^^^^^^
//!            required   default  optional required      1 or 3 values (default 0) 1 or 3 values (default 1)
//!                       bilinear (= input HxW)
//! ```
//!
//! Each setting is written at most once, in any order. Every mistake is reported with its
//! span: unknown settings and modes (with a suggestion), values of the wrong kind or count, a
//! crop larger than the resized image or different from the input size.

use super::eval::{Env, Value};
use super::suggest;
use crate::diag::{Diagnostic, Span};
use crate::ir::preprocess::{Interpolation, Mode, Preprocess, Resize};
use crate::syntax::ast::{ExprKind, InputDecl, PreprocessDecl, Word, WordKind};
use std::collections::HashMap;

/// The settings of `preprocess`.
const SETTINGS: &[&str] = &["resize", "bilinear", "bicubic", "crop", "normalize", "mean", "std"];

/// Largest resize or crop side accepted (the resized image is allocated from it).
pub const MAX_SIDE: usize = 8192;

/// Interprets the `preprocess` declarations of a file whose input is `input` (`None` if the
/// input declaration is missing or invalid: then nothing is checked against it).
pub fn lower(decls: &[PreprocessDecl], input: Option<&InputDecl>, errs: &mut Vec<Diagnostic>) -> Option<Preprocess> {
    let decl = decls.first()?;
    for extra in &decls[1..] {
        errs.push(
            Diagnostic::error(extra.span, "only one `preprocess` declaration is allowed")
                .with_secondary(decl.span, "the first is here"),
        );
    }
    let n_before = errs.len();
    let mut seen: HashMap<&str, Span> = HashMap::new();
    let mut misspelt = false;
    let mut resize = None;
    let mut interpolation = None;
    let mut crop = None;
    let mut mode = None;
    let mut mean = None;
    let mut std = None;
    let env = Env::default();
    let mut words = decl.words.iter().peekable();
    while let Some(w) = words.next() {
        // `key = value` is the same as `key value`.
        let (key, key_span, inline) = match &w.kind {
            WordKind::FlagSet(name, e) => {
                (name.name.as_str(), name.span, Some(Word { kind: WordKind::Expr(e.clone()), span: e.span }))
            }
            _ => match w.as_ident() {
                Some(k) => (k, w.span, None),
                None => {
                    errs.push(
                        Diagnostic::error(w.span, "unexpected value in `preprocess`")
                            .with_label("expected a setting")
                            .with_note(format!("`preprocess` accepts: {}", SETTINGS.join(", "))),
                    );
                    continue;
                }
            },
        };
        if !SETTINGS.contains(&key) {
            misspelt = true;
            let mut d = Diagnostic::error(key_span, format!("`preprocess` has no setting `{key}`"))
                .with_label("unknown setting");
            d = match suggest(key, SETTINGS.iter().copied()) {
                Some(s) => d.with_note(format!("did you mean `{s}`?")),
                None => d.with_note(format!("`preprocess` accepts: {}", SETTINGS.join(", "))),
            };
            errs.push(d);
            // A misspelt setting is usually followed by its value: skip that too, so one typo
            // gives one error.
            if inline.is_none() {
                words.next_if(|v| v.as_ident().is_none_or(|n| !SETTINGS.contains(&n)));
            }
            continue;
        }
        // `bilinear` and `bicubic` are one setting.
        let slot = if key == "bicubic" { "bilinear" } else { key };
        if let Some(first) = seen.insert(slot, key_span) {
            errs.push(
                Diagnostic::error(key_span, format!("`{key}` is given twice in `preprocess`"))
                    .with_secondary(first, "first given here"),
            );
        }
        match key {
            "bilinear" | "bicubic" if inline.is_some() => {
                errs.push(Diagnostic::error(key_span, format!("`{key}` cannot take a value")));
                continue;
            }
            "bilinear" => interpolation = Some(Interpolation::Bilinear),
            "bicubic" => interpolation = Some(Interpolation::Bicubic),
            _ => {
                let value = match inline {
                    Some(v) => v,
                    None => match words.next_if(|v| v.as_ident().is_none_or(|n| !SETTINGS.contains(&n))) {
                        Some(v) => v.clone(),
                        None => {
                            errs.push(
                                Diagnostic::error(key_span, format!("`{key}` needs a value"))
                                    .with_label(format!("expected a value after `{key}`")),
                            );
                            continue;
                        }
                    },
                };
                match key {
                    "resize" => resize = side_or_dims(key, &value, &env, errs).map(|r| (r, value.span)),
                    "crop" => {
                        crop = side_or_dims(key, &value, &env, errs).map(|r| {
                            let hw = match r {
                                Resize::ShorterSide(n) => [n, n],
                                Resize::Exact(hw) => hw,
                            };
                            (hw, value.span)
                        })
                    }
                    "normalize" => mode = normalize_mode(&value, errs),
                    "mean" => mean = numbers(key, &value, &env, errs).map(|v| (v, value.span)),
                    _ => std = numbers(key, &value, &env, errs).map(|v| (v, value.span)),
                }
            }
        }
    }
    // A misspelt setting is the likely reason one is missing: then only the misspelling is reported.
    if !seen.contains_key("resize") && !misspelt {
        errs.push(
            Diagnostic::error(decl.span, "`preprocess` needs `resize`")
                .with_label("expected e.g. `resize 256` (shorter side to 256) or `resize 256x256`"),
        );
    }
    if !seen.contains_key("normalize") && !misspelt {
        errs.push(
            Diagnostic::error(decl.span, "`preprocess` needs `normalize`")
                .with_label("expected e.g. `normalize rgb mean (0.485, 0.456, 0.406) std (0.229, 0.224, 0.225)`"),
        );
    }
    let channels = |v: Option<(Vec<f64>, Span)>, key: &str, default: f64, errs: &mut Vec<Diagnostic>| -> [f32; 3] {
        match v {
            None => [default as f32; 3],
            Some((v, _)) if v.len() == 1 => [v[0] as f32; 3],
            Some((v, _)) if v.len() == 3 => [v[0] as f32, v[1] as f32, v[2] as f32],
            Some((v, span)) => {
                errs.push(
                    Diagnostic::error(span, format!("`{key}` has {} values, but the image has 3 channels", v.len()))
                        .with_label("expected one value (for all channels) or three (one per channel)"),
                );
                [default as f32; 3]
            }
        }
    };
    if mode == Some(Mode::Inception) {
        for (key, v) in [("mean", &mean), ("std", &std)] {
            if let Some((_, span)) = v {
                errs.push(
                    Diagnostic::error(*span, format!("`normalize inception` does not take `{key}`"))
                        .with_label("`inception` scales RGB to [-1, 1]: mean and std are 0.5")
                        .with_note("write `normalize rgb mean ... std ...` for other values"),
                );
            }
        }
    }
    if let Some((v, span)) = &std
        && v.iter().any(|&s| s <= 0.0)
    {
        errs.push(
            Diagnostic::error(*span, "invalid value for `std` in `preprocess`").with_label("expected positive numbers"),
        );
    }
    let (mean_v, std_v) = if mode == Some(Mode::Inception) {
        ([0.5; 3], [0.5; 3])
    } else {
        (channels(mean, "mean", 0.0, errs), channels(std, "std", 1.0, errs))
    };
    // The crop against the resized image and the input.
    if let Some(input) = input.filter(|i| i.dims.len() == 3) {
        let (c, h, w) = (input.dims[0], input.dims[1] as usize, input.dims[2] as usize);
        if c != 3 {
            errs.push(
                Diagnostic::error(decl.span, format!("image preprocessing needs a 3-channel input, not {c}"))
                    .with_secondary(input.span, "the input is declared here"),
            );
        }
        if let Some((hw, span)) = crop
            && hw != [h, w]
        {
            errs.push(
                Diagnostic::error(span, format!("crop {}x{} does not match the input {h}x{w}", hw[0], hw[1]))
                    .with_label("the crop is the network's input")
                    .with_secondary(input.span, "the input is declared here"),
            );
        }
        let (crop_hw, crop_span) = crop.map_or(([h, w], None), |(hw, s)| (hw, Some(s)));
        if let Some((r, rspan)) = resize {
            let (fits, resized) = match r {
                Resize::ShorterSide(n) => {
                    (crop_hw[0] <= n && crop_hw[1] <= n, format!("`resize {n}` makes the shorter side {n}"))
                }
                Resize::Exact([rh, rw]) => {
                    (crop_hw[0] <= rh && crop_hw[1] <= rw, format!("`resize {rh}x{rw}` makes the image {rh}x{rw}"))
                }
            };
            if !fits {
                let what = format!("crop {}x{} is larger than the resized image", crop_hw[0], crop_hw[1]);
                let d = match crop_span {
                    Some(s) => Diagnostic::error(s, what).with_label("the crop").with_secondary(rspan, resized),
                    None => Diagnostic::error(rspan, what)
                        .with_label(resized)
                        .with_secondary(input.span, "the crop is the input's height and width"),
                };
                errs.push(d);
            }
        }
    }
    if errs.len() > n_before || input.is_none() {
        return None;
    }
    let (resize, _) = resize?;
    let input = input?;
    Some(Preprocess {
        resize,
        interpolation: interpolation.unwrap_or(Interpolation::Bilinear),
        crop: crop.map_or([input.dims[1] as usize, input.dims[2] as usize], |c| c.0),
        mode: mode?,
        mean: mean_v,
        std: std_v,
    })
}

/// `N` or `HxW`, each side from 1 to [`MAX_SIDE`].
fn side_or_dims(key: &str, w: &Word, env: &Env, errs: &mut Vec<Diagnostic>) -> Option<Resize> {
    let bad = |errs: &mut Vec<Diagnostic>| {
        errs.push(
            Diagnostic::error(w.span, format!("invalid value for `{key}` in `preprocess`"))
                .with_label(format!("expected a size `N` or `HxW`, each from 1 to {MAX_SIDE}")),
        );
        None
    };
    let ok = |n: u64| n >= 1 && n <= MAX_SIDE as u64;
    match &w.kind {
        WordKind::Dims(d) if d.len() == 2 && d.iter().all(|&x| ok(x)) => {
            Some(Resize::Exact([d[0] as usize, d[1] as usize]))
        }
        WordKind::Expr(e) => match env.eval(e, errs)? {
            Value::Int(n) if n >= 1 && ok(n as u64) => Some(Resize::ShorterSide(n as usize)),
            _ => bad(errs),
        },
        _ => bad(errs),
    }
}

/// The mode after `normalize`.
fn normalize_mode(w: &Word, errs: &mut Vec<Diagnostic>) -> Option<Mode> {
    let keywords = Mode::ALL.map(|(k, _)| k);
    let list = format!("`{}` or `{}`", keywords[..3].join("`, `"), keywords[3]);
    let Some(name) = w.as_ident() else {
        errs.push(
            Diagnostic::error(w.span, "expected a normalisation mode after `normalize`")
                .with_label(format!("one of {list}")),
        );
        return None;
    };
    if let Some((_, m)) = Mode::ALL.iter().find(|(k, _)| *k == name) {
        return Some(*m);
    }
    let mut d = Diagnostic::error(w.span, format!("unknown normalisation mode `{name}`"))
        .with_label(format!("expected {list}"));
    if let Some(s) = suggest(name, keywords.into_iter()) {
        d = d.with_note(format!("did you mean `{s}`?"));
    }
    errs.push(d);
    None
}

/// One number or a tuple of numbers.
fn numbers(key: &str, w: &Word, env: &Env, errs: &mut Vec<Diagnostic>) -> Option<Vec<f64>> {
    let exprs = match &w.kind {
        WordKind::Tuple(es) => es.iter().collect(),
        WordKind::Expr(e) if !matches!(e.kind, ExprKind::Bool(_)) => vec![e],
        _ => {
            errs.push(
                Diagnostic::error(w.span, format!("invalid value for `{key}` in `preprocess`"))
                    .with_label("expected a number or `(a, b, c)`"),
            );
            return None;
        }
    };
    let mut out = vec![];
    for e in exprs {
        match env.eval(e, errs)?.as_f64() {
            Some(x) => out.push(x),
            None => {
                errs.push(
                    Diagnostic::error(e.span, format!("invalid value for `{key}` in `preprocess`"))
                        .with_label("expected a number"),
                );
                return None;
            }
        }
    }
    Some(out)
}
