//! The semantic optimiser: graph rewrites that hold on every target, and the machinery that
//! runs a pass list with the IR verifier after each pass.
//!
//! ```
//! use incc::passes::PassOptions;
//! let src = "network tiny\ninput x 3x8x8\nc: conv 16 3x3 pad 1 nobias bn relu\ngap\nflatten\nfc: fc 4\noutput y\n";
//! let mut g = incc::frontend::compile_str("tiny.incep", src).unwrap();
//! let mut w = incc::weights::Weights::init(&g, 1);
//! let report = incc::target::optimize(&mut g, &mut w, &PassOptions::default()).unwrap();
//! assert_eq!(report[1].name, "fold-batch-norm");
//! assert_eq!(report[1].rewrites, 1);
//! ```
//!
//! Every pass rewrites the graph (and the weights it changes) in place, runs to a fixpoint,
//! and returns how many rewrites it made. [`run`] runs a [`Pipeline`] as [`PassOptions`]
//! choose, checks the IR after each pass when `verify` is on (always in tests), and returns a
//! [`PassReport`] per pass for `--explain` and the JSON report. The whole pipeline is
//! [`declutter`] (here) followed by the target's choices ([`crate::target::select`]), as
//! tract runs `declutter()` then `codegen()`; [`crate::target::optimize`] runs both.
//!
//! | pass | level | what it does |
//! |---|---|---|
//! | `eliminate-dead-outputs` | O1 | removes what only unrequested outputs use (which outputs, in which order, is chosen at every level), and dropouts |
//! | `fold-batch-norm` | O1 | batch norm into the preceding convolution / linear layer |
//! | `fuse-activation` | O1 | ReLU and residual sums into the convolution's epilogue |
//! | `fuse-sibling-1x1` | O2 | 1x1 convolutions reading one tensor into one wider convolution |
//! | `eliminate-concat` | O2 | marks concats whose producers can write into them in place |
//! | `select-layout` (target) | O2 | picks a memory layout per tensor by a cost model |
//! | `select-winograd` (target) | O2 | marks the convolutions computed by Winograd transforms |

mod eliminate_concat;
mod eliminate_dead_outputs;
mod fold_batch_norm;
mod fuse_activation;
mod fuse_sibling_1x1;

pub use eliminate_concat::EliminateConcat;
pub use eliminate_dead_outputs::EliminateDeadOutputs;
pub use fold_batch_norm::FoldBatchNorm;
pub use fuse_activation::FuseActivation;
pub use fuse_sibling_1x1::FuseSibling1x1;

use crate::error::{Error, Result};
use crate::ir::{Graph, NodeId, Op};
use crate::weights::Weights;
use petgraph::Direction;

/// A graph rewrite.
pub trait Pass {
    /// The name users write in `--disable-pass` (`fold-batch-norm`).
    fn name(&self) -> &'static str;
    /// Rewrites `g` (and the parameters in `w` it changes) to a fixpoint; returns how many
    /// rewrites it made (0: the graph is unchanged).
    fn run(&self, g: &mut Graph, w: &mut Weights) -> Result<usize>;
}

/// How much to optimise.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Default, serde::Serialize)]
pub enum Level {
    /// Nothing: the graph stays exactly as lowered.
    O0,
    /// The local rewrites that never cost anything: dead outputs, batch-norm folding,
    /// activation fusion.
    O1,
    /// Everything (the default).
    #[default]
    O2,
}

/// What [`run`] does.
#[derive(Clone, Debug)]
pub struct PassOptions {
    /// Optimisation level.
    pub level: Level,
    /// Passes not to run, by name; an unknown name is an error.
    pub disabled: Vec<String>,
    /// Run the IR verifier (and the weights check) after every pass.
    pub verify: bool,
    /// The outputs to keep, by name. `None`: every output whose name does not start with
    /// `aux` (auxiliary classifiers are for training), or all of them if that leaves none.
    pub outputs: Option<Vec<String>>,
    /// The arithmetic the graph is compiled for: target passes choose for it (no Winograd in
    /// bf16, see [`crate::ir::precision`]).
    pub precision: crate::ir::Precision,
}

impl Default for PassOptions {
    fn default() -> Self {
        PassOptions { level: Level::O2, disabled: vec![], verify: true, outputs: None, precision: Default::default() }
    }
}

