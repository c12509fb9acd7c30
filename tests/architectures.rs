//! The seven bundled architectures: exact parameter and MAC counts (the first proof that a
//! file is the network it claims), the state-dict keys of their reference implementations,
//! and robustness of the front end against mangled copies of them.

use std::fs;
use std::path::Path;

/// (file, params, MACs) from the language issue's table.
const TABLE: &[(&str, u64, u64)] = &[
    ("googlenet", 13_378_280, 1_591_044_096),
    ("googlenet_torchvision", 6_624_904, 1_498_376_192),
    ("bn_inception", 11_295_240, 2_032_600_064),
    ("inception_v3", 23_834_568, 5_713_216_096),
    ("inception_v4", 42_679_816, 12_253_974_624),
    ("inception_resnet_v1", 23_482_624, 1_417_662_304),
    ("inception_resnet_v2", 55_843_464, 13_155_794_016),
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn compile(name: &str) -> incc::ir::Graph {
    let path = root().join("architectures").join(format!("{name}.incep"));
    match incc::frontend::compile_file(&path) {
        Ok(g) => g,
        Err(e) => panic!("{name}: {e}"),
    }
}

#[test]
fn params_and_macs_match_the_reference_implementations() {
    for &(name, params, macs) in TABLE {
        let g = compile(name);
        assert_eq!(g.param_count(), params, "{name}: parameter count");
        assert_eq!(g.total_macs(), macs, "{name}: MACs");
        assert!(incc::ir::verify::verify(&g).is_empty(), "{name}: verifier");
    }
}

#[test]
fn state_dict_keys_match_the_reference_implementations() {
    for &(name, ..) in TABLE {
        let keys = root().join("conformance/keys").join(format!("{name}.txt"));
        let Ok(text) = fs::read_to_string(&keys) else {
            assert_eq!(name, "googlenet", "only the paper's GoogLeNet has no PyTorch reference");
            continue;
        };
        let expected: Vec<&str> = text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).collect();
        let g = compile(name);
        let found: Vec<String> = g
            .params()
            .iter()
            .map(|p| {
                let dims: Vec<String> = p.shape.iter().map(|d| d.to_string()).collect();
                format!("{} {}", p.key, dims.join("x"))
            })
            .collect();
        let missing: Vec<&&str> = expected.iter().filter(|k| !found.iter().any(|f| f == **k)).collect();
        let extra: Vec<&String> = found.iter().filter(|f| !expected.contains(&f.as_str())).collect();
        assert!(missing.is_empty() && extra.is_empty(), "{name}: missing {missing:?}\nunexpected {extra:?}");
        assert_eq!(found.len(), expected.len(), "{name}: key count");
    }
}

#[test]
fn output_shapes() {
    let cases = [
        ("googlenet", vec![("aux1", vec![1, 1000]), ("aux2", vec![1, 1000]), ("logits", vec![1, 1000])]),
        ("inception_resnet_v1", vec![("embedding", vec![1, 512])]),
        ("inception_v4", vec![("logits", vec![1, 1000])]),
    ];
    for (name, outs) in cases {
        let g = compile(name);
        let mut found: Vec<(String, Vec<usize>)> =
            g.outputs.iter().map(|(n, id)| (n.clone(), g.node(*id).shape.0.clone())).collect();
        found.sort();
        let expected: Vec<(String, Vec<usize>)> = outs.into_iter().map(|(n, s)| (n.to_string(), s)).collect();
        assert_eq!(found, expected, "{name}");
    }
}

/// A tiny deterministic generator for the mangling test.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Truncated, line-dropped, line-duplicated and byte-flipped copies of every bundled file
/// must each give a located error or a graph: never a panic or a hang.
#[test]
fn mangled_architectures_never_panic() {
    let mut rng = Rng(42);
    let mut errors = 0;
    let mut variants = 0;
    for &(name, ..) in TABLE {
        let text = fs::read(root().join("architectures").join(format!("{name}.incep"))).expect("read");
        let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
        for k in 0..40 {
            let mut v: Vec<u8> = match k % 4 {
                0 => text[..rng.below(text.len())].to_vec(),
                1 => {
                    let drop = rng.below(lines.len());
                    lines
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| *i != drop)
                        .map(|(_, l)| l.to_vec())
                        .collect::<Vec<_>>()
                        .join(&b'\n')
                }
                2 => {
                    let dup = rng.below(lines.len());
                    let mut ls: Vec<Vec<u8>> = lines.iter().map(|l| l.to_vec()).collect();
                    ls.insert(dup, lines[dup].to_vec());
                    ls.join(&b'\n')
                }
                _ => {
                    let mut t = text.clone();
                    for _ in 0..1 + rng.below(4) {
                        let i = rng.below(t.len());
                        t[i] ^= 1 << rng.below(8);
                    }
                    t
                }
            };
            if k % 7 == 0 {
                v.push(0xff);
            }
            variants += 1;
            let Ok(s) = String::from_utf8(v) else { continue };
            match incc::frontend::compile_str("mangled.incep", &s) {
                Ok(_) => {}
                Err(incc::Error::Source(d)) => {
                    errors += 1;
                    let rendered = d.render(false);
                    assert!(
                        rendered.contains("mangled.incep:"),
                        "{name} variant {k}: error without a location:\n{rendered}"
                    );
                }
                Err(e) => panic!("{name} variant {k}: unexpected error kind: {e}"),
            }
        }
    }
    assert!(errors > variants / 4, "most mangled files should be rejected ({errors} of {variants})");
}
