//! The IR as text: one line per node in topological order.
//!
//! ```text
//! %0 = input : 1x3x299x299
//! %1 = conv2d[32, 3x3, s2] %0 : 1x32x149x149  ; Conv2d_1a_3x3
//! %9 = concat %5, %8 : 1x64x35x35 nchw16c in_place  ; Mixed_5b
//! ```

use super::graph::Graph;
use super::layout::Layout;
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
        // Annotations of the late passes, printed only when set so lowered IR is unchanged.
        if n.layout != Layout::Nchw {
            let _ = write!(s, " {}", n.layout);
        }
        if n.in_place {
            s.push_str(" in_place");
        }
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
