//! Source files, spans and user-facing diagnostics.
//!
//! Every user error carries a [`Span`] into a [`SourceMap`]; the driver renders
//! them with `codespan-reporting` as `file:line:col`, the source line and a
//! caret marker. A phase gathers all of its errors before it stops.

use codespan_reporting::diagnostic::{Diagnostic as CsDiagnostic, Label as CsLabel};
use codespan_reporting::files::SimpleFiles;
use codespan_reporting::term;
use std::fmt;

/// Index of a file in a [`SourceMap`].
pub type FileId = usize;

/// A byte range in one source file.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// The file the range is in.
    pub file: FileId,
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

impl Span {
    /// A span covering `start..end` in `file`.
    pub fn new(file: FileId, start: usize, end: usize) -> Span {
        Span { file, start: start as u32, end: end as u32 }
    }
}

/// All source files known to one compilation.
#[derive(Default, Clone)]
pub struct SourceMap {
    files: SimpleFiles<String, String>,
}

impl SourceMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds a file and returns its id.
    pub fn add(&mut self, name: impl Into<String>, text: impl Into<String>) -> FileId {
        self.files.add(name.into(), text.into())
    }
    /// The text of a file.
    pub fn text(&self, id: FileId) -> &str {
        self.files.get(id).map(|f| f.source().as_str()).unwrap_or("")
    }
    /// The name of a file.
    pub fn name(&self, id: FileId) -> &str {
        self.files.get(id).map(|f| f.name().as_str()).unwrap_or("<unknown>")
    }
    /// `(line, column)`, both 1-based, of a byte offset.
    pub fn line_col(&self, id: FileId, offset: u32) -> (usize, usize) {
        let text = self.text(id);
        let offset = (offset as usize).min(text.len());
        let before = &text[..floor_char_boundary(text, offset)];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
        (line, col)
    }
    /// Renders diagnostics as text (with ANSI colours when `color`).
    pub fn render(&self, diags: &[Diagnostic], color: bool) -> String {
        let mut buf = term::termcolor::Buffer::no_color();
        let mut cbuf = term::termcolor::Buffer::ansi();
        let config = term::Config::default();
        for d in diags {
            let cs = d.to_codespan();
            let target = if color { &mut cbuf } else { &mut buf };
            // Rendering can only fail on spans outside a file; fall back to plain text then.
            if term::emit_to_write_style(target, &config, &self.files, &cs).is_err() {
                let _ = std::io::Write::write_fmt(target, format_args!("error: {}\n", d.message));
            }
        }
        let bytes = if color { cbuf.into_inner() } else { buf.into_inner() };
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// A secondary location attached to a diagnostic.
#[derive(Clone, Debug)]
pub struct Label {
    /// Where.
    pub span: Span,
    /// What it says there.
    pub message: String,
}

/// One user-facing error.
#[derive(Clone, Debug)]
pub struct Diagnostic {
    /// The headline, e.g. ``unknown block `inception_z` ``.
    pub message: String,
    /// The primary location.
    pub span: Span,
    /// The text under the primary caret (what was expected / found).
    pub label: String,
    /// Secondary locations (e.g. the block instantiation chain).
    pub labels: Vec<Label>,
    /// Free-form notes printed after the source excerpt.
    pub notes: Vec<String>,
}

impl Diagnostic {
    /// An error at `span`.
    pub fn error(span: Span, message: impl Into<String>) -> Self {
        Diagnostic { message: message.into(), span, label: String::new(), labels: vec![], notes: vec![] }
    }
    /// Sets the primary label text.
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }
    /// Adds a secondary label.
    pub fn with_secondary(mut self, span: Span, message: impl Into<String>) -> Self {
        self.labels.push(Label { span, message: message.into() });
        self
    }
    /// Adds a note.
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }
    fn to_codespan(&self) -> CsDiagnostic<FileId> {
        let mut labels = vec![
            CsLabel::primary(self.span.file, self.span.start as usize..self.span.end as usize)
                .with_message(self.label.clone()),
        ];
        for l in &self.labels {
            labels.push(
                CsLabel::secondary(l.span.file, l.span.start as usize..l.span.end as usize)
                    .with_message(l.message.clone()),
            );
        }
        CsDiagnostic::error().with_message(self.message.clone()).with_labels(labels).with_notes(self.notes.clone())
    }
}

/// All errors of one phase, with the sources needed to render them.
#[derive(Clone)]
pub struct Diagnostics {
    /// The errors, in source order where possible.
    pub diags: Vec<Diagnostic>,
    /// The files they point into.
    pub sources: SourceMap,
}

impl Diagnostics {
    /// Renders all errors as plain text.
    pub fn render(&self, color: bool) -> String {
        self.sources.render(&self.diags, color)
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.render(false).trim_end())
    }
}

impl fmt::Debug for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
