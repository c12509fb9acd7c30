//! What a drawing shows: a box per layer (its batch norm and ReLU absorbed) or per scope
//! collapsed by the depth limit, the clusters, and the edges between boxes in operand order.

use super::Options;
use crate::ir::{Graph, NodeId, Op, ScopeId};
use std::collections::{HashMap, HashSet};

/// One box of the drawing.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub(super) enum Item {
    /// An IR node, with the batch norm and ReLU it absorbed.
    Node(NodeId),
    /// A whole scope collapsed by the depth limit.
    Scope(ScopeId),
}

impl Item {
    pub(super) fn id(self) -> String {
        match self {
            Item::Node(n) => format!("n{}", n.index()),
            Item::Scope(s) => format!("s{}", s.0),
        }
    }
}

/// An edge between two boxes: the tensor of `tensor` flowing from `from` to `to`.
pub(super) struct Edge {
    pub(super) from: Item,
    pub(super) to: Item,
    pub(super) tensor: NodeId,
    pub(super) residual: bool,
}

/// The drawing before it is written: boxes, what they absorbed, where they sit, and edges.
pub(super) struct Drawing<'g> {
    pub(super) g: &'g Graph,
    /// The box of every IR node.
    pub(super) item_of: HashMap<NodeId, Item>,
    /// Epilogue ops absorbed by a node box (`BN`, `ReLU`).
    pub(super) absorbed: HashMap<NodeId, Vec<&'static str>>,
    /// Scopes drawn as clusters.
    pub(super) clusters: HashSet<ScopeId>,
    pub(super) edges: Vec<Edge>,
}

impl<'g> Drawing<'g> {
    pub(super) fn new(g: &'g Graph, opts: &Options) -> Self {
        let chain_of = |n: NodeId| g.scope_chain(g.node(n).scope);
        let order = g.topo_order();
        // 1. The scope `depth` levels down of every node that deep. It becomes one box
        //    unless it holds a single layer (with its epilogue), which is drawn as itself.
        let deep: HashMap<NodeId, ScopeId> = order
            .iter()
            .filter_map(|&n| {
                let chain = chain_of(n);
                opts.depth.filter(|&d| chain.len() >= d).map(|d| (n, chain[d - 1]))
            })
            .collect();
        let mut layers: HashMap<ScopeId, usize> = HashMap::new();
        for (&n, &s) in &deep {
            if epilogue_of(g, n).is_none() {
                *layers.entry(s).or_default() += 1;
            }
        }
        let boxes: HashSet<ScopeId> = layers.into_iter().filter(|&(_, k)| k > 1).map(|(s, _)| s).collect();
        // 2. Items: scope boxes, node boxes, and the epilogues node boxes absorb.
        let mut item_of: HashMap<NodeId, Item> = HashMap::new();
        let mut absorbed: HashMap<NodeId, Vec<&'static str>> = HashMap::new();
        for &n in &order {
            if let Some(&s) = deep.get(&n).filter(|s| boxes.contains(s)) {
                item_of.insert(n, Item::Scope(s));
                continue;
            }
            match epilogue_of(g, n).and_then(|(p, w)| match item_of.get(&p) {
                Some(Item::Node(h)) => Some((*h, w)),
                _ => None,
            }) {
                Some((h, w)) => {
                    absorbed.entry(h).or_default().push(w);
                    item_of.insert(n, Item::Node(h));
                }
                None => {
                    item_of.insert(n, Item::Node(n));
                }
            }
        }
        // 3. Clusters: block instances and the scopes holding them, down to the depth limit
        //    and outside the boxes.
        let drawn = |s: ScopeId| {
            let chain = g.scope_chain(Some(s));
            opts.depth.is_none_or(|d| chain.len() <= d) && !chain.iter().any(|c| boxes.contains(c))
        };
        let mut clusters = HashSet::new();
        for (i, sc) in g.scopes.iter().enumerate() {
            if sc.block.is_some() {
                for s in g.scope_chain(Some(ScopeId(i as u32))) {
                    if drawn(s) {
                        clusters.insert(s);
                    }
                }
            }
        }
        // 4. Edges between items, in operand order.
        let mut edges = vec![];
        let mut into_boxes = HashSet::new();
        for &n in &order {
            let to = item_of[&n];
            for (slot, p) in g.operands(n).into_iter().enumerate() {
                let from = item_of[&p];
                if from == to || (matches!(to, Item::Scope(_)) && !into_boxes.insert((from, to))) {
                    continue;
                }
                let residual = match &g.node(n).op {
                    Op::Add { .. } => slot == 0,
                    Op::Conv2d(c) => c.epilogue.residual.is_some() && slot == 1,
                    _ => false,
                };
                edges.push(Edge { from, to, tensor: p, residual });
            }
        }
        Drawing { g, item_of, absorbed, clusters, edges }
    }

    /// The nearest cluster enclosing scope `s`.
    pub(super) fn parent_cluster(&self, s: ScopeId) -> Option<ScopeId> {
        let mut cur = self.g.scope(s).parent;
        while let Some(p) = cur {
            if self.clusters.contains(&p) {
                return Some(p);
            }
            cur = self.g.scope(p).parent;
        }
        None
    }

    /// The clusters an item sits in, outermost first.
    pub(super) fn cluster_chain(&self, item: Item) -> Vec<ScopeId> {
        let mut chain = match item {
            Item::Node(n) => self.g.scope_chain(self.g.node(n).scope),
            Item::Scope(s) => {
                let mut c = self.g.scope_chain(Some(s));
                c.pop();
                c
            }
        };
        chain.retain(|s| self.clusters.contains(s));
        chain
    }
}

/// `Some((operand, word))` when `n` is a batch norm or ReLU that a drawing folds into the box
/// of its operand: same name and scope, and the operand's only user.
fn epilogue_of(g: &Graph, n: NodeId) -> Option<(NodeId, &'static str)> {
    let node = g.node(n);
    let word = match node.op {
        Op::BatchNorm(_) => "BN",
        Op::Relu => "ReLU",
        _ => return None,
    };
    let [p] = g.operands(n)[..] else { return None };
    let pn = g.node(p);
    let folds = g.users(p) == [n]
        && pn.name == node.name
        && pn.scope == node.scope
        && !matches!(pn.op, Op::Input)
        && !g.outputs.iter().any(|(_, o)| *o == p);
    folds.then_some((p, word))
}
