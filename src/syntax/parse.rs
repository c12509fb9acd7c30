//! The pest parser and the conversion of its pairs into the [`ast`](super::ast),
//! one `parse_<rule>` function per grammar rule.

use super::ast::*;
use crate::diag::{Diagnostic, FileId, Span};
use pest::Parser;
use pest::iterators::Pair;

#[allow(missing_docs)]
mod generated {
    /// The parser pest derives from the grammar.
    #[derive(pest_derive::Parser)]
    #[grammar = "../grammar/incep.pest"]
    pub struct IncepParser;
}
use generated::{IncepParser, Rule};

/// Parses the text of file `file`. Syntax errors come back as diagnostics.
pub fn parse(file: FileId, text: &str) -> Result<File, Vec<Diagnostic>> {
    check_nesting(file, text)?;
    // Track literal tokens too, so errors can say "expected `)`".
    pest::set_error_detail(true);
    let pairs = IncepParser::parse(Rule::file, text).map_err(|e| vec![syntax_error(file, text, e)])?;
    let mut cx = Cx { file, text, errors: vec![] };
    let mut out = File::default();
    let Some(top) = pairs.into_iter().next() else { return Ok(out) };
    for item in top.into_inner() {
        match item.as_rule() {
            Rule::network_decl => {
                let id = cx.ident(item.into_inner().nth(1));
                if let Some(id) = id {
                    out.network = Some(id);
                }
            }
            Rule::input_decl => {
                let span = cx.span(&item);
                let mut name = None;
                let mut dims = vec![];
                for p in item.into_inner() {
                    match p.as_rule() {
                        Rule::ident => name = Some(cx.ident_of(&p)),
                        Rule::dims => dims = cx.dims(&p),
                        _ => {}
                    }
                }
                out.inputs.push(InputDecl { name, dims, span });
            }
            Rule::names_decl => {
                let mut it = item.into_inner().skip(1);
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    let span = cx.span(&v);
                    let text = v.into_inner().next().map(|s| s.as_str().to_string()).unwrap_or_default();
                    out.names.push((cx.ident_of(&k), text, span));
                }
            }
            Rule::preprocess_decl => {
                let span = cx.span(&item);
                let words = item.into_inner().skip(1).map(|w| cx.word(w)).collect();
                out.preprocess.push(PreprocessDecl { words, span });
            }
            Rule::block_def => {
                if let Some(b) = cx.block_def(item) {
                    out.blocks.push(b);
                }
            }
            Rule::stmt => {
                if let Some(s) = cx.stmt(item) {
                    out.body.push(s);
                }
            }
            _ => {}
        }
    }
    if cx.errors.is_empty() { Ok(out) } else { Err(cx.errors) }
}

struct Cx<'t> {
    file: FileId,
    text: &'t str,
    errors: Vec<Diagnostic>,
}

