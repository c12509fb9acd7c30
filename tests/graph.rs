//! `incc graph`: the structure of the dot text (clusters per block instance, shapes on edges,
//! concat inputs in operand order, residual edges, folded BN/ReLU), `--depth` collapsing, the
//! scopes lowering records, SVG/HTML through Graphviz, and bad options.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

mod common;
use common::{incc, scratch};

fn root(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel).display().to_string()
}

fn graphviz_installed() -> bool {
    Command::new("dot").arg("-V").output().is_ok_and(|o| o.status.success())
}

/// A residual block and an Inception-style block, both instantiated twice.
const NET: &str = "network small
input image 3x16x16
default conv nobias bn relu
block mix(c) {
  concat {
    b1: conv c 1x1
    b3: { _reduce: conv 4 1x1; conv c 3x3 pad 1 }
    pool: { maxpool 3x3 stride 1 pad 1; proj: conv c 1x1 }
  }
}
block res(s) {
  residual scale s relu { a: conv 12 1x1; b: conv 12 3x3 pad 1 nobn norelu }
}
stem: conv 8 3x3 stride 2 pad 1
m1: mix(4)
r1: res(0.5)
m2: mix(8)
gap
flatten
fc: fc 5
output logits
";

/// The parts of a dot file the tests look at.
#[derive(Debug, Default)]
struct Dot {
    /// id -> (label, attribute text, the clusters it sits in, outermost first).
    nodes: HashMap<String, (String, String, Vec<String>)>,
    /// (from, to, label, attribute text), in file order.
    edges: Vec<(String, String, String, String)>,
    /// Cluster labels, in file order.
    clusters: Vec<String>,
}

impl Dot {
    /// Reads what `incc graph` writes: one statement per line, clusters as nested subgraphs.
    fn parse(text: &str) -> Dot {
        let mut d = Dot::default();
        let mut stack: Vec<String> = vec![];
        let mut open_label = false;
        for line in text.lines().map(str::trim) {
            if line.starts_with("subgraph cluster_") {
                stack.push(String::new());
                open_label = true;
            } else if open_label && line.starts_with("label=<") {
                let label = between(line, "label=<", ">;").to_string();
                *stack.last_mut().unwrap() = label.clone();
                d.clusters.push(label);
                open_label = false;
            } else if line == "}" {
                stack.pop();
            } else if let Some((lhs, rest)) = line.split_once(" -> ") {
                let (to, attrs) = rest.split_once(' ').unwrap_or((rest.trim_end_matches(';'), ""));
                let label = if attrs.contains("label=\"") { between(attrs, "label=\"", "\"") } else { "" };
                d.edges.push((lhs.to_string(), to.to_string(), label.to_string(), attrs.to_string()));
            } else if let Some((id, attrs)) = line.split_once(" [")
                && !["graph", "node", "edge"].contains(&id)
                && !id.contains(' ')
            {
                let label = if attrs.contains("label=<") { between(attrs, "label=<", ">]") } else { "" };
                d.nodes.insert(id.to_string(), (label.to_string(), attrs.to_string(), stack.clone()));
            }
        }
        d
    }

    /// The one node whose label contains every needle.
    fn find(&self, needles: &[&str]) -> String {
        let hits: Vec<&String> = self
            .nodes
            .iter()
            .filter(|(_, (l, _, _))| needles.iter().all(|n| l.contains(n)))
            .map(|(id, _)| id)
            .collect();
        assert_eq!(hits.len(), 1, "nodes labelled {needles:?}: {hits:?}");
        hits[0].clone()
    }

    /// Edges into `id`, in file order.
    fn edges_into(&self, id: &str) -> Vec<&(String, String, String, String)> {
        self.edges.iter().filter(|e| e.1 == id).collect()
    }
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> &'a str {
    let from = s.find(start).map(|i| i + start.len()).unwrap_or(0);
    let to = s[from..].rfind(end).map(|i| from + i).unwrap_or(s.len());
    &s[from..to]
}

fn graph_of(src: &str, name: &str, extra: &[&str]) -> String {
    let p = scratch(name);
    std::fs::write(&p, src).expect("write");
    let mut args = vec!["graph", p.to_str().unwrap()];
    args.extend_from_slice(extra);
    let (code, out, err) = incc(&args);
    assert_eq!(code, 0, "{err}");
    out
}

