//! The target's choices, made as graph passes after the semantic ones (tract's `codegen()`
//! after `declutter()`): a memory layout per tensor and the convolutions computed by
//! Winograd transforms. Each annotation they make is checked after every pass ([`check`]).

mod layout;
mod winograd;

pub use layout::{SelectLayout, compact_reader};
pub use winograd::{MIN_PIXELS, MIN_SAVED_PER_ELEMENT, SelectWinograd, fits};

use crate::error::Result;
use crate::ir::{Graph, Layout, Op, Precision};
use crate::passes::{self, Level, Pass, PassOptions, PassReport, Pipeline};
use crate::weights::Weights;

/// The target's passes in order, with the lowest level that runs each, choosing for
/// `precision`. Layouts are decided on the final graph, Winograd on the layouts.
pub fn codegen(precision: Precision) -> Vec<(Level, Box<dyn Pass>)> {
    vec![(Level::O2, Box::new(SelectLayout { precision })), (Level::O2, Box::new(SelectWinograd { precision }))]
}

/// The whole pipeline: [`passes::declutter`] then [`codegen`], with [`check`].
pub fn pipeline(outputs: Option<Vec<String>>, precision: Precision) -> Pipeline {
    let mut passes = passes::declutter(outputs);
    passes.extend(codegen(precision));
    Pipeline { passes, checks: vec![check] }
}

/// The names of all passes, in pipeline order.
pub fn pass_names() -> Vec<&'static str> {
    pipeline(None, Precision::F32).names()
}

/// Runs the passes `opts` selects ([`pipeline`]) on `g`, rewriting `w` to fit (see
/// [`passes::run`]).
pub fn optimize(g: &mut Graph, w: &mut Weights, opts: &PassOptions) -> Result<Vec<PassReport>> {
    passes::run(g, w, opts, pipeline(opts.outputs.clone(), opts.precision))
}

/// The annotations the target's passes make, checked: each tensor's layout fits it (a
/// compact `nhwc` tensor has a convolution to read it), and each Winograd tile fits its
/// convolution.
pub fn check(g: &Graph) -> Vec<String> {
    let mut errors = Vec::new();
    for id in g.node_ids() {
        let n = g.node(id);
        let fits_layout = match n.layout {
            Layout::Nchw => true,
            Layout::Nchw16c => n.shape.is_map(),
            Layout::Nhwc => compact_reader(g, id).is_some(),
        };
        if !fits_layout {
            errors.push(format!("{id} ({}): layout {} does not fit {} {}", n.name, n.layout, n.op.kind(), n.shape));
        }
        if let Op::Conv2d(crate::ir::Conv2d { winograd: Some(m), .. }) = &n.op
            && !fits(g, id, *m)
        {
            errors.push(format!("{id} ({}): winograd {}x{} does not fit {}", n.name, m[0], m[1], n.op));
        }
    }
    errors
}