impl Cx<'_> {
    /// The span of a pair without the whitespace and comments pest lets trail inside it.
    fn span(&self, p: &Pair<Rule>) -> Span {
        let s = p.as_span();
        let (start, mut end) = (s.start(), s.end());
        loop {
            let t = &self.text[start..end];
            let trimmed = t.trim_end_matches([' ', '\t', '\r', '\n', '\\']);
            let last_line = trimmed.rfind('\n').map(|i| i + 1).unwrap_or(0);
            let cut = trimmed[last_line..].find(['#']).or_else(|| trimmed[last_line..].find("//"));
            let new_end = start + cut.map(|c| last_line + c).unwrap_or(trimmed.len());
            if new_end == end {
                break;
            }
            end = new_end;
        }
        Span::new(self.file, start, end)
    }

    fn ident_of(&self, p: &Pair<Rule>) -> Ident {
        Ident { name: p.as_str().to_string(), span: self.span(p) }
    }

    fn ident(&self, p: Option<Pair<Rule>>) -> Option<Ident> {
        p.map(|p| self.ident_of(&p))
    }

    fn dims(&mut self, p: &Pair<Rule>) -> Vec<u64> {
        let span = self.span(p);
        let mut v = vec![];
        for part in p.as_str().split('x') {
            match part.parse::<u64>() {
                Ok(n) => v.push(n),
                Err(_) => {
                    self.errors
                        .push(Diagnostic::error(span, "number too large").with_label("this does not fit in 64 bits"));
                    v.push(0);
                }
            }
        }
        v
    }

    fn block_def(&mut self, p: Pair<Rule>) -> Option<BlockDef> {
        let span = self.span(&p);
        let mut it = p.into_inner().skip(1);
        let name = self.ident_of(&it.next()?);
        let mut params = vec![];
        let mut body = vec![];
        for q in it {
            match q.as_rule() {
                Rule::params => {
                    for param in q.into_inner() {
                        let mut pi = param.into_inner();
                        let Some(n) = pi.next() else { continue };
                        let default = pi.next().map(|e| self.expr(e));
                        params.push(Param { name: self.ident_of(&n), default });
                    }
                }
                Rule::stmt => body.extend(self.stmt(q)),
                _ => {}
            }
        }
        Some(BlockDef { name, params, body, span })
    }

    fn stmts(&mut self, p: Pair<Rule>) -> Vec<Stmt> {
        p.into_inner().filter(|q| q.as_rule() == Rule::stmt).filter_map(|q| self.stmt(q)).collect()
    }

    fn stmt(&mut self, p: Pair<Rule>) -> Option<Stmt> {
        let span = self.span(&p);
        let mut label = None;
        let mut kind = None;
        for q in p.into_inner() {
            match q.as_rule() {
                Rule::label => label = Some(self.label(q)),
                _ => kind = self.stmt_body(q),
            }
        }
        Some(Stmt { label, kind: kind?, span })
    }

    fn label(&mut self, p: Pair<Rule>) -> Label {
        let span = self.span(&p);
        let parts = p
            .into_inner()
            .filter_map(|q| match q.as_rule() {
                Rule::label_text => Some(LabelPart::Text(q.as_str().to_string())),
                Rule::label_hole => q.into_inner().next().map(|e| LabelPart::Hole(self.expr(e))),
                _ => None,
            })
            .collect();
        Label { parts, span }
    }

    fn stmt_body(&mut self, p: Pair<Rule>) -> Option<StmtKind> {
        Some(match p.as_rule() {
            Rule::default_stmt => {
                let mut it = p.into_inner().skip(1);
                let kind = self.ident_of(&it.next()?);
                StmtKind::Default { kind, words: it.map(|w| self.word(w)).collect() }
            }
            Rule::concat_stmt => StmtKind::Concat(self.stmts(p)),
            Rule::residual_stmt => {
                let mut words = vec![];
                let mut body = vec![];
                for q in p.into_inner().skip(1) {
                    if q.as_rule() == Rule::stmt {
                        body.extend(self.stmt(q));
                    } else {
                        words.push(self.word(q));
                    }
                }
                StmtKind::Residual { words, body }
            }
            Rule::repeat_stmt => {
                let mut count = None;
                let mut var = None;
                let mut body = vec![];
                for q in p.into_inner().skip(1) {
                    match q.as_rule() {
                        Rule::expr => count = Some(self.expr(q)),
                        Rule::ident => var = Some(self.ident_of(&q)),
                        Rule::stmt => body.extend(self.stmt(q)),
                        _ => {}
                    }
                }
                StmtKind::Repeat { count: count?, var, body }
            }
            Rule::output_stmt => {
                let mut it = p.into_inner().skip(1);
                let name = self.ident_of(&it.next()?);
                let body = it.next().map(|s| self.stmts(s));
                StmtKind::Output { name, body }
            }
            Rule::seq => StmtKind::Seq(self.stmts(p)),
            Rule::iseq => StmtKind::IndexedSeq(self.stmts(p)),
            Rule::call => {
                let mut it = p.into_inner();
                let name = self.ident_of(&it.next()?);
                let mut args = vec![];
                let mut args_span = name.span;
                if let Some(a) = it.next() {
                    args_span = self.span(&a);
                    for arg in a.into_inner() {
                        let mut ai = arg.into_inner().peekable();
                        let mut aname = None;
                        if ai.peek().map(|x| x.as_rule()) == Some(Rule::ident) {
                            aname = ai.next().map(|x| self.ident_of(&x));
                        }
                        let value = self.expr(ai.next()?);
                        args.push(Arg { name: aname, value });
                    }
                }
                StmtKind::Call { name, args, args_span }
            }
            Rule::layer => {
                let mut it = p.into_inner();
                let kind = self.ident_of(&it.next()?);
                StmtKind::Layer { kind, words: it.map(|w| self.word(w)).collect() }
            }
            _ => return None,
        })
    }

    fn word(&mut self, p: Pair<Rule>) -> Word {
        let span = self.span(&p);
        let kind = match p.as_rule() {
            Rule::dims => WordKind::Dims(self.dims(&p)),
            Rule::tuple => WordKind::Tuple(p.into_inner().map(|e| self.expr(e)).collect()),
            Rule::flag_set => {
                let mut it = p.into_inner();
                match (it.next(), it.next()) {
                    (Some(n), Some(e)) => WordKind::FlagSet(self.ident_of(&n), self.expr(e)),
                    _ => WordKind::Expr(Expr { kind: ExprKind::Int(0), span }),
                }
            }
            _ => WordKind::Expr(self.expr(p)),
        };
        Word { kind, span }
    }

    fn expr(&mut self, p: Pair<Rule>) -> Expr {
        let span = self.span(&p);
        match p.as_rule() {
            Rule::expr | Rule::term => {
                let mut it = p.into_inner();
                let Some(first) = it.next() else { return Expr { kind: ExprKind::Int(0), span } };
                let mut acc = self.expr(first);
                while let (Some(op), Some(rhs)) = (it.next(), it.next()) {
                    let op = match op.as_str() {
                        "+" => BinOp::Add,
                        "-" => BinOp::Sub,
                        "*" => BinOp::Mul,
                        "/" => BinOp::Div,
                        _ => BinOp::Rem,
                    };
                    let rhs = self.expr(rhs);
                    let s = Span { file: acc.span.file, start: acc.span.start, end: rhs.span.end };
                    acc = Expr { kind: ExprKind::Bin(op, Box::new(acc), Box::new(rhs)), span: s };
                }
                acc
            }
            Rule::neg => {
                let inner = p.into_inner().next().map(|q| self.expr(q));
                let inner = inner.unwrap_or(Expr { kind: ExprKind::Int(0), span });
                Expr { kind: ExprKind::Neg(Box::new(inner)), span }
            }
            Rule::number => {
                let s = p.as_str();
                let kind = if s.contains(['.', 'e', 'E']) {
                    match s.parse::<f64>() {
                        Ok(v) if v.is_finite() => ExprKind::Float(v),
                        _ => {
                            self.errors
                                .push(Diagnostic::error(span, "number out of range").with_label("not a finite number"));
                            ExprKind::Float(0.0)
                        }
                    }
                } else {
                    match s.parse::<i64>() {
                        Ok(v) => ExprKind::Int(v),
                        Err(_) => {
                            self.errors.push(
                                Diagnostic::error(span, "number too large").with_label("this does not fit in 64 bits"),
                            );
                            ExprKind::Int(0)
                        }
                    }
                };
                Expr { kind, span }
            }
            Rule::boolean => Expr { kind: ExprKind::Bool(p.as_str() == "true"), span },
            Rule::ident => Expr { kind: ExprKind::Var(p.as_str().to_string()), span },
            _ => Expr { kind: ExprKind::Int(0), span },
        }
    }
}

