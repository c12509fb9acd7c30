//! Networks written by a new user from docs/LANGUAGE.md alone, with counts computed by hand
//! (see the comments in the files and in docs/LANGUAGE.md).

fn compile(name: &str) -> incc::ir::Graph {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/user").join(name);
    incc::frontend::compile_file(&path).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn shape_of(g: &incc::ir::Graph, name: &str) -> Vec<usize> {
    // The last node with this name (a block's concat is named after its instance).
    let id = g.topo_order().into_iter().rev().find(|&id| g.node(id).name == name).expect("named node");
    g.node(id).shape.0.clone()
}

#[test]
fn the_language_reference_example() {
    let g = compile("tiny.incep");
    // stem 928 + mix(16) 2,544 + mix(32) 8,672 + fc 970.
    assert_eq!(g.param_count(), 13_114);
    assert_eq!(shape_of(&g, "m1"), vec![1, 48, 16, 16]);
    assert_eq!(shape_of(&g, "m2"), vec![1, 96, 16, 16]);
    assert_eq!(g.node(g.output("logits").expect("logits")).shape.0, vec![1, 10]);
}

#[test]
fn a_new_inception_style_network() {
    let g = compile("mini_inception.incep");
    assert_eq!(g.param_count(), 92_250);
    assert_eq!(g.total_macs(), 30_886_080);
    assert_eq!(g.node(g.output("probs").expect("probs")).shape.0, vec![1, 10]);
}

/// The README's language tour is this file, and it means what its comments say.
#[test]
fn the_readme_tour() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("tests/user/tour.incep")).expect("tour");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README");
    assert!(readme.contains(&format!("```\n{text}```\n")), "README.md's tour differs from tests/user/tour.incep");
    let g = compile("tour.incep");
    assert_eq!(g.param_count(), 80_004);
    assert_eq!(shape_of(&g, "m1"), vec![1, 48, 31, 31]);
    assert!(g.params().iter().any(|p| p.key == "stem.1.conv.weight"));
    assert!(g.params().iter().any(|p| p.key == "r1_2.bias"));
    let outputs: Vec<&str> = g.outputs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(outputs, ["side", "logits"]);
}
