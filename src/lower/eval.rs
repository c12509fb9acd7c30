//! Values of block parameters and the evaluation of expressions.

use crate::diag::Diagnostic;
use crate::syntax::ast::{BinOp, Expr, ExprKind};
use std::collections::HashMap;
use std::fmt;

/// A value of a block parameter or repeat variable.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    /// An integer.
    Int(i64),
    /// A real number.
    Float(f64),
    /// A truth value.
    Bool(bool),
}

impl Value {
    /// A non-negative integer that fits in `usize`.
    pub fn as_size(self) -> Option<usize> {
        match self {
            Value::Int(i) if i >= 0 => usize::try_from(i).ok(),
            _ => None,
        }
    }
    /// Any number as `f64`.
    pub fn as_f64(self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(i as f64),
            Value::Float(f) => Some(f),
            Value::Bool(_) => None,
        }
    }
    /// A truth value (`true`/`false`, or the integers 0 and 1).
    pub fn as_bool(self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(b),
            Value::Int(0) => Some(false),
            Value::Int(1) => Some(true),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// The names visible in a block body: its parameters and enclosing repeat variables.
#[derive(Clone, Debug, Default)]
pub struct Env {
    vars: HashMap<String, Value>,
}

impl Env {
    /// Whether `name` is bound.
    pub fn has(&self, name: &str) -> bool {
        self.vars.contains_key(name)
    }
    /// The bound names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.vars.keys().map(|k| k.as_str())
    }
    /// Binds `name`.
    pub fn bind(&mut self, name: &str, v: Value) {
        self.vars.insert(name.to_string(), v);
    }
    /// Evaluates `e`; pushes an error and returns `None` when it cannot.
    pub fn eval(&self, e: &Expr, errs: &mut Vec<Diagnostic>) -> Option<Value> {
        match &e.kind {
            ExprKind::Int(i) => Some(Value::Int(*i)),
            ExprKind::Float(f) => Some(Value::Float(*f)),
            ExprKind::Bool(b) => Some(Value::Bool(*b)),
            ExprKind::Var(v) => match self.vars.get(v) {
                Some(x) => Some(*x),
                None => {
                    let mut d = Diagnostic::error(e.span, format!("unknown name `{v}`")).with_label("not defined here");
                    if let Some(s) = super::suggest(v, self.vars.keys().map(|k| k.as_str())) {
                        d = d.with_note(format!("did you mean `{s}`?"));
                    }
                    errs.push(d);
                    None
                }
            },
            ExprKind::Neg(x) => match self.eval(x, errs)? {
                Value::Int(i) => i.checked_neg().map(Value::Int).or_else(|| {
                    errs.push(Diagnostic::error(e.span, "integer overflow"));
                    None
                }),
                Value::Float(f) => Some(Value::Float(-f)),
                Value::Bool(_) => {
                    errs.push(Diagnostic::error(e.span, "cannot negate a truth value"));
                    None
                }
            },
            ExprKind::Bin(op, a, b) => {
                let (x, y) = (self.eval(a, errs), self.eval(b, errs));
                let (x, y) = (x?, y?);
                let fail = |errs: &mut Vec<Diagnostic>, m: &str| {
                    errs.push(Diagnostic::error(e.span, m.to_string()).with_label(format!("{x} {} {y}", op_str(*op))));
                    None
                };
                match (x, y) {
                    (Value::Int(p), Value::Int(q)) => {
                        let r = match op {
                            BinOp::Add => p.checked_add(q),
                            BinOp::Sub => p.checked_sub(q),
                            BinOp::Mul => p.checked_mul(q),
                            BinOp::Div | BinOp::Rem if q == 0 => return fail(errs, "division by zero"),
                            BinOp::Div => p.checked_div_euclid(q),
                            BinOp::Rem => p.checked_rem_euclid(q),
                        };
                        match r {
                            Some(r) => Some(Value::Int(r)),
                            None => fail(errs, "integer overflow"),
                        }
                    }
                    (Value::Bool(_), _) | (_, Value::Bool(_)) => fail(errs, "arithmetic on a truth value"),
                    _ => {
                        let (p, q) = (x.as_f64()?, y.as_f64()?);
                        let r = match op {
                            BinOp::Add => p + q,
                            BinOp::Sub => p - q,
                            BinOp::Mul => p * q,
                            BinOp::Div => p / q,
                            BinOp::Rem => p % q,
                        };
                        if r.is_finite() {
                            Some(Value::Float(r))
                        } else {
                            fail(errs, "the result is not a finite number")
                        }
                    }
                }
            }
        }
    }
}

fn op_str(op: BinOp) -> &'static str {
    match op {
        BinOp::Add => "+",
        BinOp::Sub => "-",
        BinOp::Mul => "*",
        BinOp::Div => "/",
        BinOp::Rem => "%",
    }
}
