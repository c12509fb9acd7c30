//! A [`Drawing`] as Graphviz `dot` text: clusters nested as the scopes are, split points for
//! fan-outs into a cluster, and the edges labelled with their shapes.

use super::labels::{compact, describe, dot_escape, html_escape, relative, shape_label, short_call};
use super::layout::{Drawing, Item};
use crate::ir::{NodeId, Op, ScopeId};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write;

impl Drawing<'_> {
    pub(super) fn write(&self) -> String {
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
