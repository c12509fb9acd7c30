//! One compiled model shared by 8 threads at once, through the embedding API: every
//! thread's outputs are bit-identical to a single-threaded model's on the same input.
//! Each thread runs its own inputs several times, so a run that read or wrote another
//! caller's activations would show. (`tests/jit.rs` has the same check on GoogLeNet.)

use incc::{Compiler, Tier};

use incc::ir::Outputs;

fn tiers() -> Vec<Tier> {
    Tier::runnable()
}

#[test]
fn one_model_from_eight_threads_matches_a_single_threaded_run() {
    let path = format!("{}/tests/user/mini_inception.incep", env!("CARGO_MANIFEST_DIR"));
    for tier in tiers() {
        let compiler = Compiler::new().seed(7).tier(tier);
        let single = compiler.clone().threads(1).compile_file(&path).expect("compile").model;
        let shared = compiler.threads(2).compile_file(&path).expect("compile").model;
        let n: usize = shared.inputs().map(|(_, s)| s.numel()).sum();
        let inputs: Vec<Vec<f32>> = (0..8).map(|t| incc::weights::random_input(n, 100 + t)).collect();
        let expected: Vec<Outputs> = inputs.iter().map(|x| single.run(x).expect("run")).collect();
        std::thread::scope(|s| {
            let handles: Vec<_> = inputs
                .iter()
                .map(|x| s.spawn(|| (0..4).map(|_| shared.run(x).expect("run")).collect::<Vec<_>>()))
                .collect();
            for (t, h) in handles.into_iter().enumerate() {
                for got in h.join().expect("thread") {
                    assert_eq!(got.len(), expected[t].len(), "{tier:?}: output count");
                    for (a, b) in got.iter().zip(&expected[t]) {
                        assert_eq!((&a.name, &a.shape), (&b.name, &b.shape), "{tier:?}: output name and shape");
                        let same = a.data.iter().zip(&b.data).all(|(x, y)| x.to_bits() == y.to_bits());
                        assert!(same, "{tier:?}, thread {t}: output `{}` differs from the single-threaded run", a.name);
                    }
                }
            }
        });
    }
}
