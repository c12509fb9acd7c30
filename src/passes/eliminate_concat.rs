//! Mark the concats whose operands can be written straight into the concat's buffer.
//!
//! ```text
//! %4 = conv2d[64, 1x1, bias, relu] %1 : 1x64x35x35              (unchanged)
//! %7 = conv2d[96, 3x3, p1, bias, relu] %6 : 1x96x35x35          (unchanged)
//! %9 = concat %4, %7 : 1x160x35x35                        =>    %9 = concat %4, %7 : 1x160x35x35 in_place
//! ```
//!
//! The IR keeps the concat; the decision is the node's [`in_place`](crate::ir::Node::in_place)
//! flag. What the runtime must do with it: allocate one buffer for the concat and give each
//! operand, as its output buffer, the view of that buffer at the operand's channel offset
//! (the sum of the channels of the operands before it; for `N = 1` in NCHW a contiguous
//! range, otherwise a strided one); then the concat itself is a no-op. Nested in-place
//! concats compose: an operand that is itself an in-place concat hands that view on.
//!
//! A concat is in place when every operand edge comes from a node that
//! - is read by this one edge only and is not a network output (no one else sees the
//!   buffer, and nothing reads it before the concat is complete);
//! - owns its output buffer: not an input (the caller's), a `slice` or a `flatten` (views).
//!
//! All or nothing: when one operand does not qualify the concat copies as before. One
//! rewrite per concat marked.

use super::{Pass, is_output, uses};
use crate::error::Result;
use crate::ir::{Graph, Op};
use crate::weights::Weights;

/// The `eliminate-concat` pass.
pub struct EliminateConcat;

impl Pass for EliminateConcat {
    fn name(&self) -> &'static str {
        "eliminate-concat"
    }

    fn run(&self, g: &mut Graph, _w: &mut Weights) -> Result<usize> {
        let mut rewrites = 0;
        for id in g.topo_order() {
            if !matches!(g.node(id).op, Op::Concat) || g.node(id).in_place {
                continue;
            }
            let ok = g.operands(id).into_iter().all(|o| {
                uses(g, o) == 1
                    && !is_output(g, o)
                    && !matches!(g.node(o).op, Op::Input | Op::Slice { .. } | Op::Flatten)
            });
            if ok {
                g.node_mut(id).in_place = true;
                rewrites += 1;
            }
        }
        Ok(rewrites)
    }
}
