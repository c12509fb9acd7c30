//! Pictures of a network (`incc graph`): Graphviz `dot` text, SVG, and a self-contained HTML page.
//!
//! The drawing follows the papers' figures rather than the IR node for node:
//! - a layer and the batch norm and ReLU that follow it (same name, its only user) are one box:
//!   `3x3 conv, 64, /2` over `BN, ReLU`;
//! - every block instance is a Graphviz cluster labelled with its call
//!   (`Mixed_5b: inception_a(32)`), and so is a labelled scope that holds block instances
//!   (`features`), see [`ir::Scope`](crate::ir::Scope);
//! - when a tensor from outside a cluster feeds several nodes inside it, the fan-out is drawn as
//!   one split point inside the cluster, so a module reads split -> parallel branches -> concat;
//! - the residual input of a sum (`x` in `x + scale * f(x)`) is a bold red edge;
//! - every edge carries the shape of its tensor (`CxHxW`, the batch of 1 left out), and the
//!   edges into a concat are written in operand order;
//! - with a depth `N`, every node whose scope chain is longer than `N` is drawn as the one box
//!   of its scope `N` levels down (`--depth 1`: each top-level block or labelled statement is a box).
//!
//! SVG comes from Graphviz's `dot -Tsvg`, run as a child process. There is deliberately no
//! pure-Rust fallback: the one Rust layout crate (`layout-rs`) draws no nested graphs, and the
//! clusters are the point of these pictures; without Graphviz, `svg` and `html` fail with an
//! error that says how to install it, and `dot` text still works.

use crate::error::{Error, Result};
use crate::ir::{Graph, NodeId, Op, PoolKind, ScopeId, Shape};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write;
use std::io::Write as _;
use std::process::{Command, Stdio};

/// What to draw.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Draw each scope this many levels down as one box (`None`: draw every layer).
    pub depth: Option<usize>,
}

/// One box of the drawing.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
enum Item {
    /// An IR node, with the batch norm and ReLU it absorbed.
    Node(NodeId),
    /// A whole scope collapsed by the depth limit.
    Scope(ScopeId),
}

impl Item {
    fn id(self) -> String {
        match self {
            Item::Node(n) => format!("n{}", n.index()),
            Item::Scope(s) => format!("s{}", s.0),
        }
    }
}

/// An edge between two boxes: the tensor of `tensor` flowing from `from` to `to`.
struct Edge {
    from: Item,
    to: Item,
    tensor: NodeId,
    residual: bool,
}

/// The drawing before it is written: boxes, what they absorbed, where they sit, and edges.
struct Drawing<'g> {
    g: &'g Graph,
    /// The box of every IR node.
    item_of: HashMap<NodeId, Item>,
    /// Epilogue ops absorbed by a node box (`BN`, `ReLU`).
    absorbed: HashMap<NodeId, Vec<&'static str>>,
    /// Scopes drawn as clusters.
    clusters: HashSet<ScopeId>,
    edges: Vec<Edge>,
}

/// The graph in Graphviz's `dot` language.
pub fn to_dot(g: &Graph, opts: &Options) -> String {
    Drawing::new(g, opts).write()
}

/// Runs Graphviz's `dot -Tsvg` on `dot` text.
pub fn render_svg(dot: &str) -> Result<String> {
    let spawned =
        Command::new("dot").arg("-Tsvg").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Graphviz(
                "SVG and HTML output need Graphviz's `dot` program, which is not on PATH; install Graphviz \
                 (Debian/Ubuntu: `apt-get install graphviz`, macOS: `brew install graphviz`) or use `--format dot`"
                    .into(),
            ));
        }
        Err(e) => return Err(Error::Graphviz(format!("cannot run `dot`: {e}"))),
    };
    // Write on another thread: `dot` may fill its stdout pipe before it has read all its input.
    let mut stdin = child.stdin.take().ok_or_else(|| Error::Graphviz("no stdin for `dot`".into()))?;
    let text = dot.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
    let out = child.wait_with_output().map_err(|e| Error::Graphviz(format!("`dot` failed: {e}")))?;
    let written = writer.join().map_err(|_| Error::Graphviz("writing to `dot` panicked".into()))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr);
        return Err(Error::Graphviz(format!("`dot -Tsvg` failed ({}): {}", out.status, msg.trim())));
    }
    written.map_err(|e| Error::Graphviz(format!("writing to `dot`: {e}")))?;
    String::from_utf8(out.stdout).map_err(|e| Error::Graphviz(format!("`dot` wrote invalid UTF-8: {e}")))
}

