//! Fold a `BatchNorm` into the `Conv2d` or `Linear` that feeds it.
//!
//! ```text
//! %3 = conv2d[64, 3x3] %2                 %3 = conv2d[64, 3x3, bias] %2
//! %4 = batch_norm[eps 0.001] %3     =>    (users of %4 now read %3)
//! %5 = relu %4                            %5 = relu %3
//! ```
//!
//! With `s = gamma / sqrt(var + eps)` per output channel `o`, the layer's weight rows become
//! `w[o] * s[o]` and its bias `(b[o] - mean[o]) * s[o] + beta[o]` (`b = 0` without a bias),
//! computed in f64 and stored in f32 under the layer's own keys; the layer gets a bias.
//! Covers conv-without-bias then BN (most networks), conv-with-bias then BN (BN-Inception)
//! and the 1-D BN after a linear layer (Inception-ResNet-v1's `last_bn`).
//!
//! Applies only when the layer's sole user is the batch norm, the layer is not an output,
//! and nothing is fused into its epilogue yet. One rewrite per batch norm folded.

use super::{Pass, sole_user, tensor};
use crate::error::Result;
use crate::ir::{Graph, Op};
use crate::weights::{Tensor, Weights};

/// The `fold-batch-norm` pass.
pub struct FoldBatchNorm;

impl Pass for FoldBatchNorm {
    fn name(&self) -> &'static str {
        "fold-batch-norm"
    }

    fn run(&self, g: &mut Graph, w: &mut Weights) -> Result<usize> {
        let mut rewrites = 0;
        for bn in g.topo_order() {
            let Op::BatchNorm(b) = &g.node(bn).op else {
                continue;
            };
            let b = b.clone();
            let &[x] = g.operands(bn).as_slice() else {
                continue;
            };
            if sole_user(g, x) != Some(bn) {
                continue;
            }
            let (key, out, had_bias) = match &g.node(x).op {
                Op::Conv2d(c) if c.epilogue.is_empty() => (c.key.clone(), c.out_channels, c.bias),
                Op::Linear(l) if !l.relu => (l.key.clone(), l.out_features, l.bias),
                _ => continue,
            };
            if out != b.channels {
                continue;
            }
            let stat = |suffix: &str| -> Result<Vec<f64>> {
                Ok(tensor(w, self.name(), &format!("{}.{suffix}", b.key), out)?.iter().map(|&v| v as f64).collect())
            };
            let (gamma, beta, mean, var) =
                (stat("weight")?, stat("bias")?, stat("running_mean")?, stat("running_var")?);
            let scale: Vec<f64> = gamma.iter().zip(&var).map(|(g, v)| g / (v + b.eps as f64).sqrt()).collect();

            let weight_key = format!("{key}.weight");
            if w.shape(&weight_key).is_none() {
                return Err(crate::Error::Invalid(format!(
                    "{}: the weights have no tensor `{weight_key}`",
                    self.name()
                )));
            }
            let bias_key = format!("{key}.bias");
            let old_bias: Vec<f64> = if had_bias {
                tensor(w, self.name(), &bias_key, out)?.iter().map(|&v| v as f64).collect()
            } else {
                vec![0.0; out]
            };
            let new_bias = (0..out).map(|o| ((old_bias[o] - mean[o]) * scale[o] + beta[o]) as f32).collect();
            // Each output channel's row of weights times its factor (a generated tensor
            // stays lazy: the rows are scaled as they are generated).
            w.scale_rows(&weight_key, &scale).map_err(|e| crate::Error::Invalid(format!("{}: {e}", self.name())))?;
            w.insert(bias_key, Tensor { shape: vec![out], data: new_bias });

            match &mut g.node_mut(x).op {
                Op::Conv2d(c) => c.bias = true,
                Op::Linear(l) => l.bias = true,
                _ => {}
            }
            g.replace_uses(bn, x);
            g.remove(bn);
            rewrites += 1;
        }
        Ok(rewrites)
    }
}
