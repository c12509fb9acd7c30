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

/// The IR as data (`incc compile --emit ir --emit-format yaml`): the same facts as [`print()`].
#[derive(serde::Serialize, Debug)]
pub struct Document<'g> {
    /// The network's name.
    pub network: &'g str,
    /// Every node, in topological order.
    pub nodes: Vec<DocNode<'g>>,
    /// The named outputs and the nodes computing them.
    pub outputs: Vec<DocOutput<'g>>,
}

/// One node of a [`Document`].
#[derive(serde::Serialize, Debug)]
pub struct DocNode<'g> {
    /// As the text form writes it: `%7`.
    pub id: String,
    /// The operation and its attributes.
    pub op: &'g super::Op,
    /// Operand ids in slot order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub operands: Vec<String>,
    /// Output shape.
    pub shape: &'g [usize],
    /// Hierarchical name.
    pub name: &'g str,
    /// Memory layout when not NCHW.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layout: Option<String>,
    /// Set on concats whose operands write into it in place.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub in_place: bool,
}

/// One output of a [`Document`].
#[derive(serde::Serialize, Debug)]
pub struct DocOutput<'g> {
    /// The output's name.
    pub name: &'g str,
    /// The node computing it.
    pub node: String,
}

/// The graph as a serialisable [`Document`].
pub fn document(g: &Graph) -> Document<'_> {
    let nodes = g
        .topo_order()
        .into_iter()
        .map(|id| {
            let n = g.node(id);
            DocNode {
                id: id.to_string(),
                op: &n.op,
                operands: g.operands(id).iter().map(|o| o.to_string()).collect(),
                shape: &n.shape.0,
                name: &n.name,
                layout: (n.layout != Layout::Nchw).then(|| n.layout.to_string()),
                in_place: n.in_place,
            }
        })
        .collect();
    let outputs = g.outputs.iter().map(|(name, id)| DocOutput { name, node: id.to_string() }).collect();
    Document { network: &g.name, nodes, outputs }
}

/// The graph as YAML; ops are maps with one key, their kind (`{Conv2d: {out_channels: 64, ...}}`).
pub fn to_yaml(g: &Graph) -> crate::Result<String> {
    let mut out = Vec::new();
    let mut ser = serde_yaml_ng::Serializer::new(&mut out);
    serde_yaml_ng::with::singleton_map_recursive::serialize(&document(g), &mut ser)
        .map_err(|e| crate::Error::Invalid(format!("IR as YAML: {e}")))?;
    String::from_utf8(out).map_err(|e| crate::Error::Invalid(format!("IR as YAML: {e}")))
}
