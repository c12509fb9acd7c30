//! Elaboration: the AST of a file becomes an [`crate::ir::Graph`].
//!
//! Blocks are instantiated with their arguments, repeats unrolled, defaults applied, labels
//! turned into state-dict keys, and every tensor shape inferred. All errors of a file are
//! gathered before lowering stops; an error inside a block instance names the chain of
//! instantiations that led to it.

pub mod attrs;
pub mod eval;
pub mod preprocess;

use crate::diag::{Diagnostic, Span};
use crate::ir::infer::{MAX_TENSOR_ELEMENTS, infer};
use crate::ir::shape::same_pad;
use crate::ir::{self, Graph, NodeId, Op, Pad, Shape};
use crate::syntax::ast::{self, Arg, BlockDef, Ident, LabelPart, Stmt, StmtKind, Word};
use attrs::{Attrs, PadSpec, PosValue, Positional, keywords, parse_attrs};
use eval::{Env, Value};
use std::collections::HashMap;

/// Most statements elaborated for one file (guards against `repeat 1000000 { repeat ... }`).
pub const MAX_STEPS: usize = 1_000_000;
/// Most IR nodes in one network.
pub const MAX_NODES: usize = 200_000;
/// Most parameter elements in one network (8 GiB of f32).
pub const MAX_PARAMS: u64 = 1 << 31;
/// Deepest chain of block instantiations.
pub const MAX_DEPTH: usize = 64;
/// Most errors reported for one file.
pub const MAX_ERRORS: usize = 100;

/// Lowers a parsed file. `default_name` names the network when the file has no `network` line.
pub fn lower(file: &ast::File, default_name: &str) -> Result<Graph, Vec<Diagnostic>> {
    let mut l = Lowering::new(file, default_name);
    l.run(file);
    if l.errs.is_empty() { Ok(l.g) } else { Err(l.errs) }
}

/// The closest of `options` to `word`, if close enough to be a likely typo.
pub fn suggest<'a>(word: &str, options: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    options.map(|o| (edit_distance(word, o), o)).filter(|(d, _)| *d <= limit).min().map(|(_, o)| o)
}

/// Optimal-string-alignment distance: insertions, deletions, substitutions and adjacent
/// transpositions (`scael` is one edit from `scale`).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

/// How state-dict keys derive from label paths (`names` declarations).
struct Names {
    /// Key of a convolution that has a batch norm; `{}` is the path.
    conv: String,
    /// Key of that batch norm.
    bn: String,
    /// Joins labels into paths.
    sep: String,
}

type Defaults = HashMap<String, Attrs>;

struct Lowering<'a> {
    blocks: HashMap<&'a str, &'a BlockDef>,
    names: Names,
    file_defaults: Defaults,
    g: Graph,
    errs: Vec<Diagnostic>,
    keys: HashMap<String, Span>,
    outputs: HashMap<String, Span>,
    stack: Vec<(&'a str, Span)>,
    steps: usize,
    params_total: u64,
    aborted: bool,
    seen: std::collections::HashSet<(Span, String)>,
    /// The innermost scope being elaborated (see [`ir::Scope`]).
    scope: Option<ir::ScopeId>,
}

impl<'a> Lowering<'a> {
    fn new(file: &'a ast::File, default_name: &str) -> Self {
        let name = file.network.as_ref().map(|n| n.name.clone()).unwrap_or_else(|| default_name.to_string());
        Lowering {
            blocks: HashMap::new(),
            names: Names { conv: "{}.conv".into(), bn: "{}.bn".into(), sep: ".".into() },
            file_defaults: Defaults::new(),
            g: Graph::new(name),
            errs: vec![],
            keys: HashMap::new(),
            outputs: HashMap::new(),
            stack: vec![],
            steps: 0,
            params_total: 0,
            aborted: false,
            seen: Default::default(),
            scope: None,
        }
    }