#[test]
fn blocks_are_clusters_with_shapes_on_edges() {
    let d = Dot::parse(&graph_of(NET, "small.incep", &[]));
    assert_eq!(d.clusters, ["<B>m1</B>: mix(4)", "<B>r1</B>: res(0.5)", "<B>m2</B>: mix(8)"]);
    // Every edge ends at declared nodes (or split points and outputs, also declared).
    for (a, b, _, _) in &d.edges {
        assert!(d.nodes.contains_key(a) && d.nodes.contains_key(b), "dangling edge {a} -> {b}");
    }
    // conv + BN + ReLU is one box; no separate batch-norm or ReLU boxes remain.
    let stem = d.find(&["<B>stem</B>", "3x3 conv, 8, /2", "BN, ReLU"]);
    assert!(!d.nodes.values().any(|(l, _, _)| l.contains("batch norm") || l == "ReLU"));
    // The stem feeds m1's four branch heads through one split point inside m1, labelled once.
    let out_of_stem: Vec<_> = d.edges.iter().filter(|e| e.0 == stem).collect();
    assert_eq!(out_of_stem.len(), 1, "{out_of_stem:?}");
    let split = &out_of_stem[0].1;
    assert_eq!(out_of_stem[0].2, "8x8x8");
    assert_eq!(d.nodes[split].2, ["<B>m1</B>: mix(4)"], "the split sits in m1");
    assert_eq!(d.edges.iter().filter(|e| &e.0 == split).count(), 3, "b1, b3_reduce and the pool");
    // m1's concat reads b1, the 3x3 and the pool projection, in that order, with their shapes.
    let m1_concat = d
        .nodes
        .iter()
        .find(|(_, (l, _, c))| l == "concat" && c == &["<B>m1</B>: mix(4)"])
        .map(|(id, _)| id.clone())
        .expect("m1's concat");
    let ins: Vec<(String, String)> =
        d.edges_into(&m1_concat).iter().map(|e| (d.nodes[&e.0].0.clone(), e.2.clone())).collect();
    assert_eq!(ins.len(), 3, "{ins:?}");
    assert!(ins[0].0.starts_with("1x1 conv, 4") || ins[0].0.contains("<B>b1</B>"), "{ins:?}");
    assert!(ins[1].0.contains("3x3 conv, 4"), "{ins:?}");
    assert!(ins[2].0.contains("<B>pool.proj</B>"), "{ins:?}");
    assert!(ins.iter().all(|(_, shape)| shape == "4x8x8"), "{ins:?}");
    // The residual sum: its first operand (the block input) arrives on a bold red edge.
    let add = d.find(&["+ ×0.5", "ReLU"]);
    let into_add = d.edges_into(&add);
    assert_eq!(into_add.len(), 2, "{into_add:?}");
    assert!(into_add[0].3.contains("penwidth=2"), "residual edge first: {into_add:?}");
    assert!(!into_add[1].3.contains("penwidth=2"), "{into_add:?}");
    assert_eq!(d.nodes[&add].2, ["<B>r1</B>: res(0.5)"]);
    // The output.
    let fc = d.find(&["fc 5"]);
    let out = d.find(&["output <B>logits</B>"]);
    assert!(d.edges.iter().any(|e| e.0 == fc && e.1 == out && e.2 == "5"));
}

#[test]
fn depth_collapses_scopes_into_boxes() {
    let d = Dot::parse(&graph_of(NET, "small_d1.incep", &["--depth", "1"]));
    assert!(d.clusters.is_empty(), "{:?}", d.clusters);
    let m1 = d.find(&["<B>m1</B>", "mix(4)", "4 weight layers"]);
    let r1 = d.find(&["<B>r1</B>", "res(0.5)", "2 weight layers"]);
    let m2 = d.find(&["<B>m2</B>", "mix(8)"]);
    assert!(d.nodes[&m1].1.contains("box3d"));
    // Nothing inside a block is drawn, and each block is entered by one edge.
    assert!(!d.nodes.values().any(|(l, _, _)| l.contains("b3_reduce") || l.contains("concat")));
    let stem = d.find(&["<B>stem</B>"]);
    let edge =
        |a: &str, b: &str| d.edges.iter().filter(|e| e.0 == a && e.1 == b).map(|e| e.2.clone()).collect::<Vec<_>>();
    assert_eq!(edge(&stem, &m1), ["8x8x8"]);
    assert_eq!(edge(&m1, &r1), ["12x8x8"]);
    assert_eq!(edge(&r1, &m2), ["12x8x8"]);
    assert_eq!(d.edges_into(&r1).len(), 1, "the skip and the body share one edge into the box");

    // Inception-v4 at depth 2: the stem convs stay, each of the 19 modules is one box.
    let v4 = root("architectures/inception_v4.incep");
    let (code, out, err) = incc(&["graph", &v4, "--depth", "2"]);
    assert_eq!(code, 0, "{err}");
    let d = Dot::parse(&out);
    assert_eq!(d.clusters, ["<B>features</B>"]);
    let boxes = d.nodes.values().filter(|(_, a, _)| a.contains("box3d")).count();
    assert_eq!(boxes, 19);
    assert_eq!(d.nodes.values().filter(|(l, _, _)| l.contains("inception_b")).count(), 7);
    // A deeper limit than the network has changes nothing.
    let (_, full, _) = incc(&["graph", &v4]);
    let (_, deep, _) = incc(&["graph", &v4, "--depth", "9"]);
    assert_eq!(full, deep);
}

