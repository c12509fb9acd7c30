//! The IR graph: a petgraph `StableDiGraph` of [`Node`]s whose edges carry operand slots.

use super::layout::Layout;
use super::op::{Op, ParamSpec};
use super::preprocess::Preprocess;
use super::shape::Shape;
use crate::diag::Span;
use petgraph::Direction;
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;
use std::fmt;

/// A node of [`Graph`]. Displays as `%7`, as `ir::print` writes it.
///
/// Stable across removals of other nodes (the graph is a `StableDiGraph`).
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct NodeId(pub NodeIndex);

impl NodeId {
    /// The raw index.
    pub fn index(self) -> usize {
        self.0.index()
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0.index())
    }
}

/// A [`Scope`] of [`Graph::scopes`]. Displays as `scope7`.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct ScopeId(pub u32);

impl ScopeId {
    /// The raw index into [`Graph::scopes`].
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for ScopeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "scope{}", self.0)
    }
}

/// A region of the source that nodes were elaborated in: a labelled statement (`Mixed_5b: ...`,
/// `branch1: [ ... ]`), an element of an indexed sequence (`features: [ ... ]` makes `0`, `1`,
/// ...), or a block instance. Scopes nest as the source does; they exist for people (drawings,
/// `incc graph --depth`) and no pass reads them.
#[derive(Clone, Debug, PartialEq)]
pub struct Scope {
    /// This scope's own component: the label (`branch1`, `_1`), the index (`6`), or the
    /// block's name for an unlabelled block instance.
    pub label: String,
    /// The hierarchical name its nodes get (`features.6`, `inception_3a`); the same as the
    /// parent's for an unlabelled block instance.
    pub path: String,
    /// The enclosing scope; `None` at the top level.
    pub parent: Option<ScopeId>,
    /// For a block instance: the call with its evaluated arguments (`inception_a(32)`).
    pub block: Option<String>,
    /// The statement that opened the scope.
    pub span: Span,
}

/// One operation with its inferred output shape.
#[derive(Clone, Debug)]
pub struct Node {
    /// What it computes.
    pub op: Op,
    /// Exact output shape; every pass keeps it valid.
    pub shape: Shape,
    /// Where the user wrote it; rewrites copy it onto replacements.
    pub span: Span,
    /// Hierarchical name for people (`Mixed_5b.branch5x5_1`), unique only by convention.
    pub name: String,
    /// Memory layout of this node's output; [`Layout::Nchw`] until `select-layout` runs.
    pub layout: Layout,
    /// The innermost [`Scope`] it was written in; `None` at the top level. Rewrites copy it
    /// onto replacements, as they copy `span`.
    pub scope: Option<ScopeId>,
    /// On a `Concat` only, set by `eliminate-concat`: each operand is used by this concat
    /// alone and is written by its producer straight into its channel slice of the concat's
    /// buffer, so the concat copies nothing. Always `false` on other ops.
    pub in_place: bool,
}

/// A network: operations, their operands, the input and the named outputs.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    /// The nodes; edge weight = operand position at the target.
    pub g: StableDiGraph<Node, u32>,
    /// The network inputs, in order.
    pub inputs: Vec<NodeId>,
    /// The named outputs, in declaration order.
    pub outputs: Vec<(String, NodeId)>,
    /// The network's name.
    pub name: String,
    /// The source regions nodes were written in; [`Node::scope`] indexes it. A scope's
    /// parent always precedes it.
    pub scopes: Vec<Scope>,
    /// How an image becomes the input (`preprocess` in the source), if declared.
    pub preprocess: Option<Preprocess>,
}

impl Graph {
    /// An empty graph.
    pub fn new(name: impl Into<String>) -> Self {
        Graph { name: name.into(), ..Default::default() }
    }

    /// Adds a node computing `op` from `operands` (in slot order).
    pub fn add(&mut self, op: Op, shape: Shape, span: Span, name: impl Into<String>, operands: &[NodeId]) -> NodeId {
        let id = NodeId(self.g.add_node(Node {
            op,
            shape,
            span,
            name: name.into(),
            layout: Layout::Nchw,
            scope: None,
            in_place: false,
        }));
        for (slot, o) in operands.iter().enumerate() {
            self.g.add_edge(o.0, id.0, slot as u32);
        }
        id
    }

    /// The scope `id`.
    pub fn scope(&self, id: ScopeId) -> &Scope {
        &self.scopes[id.index()]
    }

    /// The scopes from the top level down to `id` (empty for `None`).
    pub fn scope_chain(&self, id: Option<ScopeId>) -> Vec<ScopeId> {
        let mut chain = vec![];
        let mut cur = id;
        while let Some(s) = cur {
            chain.push(s);
            cur = self.scope(s).parent;
        }
        chain.reverse();
        chain
    }