/// Deepest nesting of brackets accepted; deeper input is refused before the recursive-descent
/// parser could exhaust the stack.
pub const MAX_NESTING: usize = 200;

fn check_nesting(file: FileId, text: &str) -> Result<(), Vec<Diagnostic>> {
    let mut depth = 0usize;
    let mut in_comment = false;
    for (i, c) in text.char_indices() {
        match c {
            '\n' => in_comment = false,
            '#' => in_comment = true,
            _ if in_comment => {}
            '(' | '[' | '{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(vec![
                        Diagnostic::error(Span::new(file, i, i + 1), "brackets nested too deeply")
                            .with_label(format!("more than {MAX_NESTING} levels")),
                    ]);
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// A user-facing word for a grammar rule.
fn rule_name(r: &Rule) -> Option<&'static str> {
    Some(match r {
        Rule::EOI => "end of file",
        Rule::file
        | Rule::stmt
        | Rule::layer
        | Rule::network_decl
        | Rule::input_decl
        | Rule::names_decl
        | Rule::preprocess_decl
        | Rule::block_def
        | Rule::default_stmt
        | Rule::concat_stmt
        | Rule::residual_stmt
        | Rule::repeat_stmt
        | Rule::output_stmt
        | Rule::call => "a statement",
        Rule::label => "a label",
        Rule::ident | Rule::call_name => "a name",
        Rule::expr | Rule::number | Rule::term | Rule::neg => "a number or expression",
        Rule::dims => "dimensions such as `3x3`",
        Rule::tuple => "a tuple such as `(0, 1, 0, 1)`",
        Rule::flag_set => "`name = value`",
        Rule::string | Rule::string_inner => "a quoted string",
        Rule::params | Rule::param => "a parameter",
        Rule::args | Rule::arg => "an argument",
        Rule::add_op | Rule::mul_op => "an operator",
        Rule::boolean => "`true` or `false`",
        Rule::kw_network => "`network`",
        Rule::kw_input => "`input`",
        Rule::kw_names => "`names`",
        Rule::kw_preprocess => "`preprocess`",
        Rule::kw_block => "`block`",
        Rule::kw_default => "`default`",
        Rule::kw_concat => "`concat`",
        Rule::kw_residual => "`residual`",
        Rule::kw_repeat => "`repeat`",
        Rule::kw_output => "`output`",
        Rule::kw_as => "`as`",
        Rule::seq => "`{`",
        Rule::iseq => "`[`",
        _ => return None,
    })
}