#[test]
fn every_architecture_draws_consistently() {
    for name in [
        "googlenet",
        "googlenet_torchvision",
        "bn_inception",
        "inception_v3",
        "inception_v4",
        "inception_resnet_v1",
        "inception_resnet_v2",
    ] {
        let path = root(&format!("architectures/{name}.incep"));
        for extra in [&[][..], &["--depth", "1"], &["-O", "2"]] {
            let mut args = vec!["graph", path.as_str()];
            args.extend_from_slice(extra);
            let (code, out, err) = incc(&args);
            assert_eq!(code, 0, "{name} {extra:?}: {err}");
            assert_eq!(out.matches('{').count(), out.matches('}').count(), "{name} {extra:?}: braces");
            let d = Dot::parse(&out);
            for (a, b, _, _) in &d.edges {
                assert!(d.nodes.contains_key(a) && d.nodes.contains_key(b), "{name} {extra:?}: {a} -> {b}");
            }
            assert!(d.nodes.values().any(|(l, _, _)| l.starts_with("output")), "{name}: no output");
        }
    }
}

#[test]
fn lowering_records_block_instances() {
    let g = incc::frontend::compile_file(root("architectures/googlenet.incep")).expect("compiles");
    let s = g.scopes.iter().find(|s| s.path == "inception_3a").expect("scope inception_3a");
    assert_eq!(s.block.as_deref(), Some("inception(64, 96, 128, 16, 32, 32)"));
    assert_eq!(s.parent, None);
    // The 3x3 reduce conv sits in inception_3a > 3x3 > _reduce, named with Caffe's `_` separator.
    let conv = g.node_ids().into_iter().find(|&n| g.node(n).name == "inception_3a_3x3_reduce").expect("conv");
    let labels: Vec<&str> = g.scope_chain(g.node(conv).scope).iter().map(|&s| g.scope(s).label.as_str()).collect();
    assert_eq!(labels, ["inception_3a", "3x3", "_reduce"]);

    let g = incc::frontend::compile_file(root("architectures/inception_v4.incep")).expect("compiles");
    let s = g.scopes.iter().find(|s| s.path == "features.6").expect("features.6");
    assert_eq!(s.block.as_deref(), Some("inception_a()"));
    assert_eq!(g.scope(s.parent.expect("in features")).path, "features");
    // An unlabelled block call gets a scope of its own, named after the block.
    let src = "input 3x8x8\nblock two() { a: conv 4 1x1; b: conv 4 1x1 }\nx: [ conv 4 1x1 ]\ntwo()\noutput y\n";
    let g = incc::frontend::compile_str("anon.incep", src).expect("compiles");
    let s = g.scopes.iter().find(|s| s.block.is_some()).expect("a block scope");
    assert_eq!((s.label.as_str(), s.path.as_str(), s.block.as_deref()), ("two", "", Some("two()")));
}

#[test]
fn svg_and_html_through_graphviz() {
    let net = scratch("svg.incep");
    std::fs::write(&net, NET).expect("write");
    let n = net.to_str().unwrap();
    if graphviz_installed() {
        let (code, svg, err) = incc(&["graph", n, "--format", "svg"]);
        assert_eq!(code, 0, "{err}");
        assert!(svg.contains("<svg") && svg.contains("cluster_s"), "{}", &svg[..svg.len().min(300)]);
        let page = scratch("small.html");
        let (code, _, err) = incc(&["graph", n, "--format", "html", "--depth", "1", "-o", page.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        let html = std::fs::read_to_string(&page).expect("html written");
        // One SVG per depth (1 and every layer), the depth selector, no external resources.
        assert_eq!(html.matches("<svg").count(), 3, "depths 1, 2 and every layer");
        assert!(html.contains("<select id=\"depth\">") && html.contains("selected>depth 1<"));
        assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
    } else {
        eprintln!("graphviz is not installed: SVG output not checked");
    }
    // Without Graphviz on PATH, svg fails with what to do, and dot still works.
    let out = Command::new(env!("CARGO_BIN_EXE_incc"))
        .args(["graph", n, "--format", "svg"])
        .env("PATH", "")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("install Graphviz") && err.contains("--format dot"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_incc")).args(["graph", n]).env("PATH", "").output().expect("run");
    assert!(out.status.success());
}

#[test]
fn bad_options_and_outputs() {
    let net = scratch("bad.incep");
    std::fs::write(&net, NET).expect("write");
    let n = net.to_str().unwrap();
    for bad in ["0", "-1", "two", "65"] {
        let (code, _, err) = incc(&["graph", n, &format!("--depth={bad}")]);
        assert_eq!(code, 2, "--depth {bad}: {err}");
        assert!(err.contains("--depth") && err.contains(bad), "{err}");
    }
    let (code, _, err) = incc(&["graph", n, "--format", "png"]);
    assert_eq!(code, 2, "{err}");
    // An unwritable output: exit 1, the path and the reason, and no file.
    let target = "/nonexistent-dir/graph.dot";
    let (code, out, err) = incc(&["graph", n, "-o", target]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(target) && err.contains("No such file"), "{err}");
    assert!(out.is_empty());
    assert!(!Path::new(target).exists());
    // A source error is reported as everywhere else.
    let broken = scratch("broken.incep");
    std::fs::write(&broken, "input 3x8x8\nc: conv 4 9x9\n").expect("write");
    let (code, _, err) = incc(&["graph", broken.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("broken.incep:2"), "{err}");
}