    /// The innermost scope enclosing both `a` and `b`.
    pub fn common_scope(&self, a: Option<ScopeId>, b: Option<ScopeId>) -> Option<ScopeId> {
        let (ca, cb) = (self.scope_chain(a), self.scope_chain(b));
        ca.iter().zip(&cb).take_while(|(x, y)| x == y).last().map(|(x, _)| *x)
    }

    /// The node `id`. Panics if it was removed (a compiler bug, not a user error).
    pub fn node(&self, id: NodeId) -> &Node {
        &self.g[id.0]
    }

    /// The node `id`, mutably.
    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.g[id.0]
    }

    /// The operands of `id`, in slot order.
    pub fn operands(&self, id: NodeId) -> Vec<NodeId> {
        let mut v: Vec<(u32, NodeId)> =
            self.g.edges_directed(id.0, Direction::Incoming).map(|e| (*e.weight(), NodeId(e.source()))).collect();
        v.sort();
        v.into_iter().map(|(_, n)| n).collect()
    }

    /// The nodes that read `id` (each once), in index order.
    pub fn users(&self, id: NodeId) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self.g.neighbors_directed(id.0, Direction::Outgoing).map(NodeId).collect();
        v.sort();
        v.dedup();
        v
    }

    /// All live node ids in index order.
    pub fn node_ids(&self) -> Vec<NodeId> {
        self.g.node_indices().map(NodeId).collect()
    }

    /// Nodes in a topological order (operands before users); ties broken by index, so the
    /// order is deterministic and follows the source for freshly lowered graphs.
    pub fn topo_order(&self) -> Vec<NodeId> {
        let ids = self.node_ids();
        let mut indeg: std::collections::HashMap<NodeId, usize> =
            ids.iter().map(|&i| (i, self.g.edges_directed(i.0, Direction::Incoming).count())).collect();
        let mut ready: std::collections::BTreeSet<NodeId> = ids.iter().copied().filter(|i| indeg[i] == 0).collect();
        let mut order = Vec::with_capacity(ids.len());
        while let Some(n) = ready.pop_first() {
            order.push(n);
            for e in self.g.edges_directed(n.0, Direction::Outgoing) {
                let t = NodeId(e.target());
                let d = indeg.get_mut(&t).expect("edge to a live node");
                *d -= 1;
                if *d == 0 {
                    ready.insert(t);
                }
            }
        }
        order
    }

    /// Every parameter tensor of the graph, in topological order.
    pub fn params(&self) -> Vec<ParamSpec> {
        self.topo_order().into_iter().flat_map(|n| self.node(n).op.params()).collect()
    }

    /// Trainable parameters (as PyTorch's `parameters()` counts them, without BN statistics).
    pub fn param_count(&self) -> u64 {
        self.params().iter().filter(|p| p.role.is_trainable()).map(|p| p.shape.iter().product::<usize>() as u64).sum()
    }

    /// Multiply-accumulates of node `id` for one image (convolutions and linear layers only).
    pub fn macs(&self, id: NodeId) -> u64 {
        let n = self.node(id);
        match &n.op {
            Op::Conv2d(c) => {
                (n.shape.numel() as u64) * (c.in_channels / c.groups) as u64 * (c.kernel[0] * c.kernel[1]) as u64
            }
            Op::Linear(l) => (l.in_features as u64) * (l.out_features as u64),
            _ => 0,
        }
    }

    /// Total multiply-accumulates for one image.
    pub fn total_macs(&self) -> u64 {
        self.node_ids().into_iter().map(|n| self.macs(n)).sum()
    }

    /// Removes a node and its edges.
    pub fn remove(&mut self, id: NodeId) -> Option<Node> {
        self.g.remove_node(id.0)
    }

    /// Makes every user of `old` (and every output naming it) read `new` instead.
    pub fn replace_uses(&mut self, old: NodeId, new: NodeId) {
        let edges: Vec<_> =
            self.g.edges_directed(old.0, Direction::Outgoing).map(|e| (e.id(), e.target(), *e.weight())).collect();
        for (eid, target, slot) in edges {
            self.g.remove_edge(eid);
            self.g.add_edge(new.0, target, slot);
        }
        for (_, o) in self.outputs.iter_mut() {
            if *o == old {
                *o = new;
            }
        }
    }

    /// The output named `name`.
    pub fn output(&self, name: &str) -> Option<NodeId> {
        self.outputs.iter().find(|(n, _)| n == name).map(|(_, id)| *id)
    }
}