fn syntax_error(file: FileId, text: &str, e: pest::error::Error<Rule>) -> Diagnostic {
    use pest::error::{ErrorVariant, InputLocation};
    let mut pos = match e.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let mut expected: Vec<String> = match &e.variant {
        ErrorVariant::ParsingError { positives, .. } => {
            positives.iter().filter_map(rule_name).map(String::from).collect()
        }
        ErrorVariant::CustomError { .. } => vec![],
    };
    // Literal tokens (`)`, `,`, `}`) pest tried at the furthest position; used when they say more.
    if let Some(att) = e.parse_attempts() {
        let literals: Vec<String> = att
            .expected_tokens()
            .into_iter()
            .map(|t| t.to_string())
            .filter(|t| {
                !t.is_empty()
                    && !["#", "//", "\\", "_", "\""].contains(&t.as_str())
                    && t.chars().all(|c| c.is_ascii_punctuation())
            })
            .map(|t| format!("`{t}`"))
            .collect();
        if att.max_position > pos && !literals.is_empty() {
            pos = att.max_position;
            expected = literals;
        } else if att.max_position == pos {
            expected.extend(literals);
        }
    }
    expected.sort();
    expected.dedup();
    let found = describe_at(text, pos);
    let expected_text = match expected.len() {
        0 => "valid syntax".to_string(),
        1 => expected[0].to_string(),
        n => format!("{} or {}", expected[..n - 1].join(", "), expected[n - 1]),
    };
    let end = (pos + found.1).min(text.len());
    // At the end of the file with a bracket still open, the bracket is the error (as rustc
    // says it), not the end of the file.
    if pos >= text.trim_end().len()
        && let Some((open, c)) = unclosed(text)
    {
        return Diagnostic::error(Span::new(file, open, open + 1), format!("unclosed `{c}`"))
            .with_label("opened here, never closed")
            .with_secondary(Span::new(file, text.trim_end().len(), text.trim_end().len()), "the file ends here")
            .with_note(format!("the parser expected {expected_text} at the end of the file"));
    }
    Diagnostic::error(
        Span::new(file, pos, end.max(pos)),
        format!("syntax error: expected {expected_text}, found {}", found.0),
    )
    .with_label(format!("expected {expected_text}"))
}

