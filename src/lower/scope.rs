//! Names, scopes and nodes: label paths, the scope tree, the elaboration budget, and adding a
//! shape-checked node whose weights get unique keys.

use super::eval::{Env, Value};
use super::{Lowering, MAX_NODES, MAX_PARAMS, MAX_STEPS, display_path};
use crate::diag::{Diagnostic, Span};
use crate::ir::infer::{MAX_TENSOR_ELEMENTS, infer};
use crate::ir::{self, NodeId, Op, Shape};
use crate::syntax::ast::{self, LabelPart};

impl<'a> Lowering<'a> {
    pub(super) fn join(&self, path: &str, label: &str) -> String {
        if path.is_empty() {
            label.to_string()
        } else if label.starts_with('_') {
            format!("{path}{label}")
        } else {
            format!("{path}{}{label}", self.names.sep)
        }
    }

    pub(super) fn label_text(&mut self, label: &ast::Label, env: &Env) -> Option<String> {
        let mut s = String::new();
        let mut errs = vec![];
        for p in &label.parts {
            match p {
                LabelPart::Text(t) => s.push_str(t),
                LabelPart::Hole(e) => match env.eval(e, &mut errs) {
                    Some(Value::Int(i)) => s.push_str(&i.to_string()),
                    Some(v) => errs.push(
                        Diagnostic::error(e.span, "a label can only interpolate integers")
                            .with_label(format!("this is {v}")),
                    ),
                    None => {}
                },
            }
        }
        let ok = errs.is_empty();
        self.report(errs);
        ok.then_some(s)
    }

    pub(super) fn tick(&mut self, span: Span) -> bool {
        if self.aborted {
            return false;
        }
        self.steps += 1;
        if self.steps > MAX_STEPS || self.g.g.node_count() > MAX_NODES {
            self.aborted = true;
            self.error(Diagnostic::error(span, "the network is too large to elaborate").with_label(format!(
                "stopped here after {MAX_STEPS} statements or {MAX_NODES} operations; is a repeat count too large?"
            )));
            return false;
        }
        true
    }

    /// Opens a scope inside the current one; the caller restores `self.scope` when it ends.
    pub(super) fn enter(&mut self, label: String, path: &str, span: Span, block: Option<String>) {
        let id = ir::ScopeId(self.g.scopes.len() as u32);
        self.g.scopes.push(ir::Scope { label, path: path.to_string(), parent: self.scope, block, span });
        self.scope = Some(id);
    }

    pub(super) fn node_name(&self, path: &str, kind: &str) -> String {
        if path.is_empty() { kind.replace(' ', "_") } else { path.to_string() }
    }

    /// Adds `op` reading `ins`, inferring its shape; reports a located error when it does not fit.
    pub(super) fn add_op(&mut self, op: Op, ins: &[NodeId], span: Span, path: &str, what: &str) -> Option<NodeId> {
        let shapes: Vec<&Shape> = ins.iter().map(|&i| &self.g.node(i).shape).collect();
        let shape = match infer(&op, &shapes) {
            Ok(s) => s,
            Err(msg) => {
                let found: Vec<String> = shapes.iter().map(|s| s.to_string()).collect();
                let d = Diagnostic::error(span, format!("{what} in {}: {msg}", display_path(path)))
                    .with_label(format!("input is {}", found.join(" and ")));
                self.error(d);
                return None;
            }
        };
        // Parameters: named, unique and within limits.
        for p in op.params() {
            if path.is_empty() {
                self.error(
                    Diagnostic::error(span, format!("this `{what}` has weights but no name"))
                        .with_label("give it a label, e.g. `conv1: conv 64 7x7`"),
                );
                return None;
            }
            if let Some(prev) = self.keys.get(&p.key) {
                let d = Diagnostic::error(span, format!("two layers would both have the weight `{}`", p.key))
                    .with_label("second layer")
                    .with_secondary(*prev, "first layer")
                    .with_note("give one of them a different label");
                self.error(d);
                return None;
            }
            let n = p.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).filter(|&n| n <= MAX_TENSOR_ELEMENTS);
            let Some(n) = n else {
                self.error(
                    Diagnostic::error(span, format!("weight `{}` is too large", p.key))
                        .with_label(format!("more than {MAX_TENSOR_ELEMENTS} elements")),
                );
                return None;
            };
            self.params_total += n as u64;
            if self.params_total > MAX_PARAMS {
                self.aborted = true;
                self.error(
                    Diagnostic::error(span, "the network has too many parameters")
                        .with_label(format!("more than {MAX_PARAMS} parameter elements in all")),
                );
                return None;
            }
            self.keys.insert(p.key.clone(), span);
        }
        let id = self.g.add(op, shape, span, self.node_name(path, what), ins);
        self.g.node_mut(id).scope = self.scope;
        Some(id)
    }
}