/// What one pass did, for `--explain` and the JSON report.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PassReport {
    /// The pass.
    pub name: &'static str,
    /// Rewrites made (what one counts is documented on each pass).
    pub rewrites: usize,
    /// Live nodes before the pass.
    pub nodes_before: usize,
    /// Live nodes after the pass.
    pub nodes_after: usize,
    /// Bytes of activations materialised (see [`activation_bytes`]) before the pass.
    pub activation_bytes_before: u64,
    /// The same after the pass.
    pub activation_bytes_after: u64,
    /// Kernels a runtime launches (see [`kernels`]) before the pass.
    pub kernels_before: usize,
    /// The same after the pass.
    pub kernels_after: usize,
}

/// The semantic passes in pipeline order, with the lowest level that runs each: rewrites
/// that hold on every target (tract's `declutter`). The target appends its own choices
/// ([`crate::target::select`]: layouts, Winograd) to make the whole pipeline.
///
/// The order matters: dead code goes first so no later pass works on it; batch norms must be
/// folded before a ReLU can be fused into the convolution; siblings are merged only once
/// their epilogues are final; in-place concats are decided on the final graph.
pub fn declutter(outputs: Option<Vec<String>>) -> Vec<(Level, Box<dyn Pass>)> {
    vec![
        (Level::O1, Box::new(EliminateDeadOutputs { outputs })),
        (Level::O1, Box::new(FoldBatchNorm)),
        (Level::O1, Box::new(FuseActivation)),
        (Level::O2, Box::new(FuseSibling1x1)),
        (Level::O2, Box::new(EliminateConcat)),
    ]
}

/// A checker of annotations a pass list makes: the errors found in the graph, one line each.
pub type Check = fn(&Graph) -> Vec<String>;

/// A whole pass list: the passes with their levels, and the checks of the annotations they
/// make, run with the verifier after every pass.
pub struct Pipeline {
    /// The passes in order, with the lowest level that runs each.
    pub passes: Vec<(Level, Box<dyn Pass>)>,
    /// Checks run after every pass (with `verify`), beside [`crate::ir::verify::verify`].
    pub checks: Vec<Check>,
}

impl Pipeline {
    /// The names of its passes, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.passes.iter().map(|(_, p)| p.name()).collect()
    }
}

/// Runs the passes `opts` selects on `g`, rewriting `w` to fit the optimised graph (folded
/// and merged tensors are written, tensors no longer used are dropped).
///
/// Errors: an unknown pass name in `opts.disabled` or output name in `opts.outputs`
/// ([`Error::Invalid`], listing the valid ones), missing weights for a tensor a pass rewrites, or a
/// verifier failure ([`Error::Verifier`] naming the pass: a compiler bug).
pub fn run(g: &mut Graph, w: &mut Weights, opts: &PassOptions, pipeline: Pipeline) -> Result<Vec<PassReport>> {
    let names = pipeline.names();
    let unknown: Vec<&str> = opts.disabled.iter().map(String::as_str).filter(|d| !names.contains(d)).collect();
    if !unknown.is_empty() {
        return Err(Error::Invalid(format!(
            "unknown pass{} {}; the passes are: {}",
            if unknown.len() > 1 { "es" } else { "" },
            unknown.iter().map(|u| format!("`{u}`")).collect::<Vec<_>>().join(", "),
            names.join(", ")
        )));
    }
    let checks = pipeline.checks;
    let passes: Vec<Box<dyn Pass>> = pipeline
        .passes
        .into_iter()
        .filter(|(level, p)| *level <= opts.level && !opts.disabled.iter().any(|d| d == p.name()))
        .map(|(_, p)| p)
        .collect();
    // Which outputs, and in which order, is what the user asked for, at every level: the
    // pass chooses them (and counts them) when it runs, else they are chosen here.
    if !passes.iter().any(|p| p.name() == "eliminate-dead-outputs") {
        eliminate_dead_outputs::select_outputs(g, opts.outputs.as_deref())?;
    }
    let mut reports = Vec::with_capacity(passes.len());
    for pass in &passes {
        let (nodes_before, activation_bytes_before, kernels_before) =
            (g.g.node_count(), activation_bytes(g), kernels(g));
        let rewrites = pass.run(g, w)?;
        if opts.verify {
            check(g, w, pass.name(), &checks)?;
        }
        reports.push(PassReport {
            name: pass.name(),
            rewrites,
            nodes_before,
            nodes_after: g.g.node_count(),
            activation_bytes_before,
            activation_bytes_after: activation_bytes(g),
            kernels_before,
            kernels_after: kernels(g),
        });
    }
    if !passes.is_empty() {
        prune_weights(g, w);
    }
    Ok(reports)
}