    /// Pushes errors, annotated with the chain of block instantiations being elaborated.
    /// An error already reported at the same place (by another repeat iteration or block
    /// instance) is not repeated; past [`MAX_ERRORS`] elaboration stops.
    fn report(&mut self, errs: Vec<Diagnostic>) {
        for mut d in errs {
            if !self.seen.insert((d.span, d.message.clone())) {
                continue;
            }
            if self.errs.len() >= MAX_ERRORS {
                if !self.aborted {
                    self.aborted = true;
                    self.errs.push(Diagnostic::error(d.span, format!("too many errors; stopping after {MAX_ERRORS}")));
                }
                return;
            }
            for (name, span) in self.stack.iter().rev().take(6) {
                d = d.with_secondary(*span, format!("in this instance of block `{name}`"));
            }
            self.errs.push(d);
        }
    }

    fn error(&mut self, d: Diagnostic) {
        self.report(vec![d]);
    }

    fn run(&mut self, file: &'a ast::File) {
        for b in &file.blocks {
            if let Some(prev) = self.blocks.get(b.name.name.as_str()) {
                let d = Diagnostic::error(b.name.span, format!("block `{}` is defined twice", b.name.name))
                    .with_label("second definition")
                    .with_secondary(prev.name.span, "first definition");
                self.error(d);
            } else {
                self.blocks.insert(&b.name.name, b);
            }
            let mut seen: HashMap<&str, Span> = HashMap::new();
            for p in &b.params {
                if let Some(s) = seen.insert(&p.name.name, p.name.span) {
                    let d = Diagnostic::error(p.name.span, format!("parameter `{}` is declared twice", p.name.name))
                        .with_secondary(s, "first declared here");
                    self.error(d);
                }
            }
        }
        for (key, template, span) in &file.names {
            match key.name.as_str() {
                "conv" | "bn" if !template.contains("{}") => self.error(
                    Diagnostic::error(*span, format!("the `{}` name template must contain `{{}}`", key.name))
                        .with_label("`{}` stands for the layer's path, e.g. \"{}.conv\""),
                ),
                "conv" => self.names.conv = template.clone(),
                "bn" => self.names.bn = template.clone(),
                "sep" => self.names.sep = template.clone(),
                other => {
                    let mut d = Diagnostic::error(key.span, format!("unknown name template `{other}`"))
                        .with_label("expected `conv`, `bn` or `sep`");
                    if let Some(s) = suggest(other, ["conv", "bn", "sep"].into_iter()) {
                        d = d.with_note(format!("did you mean `{s}`?"));
                    }
                    self.error(d);
                }
            }
        }
        // File-wide defaults: every top-level `default` line, wherever it stands.
        let env = Env::default();
        let mut body = vec![];
        for s in &file.body {
            if let StmtKind::Default { kind, words } = &s.kind {
                let mut defs = std::mem::take(&mut self.file_defaults);
                self.default_stmt(kind, words, &env, &mut defs);
                self.file_defaults = defs;
            } else {
                body.push(s.clone());
            }
        }
        let x = self.declare_input(file);
        let mut errs = vec![];
        let input = file.inputs.first().filter(|_| x.is_some());
        self.g.preprocess = preprocess::lower(&file.preprocess, input, &mut errs);
        self.report(errs);
        let defaults = self.file_defaults.clone();
        let y = self.seq(&body, x, "", None, &env, &defaults);
        if self.g.outputs.is_empty() && !self.aborted {
            match y {
                Some(y) => self.g.outputs.push(("output".to_string(), y)),
                None if self.errs.is_empty() => {
                    self.error(Diagnostic::error(Span::default(), "the network computes nothing"));
                }
                None => {}
            }
        }
        if self.errs.is_empty() {
            let v = ir::verify::verify(&self.g);
            for e in v {
                self.errs.push(Diagnostic::error(Span::default(), format!("internal error: IR verifier: {e}")));
            }
        }
    }

