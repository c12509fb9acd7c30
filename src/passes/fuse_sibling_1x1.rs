//! Merge the 1x1 convolutions that read the same tensor into one wider convolution.
//!
//! ```text
//! %5 = conv2d[48, 1x1, bias, relu] %4               %12 = conv2d[112, 1x1, bias, relu] %4
//! %8 = conv2d[64, 1x1, bias, relu] %4        =>     %13 = slice[0..48] %12
//! %6 = conv2d[64, 5x5, p2, ...] %5                  %14 = slice[48..112] %12
//! %9 = conv2d[96, 3x3, p1, ...] %8                  %6 = conv2d[64, 5x5, p2, ...] %13
//!                                                   %9 = conv2d[96, 3x3, p1, ...] %14
//! ```
//!
//! TensorRT's horizontal fusion: the merged convolution reads its input once and runs one
//! larger matrix product instead of several thin ones. Its weights (and biases) are the
//! members' concatenated along the output channels, in node order, under the key
//! `<common prefix>.<rest of key 1>+<rest of key 2>+...`; each original user reads its
//! channels through a [`Op::Slice`] (a view for `N = 1` NCHW).
//!
//! Members: `Conv2d`s with a 1x1 kernel, stride 1, no padding, one group and no residual,
//! whose only operand is the shared tensor. Members are grouped by their bias and relu
//! flags (the epilogue must be the same). A convolution whose only user is a `Concat` is
//! left alone: it writes straight into the concat's buffer (`eliminate-concat`), and as a
//! slice it would cost a copy there — more than merging saves. One rewrite per member merged.

use super::{Pass, check_len, sole_user};
use crate::error::Result;
use crate::ir::{Graph, NodeId, Op, Shape};
use crate::weights::Weights;

/// The `fuse-sibling-1x1` pass.
pub struct FuseSibling1x1;

impl Pass for FuseSibling1x1 {
    fn name(&self) -> &'static str {
        "fuse-sibling-1x1"
    }

    fn run(&self, g: &mut Graph, w: &mut Weights) -> Result<usize> {
        let mut rewrites = 0;
        for x in g.topo_order() {
            if !g.g.contains_node(x.0) {
                continue;
            }
            // (bias, relu) -> members, in index order.
            let mut groups: Vec<((bool, bool), Vec<NodeId>)> = vec![];
            for u in g.users(x) {
                if let Some(key) = member(g, u, x) {
                    match groups.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, v)) => v.push(u),
                        None => groups.push((key, vec![u])),
                    }
                }
            }
            for (_, members) in groups.into_iter().filter(|(_, m)| m.len() > 1) {
                self.merge(g, w, x, &members)?;
                rewrites += members.len();
            }
        }
        Ok(rewrites)
    }
}

impl FuseSibling1x1 {
    /// Replaces `members` (1x1 convolutions of `x`) by one convolution and a slice each.
    fn merge(&self, g: &mut Graph, w: &mut Weights, x: NodeId, members: &[NodeId]) -> Result<()> {
        let convs: Vec<_> = members
            .iter()
            .filter_map(|&m| if let Op::Conv2d(c) = &g.node(m).op { Some(c.clone()) } else { None })
            .collect();
        let Some(first) = convs.first() else {
            return Ok(());
        };
        let total: usize = convs.iter().map(|c| c.out_channels).sum();
        let cin = first.in_channels;
        let (mut weights, mut biases) = (vec![], vec![]);
        for c in &convs {
            let key = format!("{}.weight", c.key);
            check_len(w, self.name(), &key, c.out_channels * cin)?;
            weights.push(key);
            if c.bias {
                let key = format!("{}.bias", c.key);
                check_len(w, self.name(), &key, c.out_channels)?;
                biases.push(key);
            }
        }
        let keys: Vec<&str> = convs.iter().map(|c| c.key.as_str()).collect();
        let names: Vec<&str> = members.iter().map(|&m| g.node(m).name.as_str()).collect();
        let mut merged = first.clone();
        merged.out_channels = total;
        merged.key = joined(&keys);
        // Concatenated along the output channels (generated tensors stay lazy).
        let concat = |w: &mut Weights, key: String, parts: &[String]| {
            let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
            w.concat_rows(key, &parts).map_err(|e| crate::Error::Invalid(format!("{}: {e}", self.name())))
        };
        concat(w, format!("{}.weight", merged.key), &weights)?;
        if merged.bias {
            concat(w, format!("{}.bias", merged.key), &biases)?;
        }
        let (h, wd) = (g.node(members[0]).shape.h(), g.node(members[0]).shape.w());
        let (span, name) = (g.node(members[0]).span, joined(&names));
        let scope = members.iter().map(|&m| g.node(m).scope).reduce(|a, b| g.common_scope(a, b)).flatten();
        let wide = g.add(Op::Conv2d(merged), Shape::nchw(total, h, wd), span, name, &[x]);
        g.node_mut(wide).scope = scope;
        let mut start = 0;
        for (&m, c) in members.iter().zip(&convs) {
            let n = g.node(m);
            let (shape, span, scope, name) = (n.shape.clone(), n.span, n.scope, n.name.clone());
            let slice = g.add(Op::Slice { start, len: c.out_channels }, shape, span, name, &[wide]);
            g.node_mut(slice).scope = scope;
            g.replace_uses(m, slice);
            g.remove(m);
            start += c.out_channels;
        }
        Ok(())
    }
}

/// The merge group of `u` if it is a mergeable 1x1 convolution of `x`.
fn member(g: &Graph, u: NodeId, x: NodeId) -> Option<(bool, bool)> {
    let Op::Conv2d(c) = &g.node(u).op else {
        return None;
    };
    let plain = c.kernel == [1, 1]
        && c.stride == [1, 1]
        && c.pad.is_zero()
        && c.groups == 1
        && c.epilogue.residual.is_none()
        && g.operands(u) == [x];
    let into_concat = sole_user(g, u).is_some_and(|v| matches!(g.node(v).op, Op::Concat));
    (plain && !into_concat).then_some((c.bias, c.epilogue.relu))
}

/// `a.b.c` and `a.d` give `a.b.c+d`: the common dotted prefix once, then the rests.
fn joined(parts: &[&str]) -> String {
    let split: Vec<Vec<&str>> = parts.iter().map(|p| p.split('.').collect()).collect();
    let Some(first) = split.first() else {
        return String::new();
    };
    let common = (0..first.len()).take_while(|&i| split.iter().all(|s| s.len() > i + 1 && s[i] == first[i])).count();
    let rests: Vec<String> = split.iter().map(|s| s[common..].join(".")).collect();
    if common == 0 { rests.join("+") } else { format!("{}.{}", first[..common].join("."), rests.join("+")) }
}

#[cfg(test)]
mod tests {
    use super::joined;

    #[test]
    fn joined_names() {
        assert_eq!(joined(&["Mixed_5b.b1.conv", "Mixed_5b.b2.conv"]), "Mixed_5b.b1.conv+b2.conv");
        assert_eq!(joined(&["a", "b"]), "a+b");
        assert_eq!(joined(&["m.a", "m"]), "m.a+m");
    }
}
