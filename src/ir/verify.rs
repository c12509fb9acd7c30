//! The IR verifier: checks the invariants every pass must keep.
//!
//! - every operand edge points at a live node and slots are `0..n` without gaps;
//! - each node's recorded shape is what [`infer`] computes from its operands;
//! - inputs have no operands, outputs name live nodes, and the graph is acyclic;
//! - parameter keys are unique.

use super::graph::Graph;
use super::infer::infer;
use super::op::Op;
use std::collections::HashSet;

/// Checks `g`; returns every violation found (empty when valid).
pub fn verify(g: &Graph) -> Vec<String> {
    let mut errs = Vec::new();
    let order = g.topo_order();
    if order.len() != g.g.node_count() {
        errs.push("the graph has a cycle".to_string());
        return errs;
    }
    let mut keys = HashSet::new();
    for id in order {
        let node = g.node(id);
        let ops = g.operands(id);
        let mut slots: Vec<u32> =
            g.g.edges_directed(id.0, petgraph::Direction::Incoming).map(|e| *e.weight()).collect();
        slots.sort();
        if slots.iter().enumerate().any(|(i, &s)| s as usize != i) {
            errs.push(format!("{id} ({}): operand slots {slots:?} are not 0..{}", node.name, slots.len()));
        }
        if matches!(node.op, Op::Input) {
            if !ops.is_empty() {
                errs.push(format!("{id}: an input has operands"));
            }
        } else {
            let shapes: Vec<_> = ops.iter().map(|&o| &g.node(o).shape).collect();
            match infer(&node.op, &shapes) {
                Ok(s) if s == node.shape => {}
                Ok(s) => {
                    errs.push(format!("{id} ({}): recorded shape {} but operands give {s}", node.name, node.shape))
                }
                Err(e) => errs.push(format!("{id} ({}): {e}", node.name)),
            }
        }
        for p in node.op.params() {
            if !keys.insert(p.key.clone()) {
                errs.push(format!("{id} ({}): parameter key `{}` is used twice", node.name, p.key));
            }
        }
    }
    for (name, o) in &g.outputs {
        if !g.g.contains_node(o.0) {
            errs.push(format!("output `{name}` names a removed node {o}"));
        }
    }
    for i in &g.inputs {
        if !g.g.contains_node(i.0) {
            errs.push(format!("input {i} was removed"));
        }
    }
    errs
}