    fn declare_input(&mut self, file: &ast::File) -> Option<NodeId> {
        let Some(decl) = file.inputs.first() else {
            self.error(
                Diagnostic::error(Span::default(), "the network has no `input` declaration")
                    .with_label("expected e.g. `input 3x224x224` (channels x height x width)"),
            );
            return None;
        };
        for extra in &file.inputs[1..] {
            self.error(
                Diagnostic::error(extra.span, "only one input is supported")
                    .with_secondary(decl.span, "the input is declared here"),
            );
        }
        if decl.dims.len() != 3 || decl.dims.contains(&0) {
            self.error(
                Diagnostic::error(decl.span, "invalid input shape")
                    .with_label("expected channels x height x width, each at least 1, e.g. `3x299x299`"),
            );
            return None;
        }
        let dims: Vec<usize> = decl.dims.iter().map(|&d| usize::try_from(d).unwrap_or(usize::MAX)).collect();
        let numel = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).filter(|&n| n <= MAX_TENSOR_ELEMENTS);
        if numel.is_none() {
            self.error(
                Diagnostic::error(decl.span, "input is too large")
                    .with_label(format!("more than {MAX_TENSOR_ELEMENTS} elements")),
            );
            return None;
        }
        let name = decl.name.as_ref().map(|n| n.name.clone()).unwrap_or_else(|| "input".into());
        let id = self.g.add(Op::Input, Shape::nchw(dims[0], dims[1], dims[2]), decl.span, name, &[]);
        self.g.inputs.push(id);
        Some(id)
    }

    fn join(&self, path: &str, label: &str) -> String {
        if path.is_empty() {
            label.to_string()
        } else if label.starts_with('_') {
            format!("{path}{label}")
        } else {
            format!("{path}{}{label}", self.names.sep)
        }
    }

    fn label_text(&mut self, label: &ast::Label, env: &Env) -> Option<String> {
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

    fn tick(&mut self, span: Span) -> bool {
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

    fn default_stmt(&mut self, kind: &Ident, words: &[Word], env: &Env, defs: &mut Defaults) {
        if keywords(&kind.name).is_none() {
            self.unknown_layer(kind);
            return;
        }
        let mut errs = vec![];
        let a = parse_attrs(&kind.name, words, env, &mut errs);
        if let Some(p) = a.positional.first() {
            errs.push(
                Diagnostic::error(p.span, "a default cannot give positional values")
                    .with_label("only attributes such as `stride 2` or `nobias` can be defaults"),
            );
        }
        self.report(errs);
        let merged = defs.get(&kind.name).cloned().unwrap_or_default().overlay(&a);
        defs.insert(kind.name.clone(), merged);
    }

    /// Elaborates a sequence; `index` numbers its statements (`[ ... ]`).
    fn seq(
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
                let top = parse_attrs("residual", words, env, &mut errs);
                for p in &top.positional {
                    errs.push(
                        Diagnostic::error(p.span, "unexpected value in `residual`")
                            .with_label("write `residual scale 0.17 relu { ... }`"),
                    );
                }
                self.report(errs);
                let a = defaults.get("residual").cloned().unwrap_or_default().overlay(&top);
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

    #[allow(clippy::too_many_arguments)]
    fn call(
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
            if keywords(&name.name).is_some() {
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
                    format!(
                        "block `{}` takes {} argument{}, found {}",
                        block.name.name,
                        params.len(),
                        if params.len() == 1 { "" } else { "s" },
                        positional
                    ),
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
                        .with_label(format!("block `{}` takes {} argument(s)", block.name.name, params.len()))
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

    /// Opens a scope inside the current one; the caller restores `self.scope` when it ends.
    fn enter(&mut self, label: String, path: &str, span: Span, block: Option<String>) {
        let id = ir::ScopeId(self.g.scopes.len() as u32);
        self.g.scopes.push(ir::Scope { label, path: path.to_string(), parent: self.scope, block, span });
        self.scope = Some(id);
    }

    fn unknown_layer(&mut self, kind: &Ident) {
        let mut d = Diagnostic::error(kind.span, format!("unknown layer `{}`", kind.name)).with_label("not a layer");
        if self.blocks.contains_key(kind.name.as_str()) {
            d = d.with_note(format!("`{}` is a block: call it with arguments, e.g. `{}(...)`", kind.name, kind.name));
        } else if ["concat", "residual", "repeat", "output", "block", "default", "names", "input", "network"]
            .contains(&kind.name.as_str())
        {
            d = Diagnostic::error(kind.span, format!("`{}` is incomplete here", kind.name))
                .with_label("see docs/LANGUAGE.md for its form");
        } else if let Some(s) = suggest(&kind.name, attrs::LAYER_KINDS.iter().copied()) {
            d = d.with_note(format!("did you mean `{s}`?"));
        } else {
            d = d.with_note(format!("layers are: {}", attrs::LAYER_KINDS.join(", ")));
        }
        self.error(d);
    }

    fn node_name(&self, path: &str, kind: &str) -> String {
        if path.is_empty() { kind.replace(' ', "_") } else { path.to_string() }
    }

    /// Adds `op` reading `ins`, inferring its shape; reports a located error when it does not fit.
    fn add_op(&mut self, op: Op, ins: &[NodeId], span: Span, path: &str, what: &str) -> Option<NodeId> {
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

    #[allow(clippy::too_many_arguments)]
    fn layer(
        &mut self,
        kind: &Ident,
        words: &[Word],
        x: Option<NodeId>,
        path: &str,
        span: Span,
        env: &Env,
        defaults: &Defaults,
    ) -> Option<NodeId> {
        let k = kind.name.as_str();
        if keywords(k).is_none() || k == "residual" {
            self.unknown_layer(kind);
            return None;
        }
        let mut errs = vec![];
        let own = parse_attrs(k, words, env, &mut errs);
        if !errs.is_empty() {
            // Positional counts are meaningless after a word failed to parse.
            self.report(errs);
            return None;
        }
        let a = defaults.get(k).cloned().unwrap_or_default().overlay(&own);
        let pos = &a.positional;
        let arity: (usize, usize, &str) = match k {
            "conv" => (2, 2, "`conv CHANNELS KHxKW`, e.g. `conv 64 3x3`"),
            "maxpool" | "avgpool" => (1, 1, "a window, e.g. `maxpool 3x3 stride 2`"),
            "fc" => (1, 1, "`fc FEATURES`, e.g. `fc 1000`"),
            "dropout" | "lrn" => (0, 1, "at most one value"),
            _ => (0, 0, "no values"),
        };
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
            "conv" => {
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
            "bn" => {
                let (x, xs) = (x?, xin.clone()?);
                let ch = if xs.rank() >= 2 { xs.c() } else { 0 };
                let b = ir::BatchNorm { channels: ch, eps, key: path.to_string() };
                self.add_op(Op::BatchNorm(b), &[x], span, path, "batch norm")
            }
            "maxpool" | "avgpool" => {
                let kernel = window(&pos[0], &mut errs);
                self.report(std::mem::take(&mut errs));
                let (kernel, x) = (kernel?, x?);
                let stride = a.stride.unwrap_or(kernel);
                let p = ir::Pool {
                    kind: if k == "maxpool" { ir::PoolKind::Max } else { ir::PoolKind::Avg },
                    kernel,
                    stride,
                    pad: pad_of(a.pad, kernel, stride),
                    ceil: a.ceil.unwrap_or(false),
                    count_include_pad: a.include_pad.unwrap_or(true),
                };
                self.add_op(Op::Pool(p), &[x], span, path, k)
            }
            "gap" => self.add_op(Op::GlobalAvgPool, &[x?], span, path, "gap"),
            "relu" => return self.add_op(Op::Relu, &[x?], span, path, "relu"),
            "flatten" => self.add_op(Op::Flatten, &[x?], span, path, "flatten"),
            "softmax" => self.add_op(Op::Softmax, &[x?], span, path, "softmax"),
            "l2norm" => self.add_op(Op::L2Norm { eps: a.eps.unwrap_or(1e-12) as f32 }, &[x?], span, path, "l2norm"),
            "dropout" => {
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
            "lrn" => {
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
            "fc" => {
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
            _ => None,
        };
        let y = result?;
        if a.relu.unwrap_or(false) { self.add_op(Op::Relu, &[y], span, path, "relu") } else { Some(y) }
    }
}

fn display_path(path: &str) -> String {
    if path.is_empty() { "the network body".to_string() } else { format!("`{path}`") }
}
