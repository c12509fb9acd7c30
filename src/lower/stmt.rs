//! Statement lowering: sequences, repeats, defaults, concatenations, residuals and outputs.

use super::attrs::parse_attrs;
use super::eval::{Env, Value};
use super::kind::AttrOwner;
use super::{Defaults, Lowering, display_path};
use crate::diag::Diagnostic;
use crate::ir::infer::infer;
use crate::ir::{NodeId, Op, Shape};
use crate::syntax::ast::{Ident, Stmt, StmtKind, Word};

impl<'a> Lowering<'a> {
    pub(super) fn default_stmt(&mut self, kind: &Ident, words: &[Word], env: &Env, defs: &mut Defaults) {
        let Some(owner) = AttrOwner::parse(&kind.name) else {
            self.unknown_layer(kind);
            return;
        };
        let mut errs = vec![];
        let a = parse_attrs(owner, words, env, &mut errs);
        if let Some(p) = a.positional.first() {
            errs.push(
                Diagnostic::error(p.span, "a default cannot give positional values")
                    .with_label("only attributes such as `stride 2` or `nobias` can be defaults"),
            );
        }
        self.report(errs);
        let merged = defs.get(&owner).cloned().unwrap_or_default().overlay(&a);
        defs.insert(owner, merged);
    }

    /// Elaborates a sequence; `index` numbers its statements (`[ ... ]`).
    pub(super) fn seq(
        &mut self,
        stmts: &[Stmt],
        mut x: Option<NodeId>,
        path: &str,
        mut index: Option<&mut usize>,
        env: &Env,
        defaults: &Defaults,
    ) -> Option<NodeId> {
        let mut local = None::<Defaults>;
        for s in stmts {
            if !self.tick(s.span) {
                return None;
            }
            let defs = local.as_ref().unwrap_or(defaults);
            match &s.kind {
                StmtKind::Default { kind, words } => {
                    let mut d = defs.clone();
                    self.default_stmt(kind, words, env, &mut d);
                    local = Some(d);
                }
                StmtKind::Repeat { count, var, body } => {
                    let mut errs = vec![];
                    let n = env.eval(count, &mut errs);
                    self.report(errs);
                    let n = match n.map(|v| v.as_size()) {
                        None => continue,
                        Some(Some(n)) if n <= 100_000 => n,
                        Some(_) => {
                            self.error(
                                Diagnostic::error(count.span, "invalid repeat count")
                                    .with_label("expected an integer from 0 to 100000"),
                            );
                            continue;
                        }
                    };
                    let sub = match &s.label {
                        Some(l) => self.label_text(l, env).map(|t| (self.join(path, &t), Some(t))),
                        None => Some((path.to_string(), None)),
                    };
                    let Some((sub, label)) = sub else { continue };
                    let defs = defs.clone();
                    let outer = self.scope;
                    if let Some(label) = label {
                        self.enter(label, &sub, s.span, None);
                    }
                    for i in 0..n {
                        let mut e = env.clone();
                        if let Some(v) = var {
                            e.bind(&v.name, Value::Int(i as i64));
                        }
                        let before = self.errs.len();
                        x = self.seq(body, x, &sub, index.as_deref_mut(), &e, &defs);
                        // Later iterations would mostly repeat an iteration's errors: stop at the first.
                        if self.aborted || self.errs.len() > before {
                            x = None;
                            break;
                        }
                    }
                    self.scope = outer;
                }
                _ => {
                    let counts = !matches!(s.kind, StmtKind::Output { .. });
                    // The statement's path and, when it is labelled or indexed, its scope's label.
                    let sub = match (&s.label, index.as_deref_mut()) {
                        (Some(l), idx) => {
                            if let (Some(i), true) = (idx, counts) {
                                *i += 1;
                            }
                            self.label_text(l, env).map(|t| (self.join(path, &t), Some(t)))
                        }
                        (None, Some(i)) if counts => {
                            let t = i.to_string();
                            *i += 1;
                            Some((self.join(path, &t), Some(t)))
                        }
                        _ => Some((path.to_string(), None)),
                    };
                    let Some((sub, label)) = sub else {
                        x = None;
                        continue;
                    };
                    let defs = defs.clone();
                    let outer = self.scope;
                    if let Some(label) = label {
                        self.enter(label, &sub, s.span, None);
                    }
                    x = self.stmt(s, x, &sub, env, &defs);
                    self.scope = outer;
                }
            }
        }
        x
    }

