//! Elaboration: the AST of a file becomes an [`crate::ir::Graph`].
//!
//! Blocks are instantiated with their arguments, repeats unrolled, defaults applied, labels
//! turned into state-dict keys, and every tensor shape inferred. All errors of a file are
//! gathered before lowering stops; an error inside a block instance names the chain of
//! instantiations that led to it.

pub mod attrs;
mod call;
pub mod eval;
pub mod kind;
mod layer;
pub mod preprocess;
mod scope;
mod stmt;

use crate::diag::{Diagnostic, Span};
use crate::ir::infer::MAX_TENSOR_ELEMENTS;
use crate::ir::{self, Graph, NodeId, Op, Shape};
use crate::syntax::ast::{self, BlockDef, StmtKind};
use attrs::Attrs;
use eval::Env;
use kind::AttrOwner;
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

type Defaults = HashMap<AttrOwner, Attrs>;

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
}

fn display_path(path: &str) -> String {
    if path.is_empty() { "the network body".to_string() } else { format!("`{path}`") }
}
