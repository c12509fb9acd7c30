//! Remove the outputs nobody asked for, everything only they use, and dropouts.
//!
//! ```text
//! %5 = relu %4                                %5 = relu %4
//! %6 = avg_pool[5x5, s3] %5                   %9 = conv2d[...] %5
//! %7 = linear[1000, bias] %6            =>    ...
//! %8 = dropout[0.4] %12                       %13 = linear[1000, bias] %12
//! %13 = linear[1000, bias] %8                 output logits = %13
//! output aux1 = %7
//! output logits = %13
//! ```
//!
//! The outputs kept are [`PassOptions::outputs`](super::PassOptions::outputs) when given
//! (each must exist), otherwise every output whose name does not start with `aux` — the
//! auxiliary classifiers of GoogLeNet and Inception-v3 exist for training only — or all of
//! them when that rule would keep none. Chosen outputs come in the order chosen
//! ([`select_outputs`], which [`super::run`] applies at every level). Dropout is
//! the identity at inference, so its users read its operand instead. Inputs always stay.
//!
//! Rewrites counted: outputs dropped, plus nodes removed.

use super::Pass;
use crate::error::{Error, Result};
use crate::ir::{Graph, Op};
use crate::weights::Weights;
use std::collections::HashSet;

/// The `eliminate-dead-outputs` pass.
pub struct EliminateDeadOutputs {
    /// The outputs to keep (`None`: the default rule above).
    pub outputs: Option<Vec<String>>,
}

impl Pass for EliminateDeadOutputs {
    fn name(&self) -> &'static str {
        "eliminate-dead-outputs"
    }

    fn run(&self, g: &mut Graph, _w: &mut Weights) -> Result<usize> {
        let before = g.outputs.len();
        select_outputs(g, self.outputs.as_deref())?;
        let mut rewrites = before - g.outputs.len();

        for id in g.topo_order() {
            if let (Op::Dropout { .. }, &[x]) = (&g.node(id).op, g.operands(id).as_slice()) {
                g.replace_uses(id, x);
                g.remove(id);
                rewrites += 1;
            }
        }

        let mut live: HashSet<_> = g.inputs.iter().copied().collect();
        let mut stack: Vec<_> = g.outputs.iter().map(|(_, id)| *id).collect();
        while let Some(id) = stack.pop() {
            if live.insert(id) {
                stack.extend(g.operands(id));
            }
        }
        for id in g.node_ids() {
            if !live.contains(&id) {
                g.remove(id);
                rewrites += 1;
            }
        }
        Ok(rewrites)
    }
}

/// The outputs chosen, in the order chosen: `names` when given (each must exist, none
/// twice), otherwise every output whose name does not start with `aux`, or all of them when
/// that keeps none, in declaration order. Not an optimisation: [`super::run`] applies it at
/// every level, so every level computes the same outputs; removing what only the others use
/// is the pass's.
pub fn select_outputs(g: &mut Graph, names: Option<&[String]>) -> Result<()> {
    let keep: Vec<String> = match names {
        Some(names) => {
            let valid: Vec<&str> = g.outputs.iter().map(|(n, _)| n.as_str()).collect();
            let unknown: Vec<&String> = names.iter().filter(|n| !valid.contains(&n.as_str())).collect();
            if names.is_empty() || !unknown.is_empty() {
                return Err(Error::Invalid(format!(
                    "{}; network `{}` has the outputs: {}",
                    if names.is_empty() {
                        "no output chosen".to_string()
                    } else {
                        format!(
                            "no output named {}",
                            unknown.iter().map(|u| format!("`{u}`")).collect::<Vec<_>>().join(", ")
                        )
                    },
                    g.name,
                    valid.join(", ")
                )));
            }
            let mut seen = HashSet::new();
            if let Some(twice) = names.iter().find(|n| !seen.insert(n.as_str())) {
                return Err(Error::Invalid(format!("output `{twice}` chosen twice")));
            }
            names.to_vec()
        }
        None => {
            let main: Vec<String> =
                g.outputs.iter().map(|(n, _)| n.clone()).filter(|n| !n.starts_with("aux")).collect();
            if main.is_empty() { g.outputs.iter().map(|(n, _)| n.clone()).collect() } else { main }
        }
    };
    let chosen = keep.iter().filter_map(|n| g.outputs.iter().find(|(m, _)| m == n).cloned()).collect();
    g.outputs = chosen;
    Ok(())
}
