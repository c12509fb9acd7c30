//! The abstract syntax of `.incep` files. Every node carries its [`Span`].

use crate::diag::Span;

/// A name with its location.
#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    /// The text.
    pub name: String,
    /// Where it is written.
    pub span: Span,
}

/// A parsed file.
#[derive(Clone, Debug, Default)]
pub struct File {
    /// `network NAME`, if given.
    pub network: Option<Ident>,
    /// `input [NAME] CxHxW` declarations.
    pub inputs: Vec<InputDecl>,
    /// `names KIND "TEMPLATE" ...` declarations, in order.
    pub names: Vec<(Ident, String, Span)>,
    /// `preprocess ...` declarations (at most one is valid; lowering reports extras).
    pub preprocess: Vec<PreprocessDecl>,
    /// Block definitions.
    pub blocks: Vec<BlockDef>,
    /// The top-level statements: the network body.
    pub body: Vec<Stmt>,
}

/// `input image 3x299x299`.
#[derive(Clone, Debug)]
pub struct InputDecl {
    /// Optional name (defaults to `input`).
    pub name: Option<Ident>,
    /// Dimensions as written (C, H, W).
    pub dims: Vec<u64>,
    /// The whole declaration.
    pub span: Span,
}

/// `preprocess resize 256 crop 224 normalize rgb mean (...) std (...)`: how an image becomes
/// the input. The words are interpreted by the lowering (`lower::preprocess`).
#[derive(Clone, Debug)]
pub struct PreprocessDecl {
    /// The words after `preprocess`.
    pub words: Vec<Word>,
    /// The whole declaration.
    pub span: Span,
}

/// `block NAME(params) { body }`.
#[derive(Clone, Debug)]
pub struct BlockDef {
    /// The block's name.
    pub name: Ident,
    /// Its parameters, in order.
    pub params: Vec<Param>,
    /// Its statements.
    pub body: Vec<Stmt>,
    /// The whole definition.
    pub span: Span,
}

/// A block parameter with an optional default value.
#[derive(Clone, Debug)]
pub struct Param {
    /// Its name.
    pub name: Ident,
    /// Value when the call omits it.
    pub default: Option<Expr>,
}

/// A statement with an optional label.
#[derive(Clone, Debug)]
pub struct Stmt {
    /// `label:` before it: the naming segment it contributes.
    pub label: Option<Label>,
    /// What it does.
    pub kind: StmtKind,
    /// The whole statement.
    pub span: Span,
}

/// A label: text with `{expr}` holes.
#[derive(Clone, Debug)]
pub struct Label {
    /// The parts in order.
    pub parts: Vec<LabelPart>,
    /// Where it is written.
    pub span: Span,
}

/// Part of a [`Label`].
#[derive(Clone, Debug)]
pub enum LabelPart {
    /// Literal text.
    Text(String),
    /// An interpolated expression.
    Hole(Expr),
}

/// The statement forms.
#[derive(Clone, Debug)]
pub enum StmtKind {
    /// `default KIND words`.
    Default {
        /// The layer kind it applies to.
        kind: Ident,
        /// The attributes.
        words: Vec<Word>,
    },
    /// `concat { branches }`.
    Concat(Vec<Stmt>),
    /// `residual words { body }`.
    Residual {
        /// `scale E`, `relu`, ...
        words: Vec<Word>,
        /// The residual function.
        body: Vec<Stmt>,
    },
    /// `repeat N [as i] { body }`.
    Repeat {
        /// How many times.
        count: Expr,
        /// The iteration variable, counting from 0.
        var: Option<Ident>,
        /// What is repeated.
        body: Vec<Stmt>,
    },
    /// `output NAME [{ body }]`.
    Output {
        /// The output's name.
        name: Ident,
        /// A side branch computing it, or `None` for the current tensor.
        body: Option<Vec<Stmt>>,
    },
    /// `{ stmts }`.
    Seq(Vec<Stmt>),
    /// `[ stmts ]`, children named by index.
    IndexedSeq(Vec<Stmt>),
    /// `name(args)`.
    Call {
        /// The block called.
        name: Ident,
        /// Arguments, positional then named.
        args: Vec<Arg>,
        /// The argument list.
        args_span: Span,
    },
    /// `kind words`.
    Layer {
        /// `conv`, `maxpool`, ...
        kind: Ident,
        /// Its words.
        words: Vec<Word>,
    },
}

/// A call argument.
#[derive(Clone, Debug)]
pub struct Arg {
    /// `name =` for a named argument.
    pub name: Option<Ident>,
    /// The value.
    pub value: Expr,
}

/// One word of a layer.
#[derive(Clone, Debug)]
pub struct Word {
    /// What it is.
    pub kind: WordKind,
    /// Where.
    pub span: Span,
}

/// Word forms.
#[derive(Clone, Debug)]
pub enum WordKind {
    /// `3x3`, `1x7`.
    Dims(Vec<u64>),
    /// `(0, 1, 0, 1)`.
    Tuple(Vec<Expr>),
    /// `relu = act`.
    FlagSet(Ident, Expr),
    /// A value or keyword.
    Expr(Expr),
}

impl Word {
    /// The keyword this word is, if it is a bare identifier.
    pub fn as_ident(&self) -> Option<&str> {
        match &self.kind {
            WordKind::Expr(Expr { kind: ExprKind::Var(v), .. }) => Some(v),
            _ => None,
        }
    }
}

/// An arithmetic expression.
#[derive(Clone, Debug)]
pub struct Expr {
    /// Its form.
    pub kind: ExprKind,
    /// Where.
    pub span: Span,
}

/// Expression forms.
#[derive(Clone, Debug)]
pub enum ExprKind {
    /// Integer literal.
    Int(i64),
    /// Real literal.
    Float(f64),
    /// `true` / `false`.
    Bool(bool),
    /// A parameter or repeat variable.
    Var(String),
    /// `-e`.
    Neg(Box<Expr>),
    /// `a op b`.
    Bin(BinOp, Box<Expr>, Box<Expr>),
}

/// Binary operators.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/` (floor division on integers)
    Div,
    /// `%`
    Rem,
}