/// The verifier, the in-place check, the pipeline's `checks` and the weights check.
fn check(g: &Graph, w: &Weights, pass: &'static str, checks: &[Check]) -> Result<()> {
    let mut errors = crate::ir::verify::verify(g);
    for check in checks {
        errors.extend(check(g));
    }
    for id in g.node_ids() {
        let n = g.node(id);
        if n.in_place {
            if !matches!(n.op, Op::Concat) {
                errors.push(format!("{id} ({}): only a concat can be in place", n.name));
            }
            for o in g.operands(id) {
                if uses(g, o) != 1 || is_output(g, o) || g.node(o).layout != n.layout {
                    errors.push(format!("{id} ({}): operand {o} cannot write into it in place", n.name));
                }
            }
        }
    }
    if let Err(e) = w.check(g) {
        errors.push(e.to_string());
    }
    if errors.is_empty() { Ok(()) } else { Err(Error::Verifier { pass: pass.to_string(), errors }) }
}

/// Drops the tensors of `w` that no op of `g` uses any more (folded batch norms, merged
/// convolutions, removed layers).
fn prune_weights(g: &Graph, w: &mut Weights) {
    let used: std::collections::HashSet<String> = g.params().into_iter().map(|p| p.key).collect();
    w.retain(|k| used.contains(k));
}

/// Bytes of activation buffers a straightforward runtime materialises: every node's output
/// except the network inputs (the caller's buffers), views (`slice`, `flatten`) and the
/// operands of an in-place concat (they live inside the concat's buffer).
pub fn activation_bytes(g: &Graph) -> u64 {
    let mut inside = std::collections::HashSet::new();
    for id in g.node_ids() {
        if g.node(id).in_place {
            inside.extend(g.operands(id));
        }
    }
    g.node_ids()
        .into_iter()
        .filter(|id| !inside.contains(id))
        .filter(|&id| !matches!(g.node(id).op, Op::Input | Op::Flatten | Op::Slice { .. }))
        .map(|id| 4 * g.node(id).shape.numel() as u64)
        .sum()
}

/// Nodes that run a kernel: all but inputs, views (`slice`, `flatten`) and in-place concats.
pub fn kernels(g: &Graph) -> usize {
    g.node_ids()
        .into_iter()
        .filter(|&id| {
            let n = g.node(id);
            !n.in_place && !matches!(n.op, Op::Input | Op::Flatten | Op::Slice { .. })
        })
        .count()
}

/// How many operand edges read `id` (a node reading it twice counts twice).
fn uses(g: &Graph, id: NodeId) -> usize {
    g.g.edges_directed(id.0, Direction::Outgoing).count()
}

/// True when `id` is one of the network's outputs.
fn is_output(g: &Graph, id: NodeId) -> bool {
    g.outputs.iter().any(|(_, o)| *o == id)
}

/// The one node that reads `id`, if exactly one operand edge does and `id` is not an
/// output: the condition for fusing `id` into that user.
fn sole_user(g: &Graph, id: NodeId) -> Option<NodeId> {
    if uses(g, id) != 1 || is_output(g, id) {
        return None;
    }
    g.users(id).first().copied()
}

/// A parameter tensor a pass needs, or an error naming the pass and the key.
fn tensor<'a>(w: &'a Weights, pass: &str, key: &str, len: usize) -> Result<&'a [f32]> {
    check_len(w, pass, key, len)?;
    w.get(key).map(|t| t.data.as_slice()).ok_or_else(|| no_tensor(pass, key))
}

/// Checks that tensor `key` exists with `len` values, without generating it.
fn check_len(w: &Weights, pass: &str, key: &str, len: usize) -> Result<()> {
    let n: usize = w.shape(key).ok_or_else(|| no_tensor(pass, key))?.iter().product();
    let held = w.resident(key).map_or(n, |t| t.data.len());
    if held == len {
        Ok(())
    } else {
        Err(Error::Invalid(format!("{pass}: tensor `{key}` has {held} values, expected {len}")))
    }
}

fn no_tensor(pass: &str, key: &str) -> Error {
    Error::Invalid(format!("{pass}: the weights have no tensor `{key}`"))
}
