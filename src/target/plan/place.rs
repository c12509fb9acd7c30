//! In-place concats: which operands are written straight into their concat's buffer, and
//! the buffer each of them writes to.

use super::planner::{Planner, View};
use super::{BB, bytes_of, c_pix};
use crate::ir::layout::BLOCK;
use crate::ir::{Graph, NodeId, Op};
use std::collections::HashMap;
/// and, unless last, end on one (so the padded channels of the concat stay zero).
/// The operands written straight into their concat's buffer: operand -> (concat, byte
/// offset in the concat). Only concats marked `in_place` (by `eliminate-concat`) qualify,
/// and only operands that start on a channel block, own their output (they run a kernel)
/// and, unless last, end on one (so the padded channels of the concat stay zero).
pub(super) fn placements(graph: &Graph) -> HashMap<NodeId, (NodeId, usize)> {
    let mut placed = HashMap::new();
    for id in graph.node_ids() {
        let node = graph.node(id);
        if !matches!(node.op, Op::Concat) || !node.in_place {
            continue;
        }
        let ops = graph.operands(id);
        let (_, pix) = c_pix(&node.shape);
        let mut off = 0;
        for (i, &o) in ops.iter().enumerate() {
            let (c, _) = c_pix(&graph.node(o).shape);
            let owns = !matches!(graph.node(o).op, Op::Input | Op::Dropout { .. } | Op::Flatten | Op::Slice { .. });
            let once = ops.iter().filter(|&&x| x == o).count() == 1;
            if owns && once && off % BLOCK == 0 && (c % BLOCK == 0 || i + 1 == ops.len()) {
                placed.insert(o, (id, off / BLOCK * pix * BB));
            }
            off += c;
        }
    }
    placed
}

/// Readers of `id` and of every tensor written in place inside it.
fn live_refs(placed: &HashMap<NodeId, (NodeId, usize)>, uses: &HashMap<NodeId, usize>, id: NodeId) -> usize {
    let inner: usize = placed.iter().filter(|(_, t)| t.0 == id).map(|(&o, _)| live_refs(placed, uses, o)).sum();
    uses.get(&id).copied().unwrap_or(0) + inner
}

/// The view `id` must write to when it lives inside a concat's buffer (creating that
/// buffer, with the readers of everything in it as its references, on first use);
/// `None` when `id` owns a buffer of its own.
pub(super) fn storage_of(
    p: &mut Planner,
    graph: &Graph,
    placed: &HashMap<NodeId, (NodeId, usize)>,
    storage: &mut HashMap<NodeId, View>,
    uses: &HashMap<NodeId, usize>,
    id: NodeId,
) -> Option<View> {
    if let Some(&v) = storage.get(&id) {
        return Some(v);
    }
    let is_host = placed.values().any(|t| t.0 == id);
    if let Some(&(c, off)) = placed.get(&id) {
        // `c` hosts `id`, so it always has storage.
        let cv = storage_of(p, graph, placed, storage, uses, c)?;
        let v = View { buf: cv.buf, off: cv.off + off };
        if is_host {
            storage.insert(id, v);
        }
        return Some(v);
    }
    if is_host {
        let v = View { buf: p.arena.new_buf(bytes_of(&graph.node(id).shape), live_refs(placed, uses, id)), off: 0 };
        storage.insert(id, v);
        return Some(v);
    }
    None
}