/// The deepest scope nesting of the graph (0 when it has no scopes).
pub fn max_depth(g: &Graph) -> usize {
    (0..g.scopes.len()).map(|i| g.scope_chain(Some(ScopeId(i as u32))).len()).max().unwrap_or(0)
}

/// A self-contained HTML page: the SVG at every depth (a selector switches between them, so
/// blocks collapse and expand), zoom with the wheel, pan by dragging; each view opens at its
/// top, as wide as the window allows. `opts.depth` is shown first.
pub fn to_html(g: &Graph, opts: &Options) -> Result<String> {
    let deepest = max_depth(g);
    // Levels that differ from the full drawing, then the full drawing.
    let mut levels: Vec<Option<usize>> = (1..deepest).map(Some).collect();
    levels.push(None);
    let shown = opts.depth.filter(|&d| d < deepest);
    let mut page = String::new();
    let title = html_escape(&g.name);
    let _ = write!(
        page,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ margin: 0; font: 14px Helvetica, Arial, sans-serif; }}
header {{ padding: 6px 10px; background: #f3f3f3; border-bottom: 1px solid #ccc; }}
#view {{ position: absolute; top: 38px; bottom: 0; left: 0; right: 0; overflow: hidden; cursor: grab; }}
.level {{ transform-origin: 0 0; display: none; }}
.level.on {{ display: block; }}
</style></head><body>
<header><b>{title}</b> &nbsp; view: <select id="depth">"#
    );
    for (i, l) in levels.iter().enumerate() {
        let label = match l {
            Some(d) => format!("depth {d}"),
            None => "every layer".to_string(),
        };
        let sel = if *l == shown { " selected" } else { "" };
        let _ = write!(page, r#"<option value="{i}"{sel}>{label}</option>"#);
    }
    page.push_str(
        r#"</select> <button id="fit">whole graph</button> &nbsp; wheel: zoom, drag: pan</header>
<div id="view">
"#,
    );
    for (i, l) in levels.iter().enumerate() {
        let svg = render_svg(&to_dot(g, &Options { depth: *l }))?;
        // Drop the XML prologue and doctype: the SVG is inline.
        let start = svg.find("<svg").unwrap_or(0);
        let _ = writeln!(page, r#"<div class="level" id="level{i}">{}</div>"#, &svg[start..]);
    }
    page.push_str(
        r#"</div>
<script>
(function () {
  var view = document.getElementById("view"), sel = document.getElementById("depth");
  var s = 1, x = 0, y = 0, drag = null;
  function cur() { return document.getElementById("level" + sel.value); }
  function apply() { cur().style.transform = "translate(" + x + "px," + y + "px) scale(" + s + ")"; }
  function fit(whole) {
    var svg = cur().querySelector("svg"), w = svg.width.baseVal.value, h = svg.height.baseVal.value;
    s = Math.min(view.clientWidth / w, whole ? view.clientHeight / h : 1, 1);
    x = (view.clientWidth - w * s) / 2; y = 0; apply();
  }
  function show() {
    Array.prototype.forEach.call(document.querySelectorAll(".level"), function (e) { e.classList.remove("on"); });
    cur().classList.add("on"); fit(false);
  }
  view.addEventListener("wheel", function (e) {
    e.preventDefault();
    var k = e.deltaY < 0 ? 1.15 : 1 / 1.15, r = view.getBoundingClientRect();
    var px = e.clientX - r.left, py = e.clientY - r.top;
    x = px - (px - x) * k; y = py - (py - y) * k; s *= k; apply();
  }, { passive: false });
  view.addEventListener("mousedown", function (e) { drag = [e.clientX - x, e.clientY - y]; view.style.cursor = "grabbing"; });
  window.addEventListener("mouseup", function () { drag = null; view.style.cursor = "grab"; });
  window.addEventListener("mousemove", function (e) { if (drag) { x = e.clientX - drag[0]; y = e.clientY - drag[1]; apply(); } });
  sel.addEventListener("change", show);
  document.getElementById("fit").addEventListener("click", function () { fit(true); });
  show();
})();
</script>
</body></html>
"#,
    );
    Ok(page)
}

impl<'g> Drawing<'g> {
    fn new(g: &'g Graph, opts: &Options) -> Self {
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
    fn parent_cluster(&self, s: ScopeId) -> Option<ScopeId> {
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
    fn cluster_chain(&self, item: Item) -> Vec<ScopeId> {
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

    fn write(&self) -> String {
        let g = self.g;
        let mut out = String::new();
        let _ = writeln!(out, "digraph \"{}\" {{", dot_escape(&g.name));
        let _ = writeln!(
            out,
            "  graph [rankdir=TB, newrank=true, nodesep=0.2, ranksep=0.28, fontname=\"Helvetica\", fontsize=12, \
             labelloc=t, label=<<B>{}</B><BR/><FONT POINT-SIZE=\"10\">{} parameters, {} multiply-adds</FONT>>];",
            html_escape(&g.name),
            crate::summary::group(g.param_count()),
            crate::summary::group(g.total_macs())
        );
        out.push_str(
            "  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=10, margin=\"0.08,0.03\", \
             height=0.3, color=\"#6f7f8f\", fillcolor=\"#ffffff\"];\n",
        );
        out.push_str(
            "  edge [fontname=\"Helvetica\", fontsize=8, fontcolor=\"#555555\", color=\"#7a7a7a\", arrowsize=0.6];\n",
        );
        // Items and split points, grouped by their innermost cluster.
        let mut members: BTreeMap<Option<ScopeId>, Vec<String>> = BTreeMap::new();
        let mut seen = HashSet::new();
        for id in g.topo_order() {
            let item = self.item_of[&id];
            if seen.insert(item) {
                let home = self.cluster_chain(item).last().copied();
                members.entry(home).or_default().push(self.node_stmt(item, home));
            }
        }
        // A fan-out of one tensor to several boxes of one cluster becomes one labelled edge to a
        // split point in that cluster: the outermost cluster holding the targets but not the
        // source, or the source's own cluster.
        let mut groups: BTreeMap<(Item, Option<ScopeId>), Vec<usize>> = BTreeMap::new();
        for (i, e) in self.edges.iter().enumerate() {
            let (fc, tc) = (self.cluster_chain(e.from), self.cluster_chain(e.to));
            let common = fc.iter().zip(&tc).take_while(|(a, b)| a == b).count();
            let home = tc.get(common).or(fc.last()).copied();
            groups.entry((e.from, home)).or_default().push(i);
        }
        let mut split_of: HashMap<usize, String> = HashMap::new();
        let mut split_edges = vec![];
        for ((from, c), idx) in &groups {
            if idx.len() < 2 {
                continue;
            }
            let id = match c {
                Some(c) => format!("{}_split_s{}", from.id(), c.0),
                None => format!("{}_split", from.id()),
            };
            members.entry(*c).or_default().push(format!(
                "{id} [shape=point, width=0.07, height=0.07, color=\"#555555\", fillcolor=\"#555555\", style=filled]"
            ));
            let e = &self.edges[idx[0]];
            split_edges.push(format!(
                "{} -> {id} [label=\"{}\", arrowhead=none]",
                from.id(),
                shape_label(&g.node(e.tensor).shape)
            ));
            for &i in idx {
                split_of.insert(i, id.clone());
            }
        }
        self.write_cluster(&mut out, None, &members, 1);
        // Outputs.
        for (k, (name, id)) in g.outputs.iter().enumerate() {
            let _ = writeln!(
                out,
                "  out{k} [shape=ellipse, style=filled, fillcolor=\"#eeeeee\", label=<output <B>{}</B>>];",
                html_escape(name)
            );
            let _ =
                writeln!(out, "  {} -> out{k} [label=\"{}\"];", self.item_of[id].id(), shape_label(&g.node(*id).shape));
        }
        for s in split_edges {
            let _ = writeln!(out, "  {s};");
        }
        for (i, e) in self.edges.iter().enumerate() {
            let style = if e.residual { ", color=\"#c0392b\", penwidth=2" } else { "" };
            match split_of.get(&i) {
                Some(split) => {
                    let _ = writeln!(out, "  {split} -> {} [{}];", e.to.id(), style.trim_start_matches(", "));
                }
                None => {
                    let _ = writeln!(
                        out,
                        "  {} -> {} [label=\"{}\"{style}];",
                        e.from.id(),
                        e.to.id(),
                        shape_label(&g.node(e.tensor).shape)
                    );
                }
            }
        }
        out.push_str("}\n");
        out
    }

    /// Writes the items of `scope` and the clusters directly inside it.
    fn write_cluster(
        &self,
        out: &mut String,
        scope: Option<ScopeId>,
        members: &BTreeMap<Option<ScopeId>, Vec<String>>,
        indent: usize,
    ) {
        let pad = "  ".repeat(indent);
        for stmt in members.get(&scope).into_iter().flatten() {
            let _ = writeln!(out, "{pad}{stmt};");
        }
        let mut children: Vec<ScopeId> =
            self.clusters.iter().copied().filter(|&c| self.parent_cluster(c) == scope).collect();
        children.sort();
        for c in children {
            let sc = self.g.scope(c);
            let label = match &sc.block {
                Some(call) => format!("<B>{}</B>: {}", html_escape(&sc.path), html_escape(short_call(call))),
                None => format!("<B>{}</B>", html_escape(&sc.path)),
            };
            let fill = if sc.block.is_some() { "#f6f8fa" } else { "#fcfcfc" };
            let _ = writeln!(
                out,
                "{pad}subgraph cluster_s{} {{\n{pad}  label=<{label}>; labeljust=l; style=\"rounded,filled\"; \
                 fillcolor=\"{fill}\"; color=\"#9aa5b1\"; fontsize=11;",
                c.0
            );
            self.write_cluster(out, Some(c), members, indent + 1);
            let _ = writeln!(out, "{pad}}}");
        }
    }

    /// The `id [attributes]` statement of one box; `home` is the cluster it sits in.
    fn node_stmt(&self, item: Item, home: Option<ScopeId>) -> String {
        let g = self.g;
        let home_path = home.map(|h| g.scope(h).path.as_str()).unwrap_or("");
        match item {
            Item::Scope(s) => {
                let sc = g.scope(s);
                let inside: Vec<NodeId> = self.item_of.iter().filter(|(_, i)| **i == item).map(|(n, _)| *n).collect();
                let layers = inside.iter().filter(|&&n| matches!(g.node(n).op, Op::Conv2d(_) | Op::Linear(_))).count();
                let params: u64 = inside
                    .iter()
                    .flat_map(|&n| g.node(n).op.params())
                    .filter(|p| p.role.is_trainable())
                    .map(|p| p.shape.iter().product::<usize>() as u64)
                    .sum();
                let mut label = format!("<B>{}</B>", html_escape(relative(&sc.path, home_path)));
                if let Some(call) = &sc.block {
                    let _ = write!(label, "<BR/>{}", html_escape(short_call(call)));
                }
                let _ = write!(
                    label,
                    "<BR/><FONT POINT-SIZE=\"8\">{layers} weight layer{}, {} parameters</FONT>",
                    if layers == 1 { "" } else { "s" },
                    compact(params)
                );
                format!("{} [shape=box3d, style=filled, fillcolor=\"#fff2cc\", label=<{label}>]", item.id())
            }
            Item::Node(n) => {
                let node = g.node(n);
                let (desc, fill, shape) = describe(&node.op, &node.shape);
                let mut lines = vec![];
                let name = relative(&node.name, home_path);
                let same_as_op = name.is_empty() || desc.starts_with(name) || name == node.op.kind();
                if !same_as_op {
                    lines.push(format!("<B>{}</B>", html_escape(name)));
                }
                lines.push(html_escape(&desc));
                if let Some(words) = self.absorbed.get(&n) {
                    lines.push(format!("<FONT POINT-SIZE=\"8\">{}</FONT>", words.join(", ")));
                }
                let shape_attr = if shape == "box" { String::new() } else { format!("shape={shape}, ") };
                format!("{} [{shape_attr}fillcolor=\"{fill}\", label=<{}>]", item.id(), lines.join("<BR/>"))
            }
        }
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

/// The paper's words for an op, a fill colour and a Graphviz shape.
fn describe(op: &Op, shape: &Shape) -> (String, &'static str, &'static str) {
    let stride = |s: [usize; 2]| match s {
        [1, 1] => String::new(),
        [a, b] if a == b => format!(", /{a}"),
        [a, b] => format!(", stride {a}x{b}"),
    };
    match op {
        Op::Input => (format!("input {}", shape_label(shape)), "#ffffff", "box"),
        Op::Conv2d(c) => {
            let mut s = format!("{}x{} conv, {}{}", c.kernel[0], c.kernel[1], c.out_channels, stride(c.stride));
            if c.groups != 1 {
                let _ = write!(s, ", {} groups", c.groups);
            }
            if let Some(r) = c.epilogue.residual {
                let _ = write!(s, " + residual ×{r}");
            }
            if c.epilogue.relu {
                s.push_str(" + ReLU");
            }
            (s, "#cfe2f3", "box")
        }
        Op::BatchNorm(_) => ("batch norm".into(), "#eeeeee", "box"),
        Op::Relu => ("ReLU".into(), "#eeeeee", "box"),
        Op::Pool(p) => {
            let kind = if p.kind == PoolKind::Max { "max" } else { "avg" };
            (format!("{}x{} {kind} pool{}", p.kernel[0], p.kernel[1], stride(p.stride)), "#fde9c9", "box")
        }
        Op::GlobalAvgPool => ("global avg pool".into(), "#fde9c9", "box"),
        Op::Lrn(l) => (format!("LRN {}", l.size), "#eeeeee", "box"),
        Op::Dropout { p } => (format!("dropout {p}"), "#eeeeee", "box"),
        Op::Flatten => ("flatten".into(), "#eeeeee", "box"),
        Op::Linear(l) => (format!("fc {}{}", l.out_features, if l.relu { " + ReLU" } else { "" }), "#e4d7f5", "box"),
        Op::L2Norm { .. } => ("L2 norm".into(), "#eeeeee", "box"),
        Op::Softmax => ("softmax".into(), "#eeeeee", "box"),
        Op::Concat => ("concat".into(), "#d9ead3", "box"),
        Op::Add { scale } if *scale == 1.0 => ("+".into(), "#f4cccc", "circle"),
        Op::Add { scale } => (format!("+ ×{scale}"), "#f4cccc", "ellipse"),
        Op::Slice { start, len } => (format!("channels {start}..{}", start + len), "#eeeeee", "box"),
    }
}

/// `inception_a()` -> `inception_a`; calls with arguments are kept whole.
fn short_call(call: &str) -> &str {
    call.strip_suffix("()").unwrap_or(call)
}

/// `name` without the `home` prefix and the separator after it (`Mixed_5b.branch1x1` in
/// `Mixed_5b` -> `branch1x1`; `inception_3a_3x3` in `inception_3a` -> `3x3`).
fn relative<'a>(name: &'a str, home: &str) -> &'a str {
    if home.is_empty() {
        return name;
    }
    match name.strip_prefix(home) {
        Some(rest) => {
            let mut c = rest.chars();
            match c.next() {
                Some(ch) if !ch.is_alphanumeric() => c.as_str(),
                Some(_) => name,
                None => "",
            }
        }
        None => name,
    }
}

/// A tensor shape without the batch of 1: `384x35x35`, `1000`.
fn shape_label(s: &Shape) -> String {
    let dims = if s.0.len() > 1 && s.0[0] == 1 { &s.0[1..] } else { &s.0[..] };
    dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x")
}

/// `1234567` -> `1.2M`.
fn compact(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

/// Escapes text for a Graphviz HTML-like label (and for HTML).
fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Escapes text for a double-quoted `dot` string.
fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_names() {
        assert_eq!(relative("Mixed_5b.branch1x1", "Mixed_5b"), "branch1x1");
        assert_eq!(relative("inception_3a_3x3", "inception_3a"), "3x3");
        assert_eq!(relative("Mixed_5b", "Mixed_5b"), "");
        assert_eq!(relative("Mixed_5bb.x", "Mixed_5b"), "Mixed_5bb.x");
        assert_eq!(relative("gap", ""), "gap");
    }

    #[test]
    fn labels() {
        assert_eq!(shape_label(&Shape::nchw(384, 35, 35)), "384x35x35");
        assert_eq!(shape_label(&Shape::flat(1000)), "1000");
        assert_eq!(compact(42_679_816), "42.7M");
        assert_eq!(html_escape("a<b>&\""), "a&lt;b&gt;&amp;&quot;");
    }
}
