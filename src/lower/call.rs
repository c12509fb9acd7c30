//! Block calls: binding arguments to parameters and instantiating the block's body.

use super::eval::{Env, Value};
use super::kind::AttrOwner;
use super::{Lowering, MAX_DEPTH, suggest};
use crate::diag::{Diagnostic, Span};
use crate::ir::NodeId;
use crate::syntax::ast::{Arg, Ident};

impl<'a> Lowering<'a> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn call(
        &mut self,
        name: &Ident,
        args: &[Arg],
        args_span: Span,
        x: Option<NodeId>,
        path: &str,
        span: Span,
        env: &Env,
    ) -> Option<NodeId> {
        let Some(&block) = self.blocks.get(name.name.as_str()) else {
            let mut d =
                Diagnostic::error(name.span, format!("unknown block `{}`", name.name)).with_label("no such block");
            if AttrOwner::parse(&name.name).is_some() {
                d = d
                    .with_note(format!("`{}` is a layer: write it without parentheses, e.g. `conv 64 3x3`", name.name));
            } else if let Some(s) = suggest(&name.name, self.blocks.keys().copied()) {
                d = d.with_note(format!("did you mean `{s}`?"));
            }
            self.error(d);
            return None;
        };
        if let Some(pos) = self.stack.iter().position(|(n, _)| *n == block.name.name) {
            let mut chain: Vec<&str> = self.stack[pos..].iter().map(|(n, _)| *n).collect();
            chain.push(&block.name.name);
            let d = Diagnostic::error(name.span, format!("block `{}` instantiates itself", block.name.name))
                .with_label(format!("recursion: {}", chain.join(" -> ")))
                .with_secondary(block.name.span, "defined here");
            self.error(d);
            return None;
        }
        if self.stack.len() >= MAX_DEPTH {
            self.error(Diagnostic::error(name.span, format!("blocks nested more than {MAX_DEPTH} deep")));
            return None;
        }
        // Bind arguments: positional first, then named.
        let mut errs = vec![];
        let params = &block.params;
        let mut vals: Vec<Option<Value>> = vec![None; params.len()];
        let mut bound = vec![false; params.len()];
        let mut ok = true;
        let positional = args.iter().take_while(|a| a.name.is_none()).count();
        if positional > params.len() {
            errs.push(
                Diagnostic::error(
                    args_span,
                    format!("block `{}` {}, found {}", block.name.name, takes(params), positional),
                )
                .with_label("too many arguments")
                .with_secondary(block.name.span, "defined here"),
            );
            ok = false;
        }
        for (i, a) in args.iter().enumerate() {
            let slot = match &a.name {
                None if i < positional => {
                    if i >= params.len() {
                        continue;
                    }
                    i
                }
                None => {
                    errs.push(
                        Diagnostic::error(a.value.span, "positional argument after a named one")
                            .with_label("name it, or move it before the named arguments"),
                    );
                    ok = false;
                    continue;
                }
                Some(n) => match params.iter().position(|p| p.name.name == n.name) {
                    Some(j) => j,
                    None => {
                        let mut d = Diagnostic::error(
                            n.span,
                            format!("block `{}` has no parameter `{}`", block.name.name, n.name),
                        )
                        .with_label("unknown parameter")
                        .with_secondary(block.name.span, "defined here");
                        if let Some(s) = suggest(&n.name, params.iter().map(|p| p.name.name.as_str())) {
                            d = d.with_note(format!("did you mean `{s}`?"));
                        }
                        errs.push(d);
                        ok = false;
                        continue;
                    }
                },
            };
            if bound[slot] {
                let at = a.name.as_ref().map(|n| n.span).unwrap_or(a.value.span);
                errs.push(
                    Diagnostic::error(at, format!("parameter `{}` is given twice", params[slot].name.name))
                        .with_label("already given by an earlier argument")
                        .with_secondary(args_span, "in this argument list"),
                );
                ok = false;
                continue;
            }
            bound[slot] = true;
            match env.eval(&a.value, &mut errs) {
                Some(v) => vals[slot] = Some(v),
                None => ok = false,
            }
        }
        let mut inner = Env::default();
        let mut shown = vec![];
        for (i, p) in params.iter().enumerate() {
            let v = match (vals[i], bound[i], &p.default) {
                (Some(v), _, _) => Some(v),
                (None, true, _) => None,
                (None, false, Some(d)) => inner.eval(d, &mut errs),
                (None, false, None) => {
                    errs.push(
                        Diagnostic::error(
                            args_span,
                            format!("missing argument `{}` of block `{}`", p.name.name, block.name.name),
                        )
                        .with_label(format!("block `{}` {}", block.name.name, takes(params)))
                        .with_secondary(p.name.span, "parameter declared here"),
                    );
                    None
                }
            };
            match v {
                Some(v) => {
                    shown.push(v.to_string());
                    inner.bind(&p.name.name, v)
                }
                None => ok = false,
            }
        }
        self.report(errs);
        if !ok {
            return None;
        }
        // The instance's scope: the one its label opened, or a scope of its own.
        let call = format!("{}({})", block.name.name, shown.join(", "));
        let outer = self.scope;
        match self.scope.map(|id| &mut self.g.scopes[id.index()]) {
            Some(own) if own.span == span && own.block.is_none() => own.block = Some(call),
            _ => self.enter(block.name.name.clone(), path, span, Some(call)),
        }
        self.stack.push((&block.name.name, span));
        let defaults = self.file_defaults.clone();
        let y = self.seq(&block.body, x, path, None, &inner, &defaults);
        self.stack.pop();
        self.scope = outer;
        y
    }
}

/// `takes 2 arguments`, `takes 1 argument`, or with defaults `takes 5 to 6 arguments`.
fn takes(params: &[crate::syntax::ast::Param]) -> String {
    let (all, required) = (params.len(), params.iter().filter(|p| p.default.is_none()).count());
    let plural = if all == 1 { "" } else { "s" };
    if required == all {
        format!("takes {all} argument{plural}")
    } else {
        format!("takes {required} to {all} arguments")
    }
}