/// The innermost bracket left open at the end of `text` (outside comments and strings): its
/// byte offset and character.
fn unclosed(text: &str) -> Option<(usize, char)> {
    let mut open: Vec<(usize, char)> = vec![];
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '#' => while chars.next_if(|&(_, c)| c != '\n').is_some() {},
            '/' if chars.peek().is_some_and(|&(_, c)| c == '/') => {
                while chars.next_if(|&(_, c)| c != '\n').is_some() {}
            }
            '"' => while chars.next().is_some_and(|(_, c)| c != '"') {},
            '(' | '[' | '{' => open.push((i, c)),
            ')' | ']' | '}' => {
                open.pop();
            }
            _ => {}
        }
    }
    open.pop()
}

/// What stands at `pos`, for "found ..." and the width of the marker.
fn describe_at(text: &str, pos: usize) -> (String, usize) {
    let rest = text.get(pos..).unwrap_or("");
    match rest.chars().next() {
        None => ("end of file".to_string(), 0),
        Some('\n') | Some('\r') => ("end of line".to_string(), 1),
        Some(c) if c.is_alphanumeric() || c == '_' => {
            let w: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').take(40).collect();
            let len = w.len();
            (format!("`{w}`"), len)
        }
        Some(c) if c.is_control() => (format!("the byte {:#04x}", c as u32), c.len_utf8()),
        Some(c) => (format!("`{c}`"), c.len_utf8()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_module() {
        let src = "block inception_a(pool_features) {\n  concat {\n    branch1x1: conv 64 1x1\n    branch5x5: { _1: conv 48 1x1; _2: conv 64 5x5 pad 2 }\n    branch_pool: { avgpool 3x3 stride 1 pad 1; conv pool_features 1x1 }\n  }\n}\n";
        let f = parse(0, src).expect("parses");
        assert_eq!(f.blocks.len(), 1);
        let b = &f.blocks[0];
        assert_eq!(b.name.name, "inception_a");
        assert_eq!(b.params.len(), 1);
        let StmtKind::Concat(br) = &b.body[0].kind else { panic!("concat expected") };
        assert_eq!(br.len(), 3);
        let StmtKind::Seq(s) = &br[1].kind else { panic!("seq expected") };
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn syntax_errors_say_what_was_expected() {
        let e = parse(0, "block a( {\n}").unwrap_err();
        assert!(e[0].message.contains("expected"), "{}", e[0].message);
        // An unclosed bracket is reported where it opened, not at the end of the file.
        let src = "conv 64 3x3 stride 2\nconcat {\n";
        let e = parse(0, src).unwrap_err();
        assert_eq!(e[0].message, "unclosed `{`");
        assert_eq!(e[0].span.start as usize, src.find("{").unwrap());
    }

    #[test]
    fn huge_numbers_are_errors_not_panics() {
        let e = parse(0, "conv 99999999999999999999999 1x1").unwrap_err();
        assert!(e[0].message.contains("too large"));
        let e = parse(0, "input 3x99999999999999999999999x2").unwrap_err();
        assert!(e[0].message.contains("too large"));
    }
}
