//! `incc summary`: a per-layer table of a network with parameter and MAC totals.

use crate::ir::{Graph, Op};
use serde::Serialize;
use std::fmt::Write;

/// A named tensor and its shape.
#[derive(Serialize, Debug, Clone)]
pub struct Port {
    /// Its name.
    pub name: String,
    /// Its dimensions.
    pub shape: Vec<usize>,
}

/// One row of the summary.
#[derive(Serialize, Debug, Clone)]
pub struct Layer {
    /// Node id as the IR printer writes it (`%7`).
    pub id: String,
    /// Hierarchical name.
    pub name: String,
    /// The op with its attributes.
    pub op: String,
    /// Output shape.
    pub shape: Vec<usize>,
    /// Trainable parameters of this op.
    pub params: u64,
    /// Multiply-accumulates for one image.
    pub macs: u64,
}

/// The summary of a whole network.
#[derive(Serialize, Debug, Clone)]
pub struct Summary {
    /// The network's name.
    pub network: String,
    /// All trainable parameters of the file as written (every output included).
    pub params: u64,
    /// Multiply-accumulates of convolutions and fully connected layers for one image.
    pub macs: u64,
    /// The inputs.
    pub inputs: Vec<Port>,
    /// The outputs.
    pub outputs: Vec<Port>,
    /// Every operation in topological order.
    pub layers: Vec<Layer>,
}

impl Summary {
    /// Summarises `g`.
    pub fn of(g: &Graph) -> Summary {
        let port = |name: &str, id| Port { name: name.to_string(), shape: g.node(id).shape.0.clone() };
        let layers = g
            .topo_order()
            .into_iter()
            .filter(|&id| !matches!(g.node(id).op, Op::Input))
            .map(|id| {
                let n = g.node(id);
                Layer {
                    id: id.to_string(),
                    name: n.name.clone(),
                    op: n.op.to_string(),
                    shape: n.shape.0.clone(),
                    params: n
                        .op
                        .params()
                        .iter()
                        .filter(|p| p.role.is_trainable())
                        .map(|p| p.shape.iter().product::<usize>() as u64)
                        .sum(),
                    macs: g.macs(id),
                }
            })
            .collect();
        Summary {
            network: g.name.clone(),
            params: g.param_count(),
            macs: g.total_macs(),
            inputs: g.inputs.iter().map(|&i| port(&g.node(i).name, i)).collect(),
            outputs: g.outputs.iter().map(|(n, i)| port(n, *i)).collect(),
            layers,
        }
    }

    /// A plain-text table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let dims = |d: &[usize]| d.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("x");
        let wname = self.layers.iter().map(|l| l.name.len()).max().unwrap_or(4).clamp(4, 60);
        let wop = self.layers.iter().map(|l| l.op.len()).max().unwrap_or(2).clamp(2, 48);
        let _ = writeln!(s, "network {}", self.network);
        for i in &self.inputs {
            let _ = writeln!(s, "input  {} {}", i.name, dims(&i.shape));
        }
        let _ = writeln!(s, "{:<wname$}  {:<wop$}  {:>16}  {:>12}  {:>15}", "name", "op", "output", "params", "MACs");
        for l in &self.layers {
            let _ = writeln!(
                s,
                "{:<wname$}  {:<wop$}  {:>16}  {:>12}  {:>15}",
                l.name,
                l.op,
                dims(&l.shape),
                group(l.params),
                group(l.macs)
            );
        }
        for o in &self.outputs {
            let _ = writeln!(s, "output {} {}", o.name, dims(&o.shape));
        }
        let _ = writeln!(
            s,
            "total: {} parameters, {} MACs ({} layers)",
            group(self.params),
            group(self.macs),
            self.layers.len()
        );
        s
    }
}

/// `1234567` as `1,234,567`.
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
