//! The IR as text: one line per node in topological order.
//!
//! ```text
//! %0 = input : 1x3x299x299
//! %1 = conv2d[32, 3x3, s2] %0 : 1x32x149x149  ; Conv2d_1a_3x3
//! ```

use super::graph::Graph;
use std::fmt::Write;

/// Prints the graph.
pub fn print(g: &Graph) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "network {}", g.name);
    for id in g.topo_order() {
        let n = g.node(id);
        let ops: Vec<String> = g.operands(id).iter().map(|o| o.to_string()).collect();
        let _ = write!(s, "{id} = {}", n.op);
        if !ops.is_empty() {
            let _ = write!(s, " {}", ops.join(", "));
        }
        let _ = write!(s, " : {}", n.shape);
        if !n.name.is_empty() {
            let _ = write!(s, "  ; {}", n.name);
        }
        s.push('\n');
    }
    for (name, id) in &g.outputs {
        let _ = writeln!(s, "output {name} = {id}");
    }
    s
}