    fn stmt(&mut self, s: &Stmt, x: Option<NodeId>, path: &str, env: &Env, defaults: &Defaults) -> Option<NodeId> {
        match &s.kind {
            StmtKind::Layer { kind, words } => self.layer(kind, words, x, path, s.span, env, defaults),
            StmtKind::Seq(body) => self.seq(body, x, path, None, env, defaults),
            StmtKind::IndexedSeq(body) => {
                let mut i = 0;
                self.seq(body, x, path, Some(&mut i), env, defaults)
            }
            StmtKind::Concat(branches) => {
                if branches.is_empty() {
                    self.error(Diagnostic::error(s.span, "`concat` needs at least one branch"));
                    return None;
                }
                let mut ys = vec![];
                for b in branches {
                    ys.push((self.seq(std::slice::from_ref(b), x, path, None, env, defaults), b.span));
                }
                let ins: Option<Vec<NodeId>> = ys.iter().map(|(y, _)| *y).collect();
                let ins = ins?;
                let shapes: Vec<&Shape> = ins.iter().map(|&i| &self.g.node(i).shape).collect();
                match infer(&Op::Concat, &shapes) {
                    Ok(shape) => {
                        let id = self.g.add(Op::Concat, shape, s.span, self.node_name(path, "concat"), &ins);
                        self.g.node_mut(id).scope = self.scope;
                        Some(id)
                    }
                    Err(msg) => {
                        let mut d = Diagnostic::error(s.span, format!("concat in {}: {msg}", display_path(path)))
                            .with_label("branches must agree in every dimension but channels");
                        for (i, (y, span)) in ys.iter().enumerate() {
                            if let Some(y) = y {
                                d = d.with_secondary(*span, format!("branch {} is {}", i + 1, self.g.node(*y).shape));
                            }
                        }
                        self.error(d);
                        None
                    }
                }
            }
            StmtKind::Residual { words, body } => {
                let mut errs = vec![];
                let top = parse_attrs(AttrOwner::Residual, words, env, &mut errs);
                for p in &top.positional {
                    errs.push(
                        Diagnostic::error(p.span, "unexpected value in `residual`")
                            .with_label("write `residual scale 0.17 relu { ... }`"),
                    );
                }
                self.report(errs);
                let a = defaults.get(&AttrOwner::Residual).cloned().unwrap_or_default().overlay(&top);
                let f = self.seq(body, x, path, None, env, defaults);
                let (x, f) = (x?, f?);
                let scale = a.scale.unwrap_or(1.0) as f32;
                let (xs, fs) = (self.g.node(x).shape.clone(), self.g.node(f).shape.clone());
                if xs != fs {
                    let d = Diagnostic::error(
                        s.span,
                        format!("residual in {}: the body gives {fs}, but its input is {xs}", display_path(path)),
                    )
                    .with_label(format!("body output {fs} cannot be added to the input {xs}"))
                    .with_note("`residual { f }` computes x + scale * f(x): f must keep the shape of x");
                    self.error(d);
                    return None;
                }
                let y = self.add_op(Op::Add { scale }, &[x, f], s.span, path, "residual sum")?;
                if a.relu.unwrap_or(false) { self.add_op(Op::Relu, &[y], s.span, path, "relu") } else { Some(y) }
            }
            StmtKind::Output { name, body } => {
                let y = match body {
                    Some(b) => self.seq(b, x, path, None, env, defaults),
                    None => x,
                };
                if let Some(prev) = self.outputs.get(&name.name) {
                    let d = Diagnostic::error(name.span, format!("output `{}` is declared twice", name.name))
                        .with_secondary(*prev, "first declared here");
                    self.error(d);
                } else {
                    self.outputs.insert(name.name.clone(), name.span);
                    if let Some(y) = y {
                        self.g.outputs.push((name.name.clone(), y));
                    }
                }
                x
            }
            StmtKind::Call { name, args, args_span } => self.call(name, args, *args_span, x, path, s.span, env),
            StmtKind::Default { .. } | StmtKind::Repeat { .. } => {
                self.seq(std::slice::from_ref(s), x, path, None, env, defaults)
            }
        }
    }
}
