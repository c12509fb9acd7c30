//! Pictures of a network (`incc graph`): Graphviz `dot` text, SVG, and a self-contained HTML page.
//!
//! The drawing follows the papers' figures rather than the IR node for node:
//! - a layer and the batch norm and ReLU that follow it (same name, its only user) are one box:
//!   `3x3 conv, 64, /2` over `BN, ReLU`;
//! - every block instance is a Graphviz cluster labelled with its call
//!   (`Mixed_5b: inception_a(32)`), and so is a labelled scope that holds block instances
//!   (`features`), see [`ir::Scope`](crate::ir::Scope);
//! - when a tensor from outside a cluster feeds several nodes inside it, the fan-out is drawn as
//!   one split point inside the cluster, so a module reads split -> parallel branches -> concat;
//! - the residual input of a sum (`x` in `x + scale * f(x)`) is a bold red edge;
//! - every edge carries the shape of its tensor (`CxHxW`, the batch of 1 left out), and the
//!   edges into a concat are written in operand order;
//! - with a depth `N`, every node whose scope chain is longer than `N` is drawn as the one box
//!   of its scope `N` levels down (`--depth 1`: each top-level block or labelled statement is a box).
//!
//! SVG comes from Graphviz's `dot -Tsvg`, run as a child process. There is deliberately no
//! pure-Rust fallback: the one Rust layout crate (`layout-rs`) draws no nested graphs, and the
//! clusters are the point of these pictures; without Graphviz, `svg` and `html` fail with an
//! error that says how to install it, and `dot` text still works.
//!
//! The files, in the order a picture is made: `layout.rs` decides the boxes, clusters and
//! edges (a `Drawing`), `dot.rs` writes a drawing as `dot` text in the words of `labels.rs`,
//! and `html.rs` runs Graphviz and wraps its SVG in a page.

mod dot;
mod html;
mod labels;
mod layout;

use crate::ir::{Graph, ScopeId};
pub use html::{render_svg, to_html};
use layout::Drawing;

/// What to draw.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Draw each scope this many levels down as one box (`None`: draw every layer).
    pub depth: Option<usize>,
}

/// The graph in Graphviz's `dot` language.
pub fn to_dot(g: &Graph, opts: &Options) -> String {
    Drawing::new(g, opts).write()
}

/// The deepest scope nesting of the graph (0 when it has no scopes).
pub fn max_depth(g: &Graph) -> usize {
    (0..g.scopes.len()).map(|i| g.scope_chain(Some(ScopeId(i as u32))).len()).max().unwrap_or(0)
}
