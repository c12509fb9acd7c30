#!/usr/bin/env python3
"""Small PyTorch fixtures for CI: tiny networks that pin down each operation's exact semantics.

Every case below is a tiny `torch.nn.Module` (at most a few thousand parameters, inputs such as
3x8x11: odd and non-square on purpose) together with the equivalent `.incep` text. For each case
the script sets random weights and non-trivial batch-norm statistics (random running mean,
running var in [0.5, 2] unless the case says otherwise, random gamma and beta) from a fixed
seed, and writes to `tests/fixtures/<case>/`:

    net.incep             the network in incc's language
    weights.safetensors   the module's state_dict, unchanged (`safetensors.torch.save_file`;
                          this proves that incc derives exactly PyTorch's keys)
    input.npy             a random input, float32, shape (1, C, H, W)
    output.npy            PyTorch's output, float32 (one output), or
    output_<name>.npy     one file per named output when the network has several

`tests/fixtures.rs` (`cargo test --test fixtures`) compiles every `net.incep`, loads the weights,
runs incc's reference interpreter and requires max|incc - torch| <= 1e-5 * max(1, max|torch|)
for every output. A new case needs no Rust code: add a function decorated with `@case` here.

The expected outputs are computed by PyTorch in float64 from the float32 weights and input (then
rounded to float32), so they carry no float32 accumulation error of their own; the table printed
at the end also shows how far PyTorch's own float32 run is from them ("f32 noise").

Run from anywhere (needs torch, numpy, safetensors; nothing else):

    /opt/torchenv/bin/python conformance/make_fixtures.py            # (re)write every case
    /opt/torchenv/bin/python conformance/make_fixtures.py lrn bn_eps  # only these cases
    /opt/torchenv/bin/python conformance/make_fixtures.py --list      # list the cases

Output is deterministic (fixed seeds, per case), so re-running leaves the committed files
unchanged unless a case was edited. Each case directory is rewritten from scratch.
"""
import argparse
import copy
import os
import shutil
import sys
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures")

CASES = {}


def case(fn):
    """Registers a case: `fn()` returns dict(module=, incep=, input=(C, H, W)[, post=fn(module, gen)])."""
    CASES[fn.__name__] = fn
    return fn


# ---------------------------------------------------------------------------------------------
# Building blocks shared by the cases.

class BasicConv(nn.Module):
    """torchvision's BasicConv2d: conv (no bias) + BatchNorm2d + optional ReLU, keys .conv/.bn."""

    def __init__(self, cin, cout, k, stride=1, padding=0, eps=1e-3, groups=1, relu=True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=eps)
        self.act = relu

    def forward(self, x):
        x = self.bn(self.conv(x))
        return F.relu(x) if self.act else x


def pad4(x, t, b, l, r, value=0.0):
    """Pads (top, bottom, left, right) like incc's `pad (t,b,l,r)` (F.pad wants l, r, t, b)."""
    return F.pad(x, (l, r, t, b), value=value)


def same_pad(n, k, s):
    """TensorFlow SAME for one dimension: (before, after), the odd element after."""
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def same4(x, k, s):
    kh, kw = (k, k) if isinstance(k, int) else k
    sh, sw = (s, s) if isinstance(s, int) else s
    return same_pad(x.shape[2], kh, sh) + same_pad(x.shape[3], kw, sw)


def avg_exclude(x, k, s, pads):
    """Average pooling over the real elements only, with arbitrary (t, b, l, r) padding."""
    ones = torch.ones_like(x[:, :1])
    num = F.avg_pool2d(pad4(x, *pads), k, s)
    den = F.avg_pool2d(pad4(ones, *pads), k, s)
    return num / den


# ---------------------------------------------------------------------------------------------
# The cases. Each docstring says what it pins down.

@case
def maxpool_ceil():
    """Max pooling: ceil mode (last window hanging past the input; a window that would start in
    the right/bottom padding is dropped), stride 3, padding that must act as -inf (channel 0 is
    all negative), kernel 2."""

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x):
            x = self.c1(x)
            return {
                "a": F.max_pool2d(x, 3, 2, ceil_mode=True),            # 4x5
                "b": F.max_pool2d(x, 3, 3, 1, ceil_mode=True),         # 3x4: windows at 9 / 12 dropped
                "c": F.max_pool2d(x, 2, ceil_mode=True),               # 4x6: last column alone
                "d": F.max_pool2d(x, 2, 2, 1),                         # 5x6, padding 1 on a 2x2 window
                "main": F.max_pool2d(x, 3, 2, 1),                      # 4x6
            }

    def post(m, g):
        m.c1.bias[0] = -6.0  # channel 0 negative everywhere: zero padding would win the max

    return dict(module=M(), post=post, input=(3, 8, 11), incep="""
input 3x8x11
c1: conv 4 3x3 pad 1
output a { maxpool 3x3 stride 2 ceil }
output b { maxpool 3x3 stride 3 pad 1 ceil }
output c { maxpool 2x2 ceil }
output d { maxpool 2x2 stride 2 pad 1 }
maxpool 3x3 stride 2 pad 1
output main
""")


@case
def avgpool_ceil():
    """Average pooling in ceil mode: the divisor of a window running past the input (no padding),
    of one running past the padding (count_include_pad counts the padding but not beyond it),
    exclude_pad, and dropped windows that would start in the padding."""

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x):
            x = self.c1(x)
            return {
                "a": F.avg_pool2d(x, 3, 2, ceil_mode=True),
                "b": F.avg_pool2d(x, 3, 3, 1, ceil_mode=True),
                "c": F.avg_pool2d(x, 3, 3, 1, ceil_mode=True, count_include_pad=False),
                "d": F.avg_pool2d(x, 2, 2, 1, ceil_mode=True),
                "e": F.avg_pool2d(x, 2, 2, 1, ceil_mode=True, count_include_pad=False),
                "main": F.avg_pool2d(x, 3, 2, 1, ceil_mode=True),
            }

    def post(m, g):
        m.c1.bias[0] = 4.0  # a large mean, so every divisor error shows

    return dict(module=M(), post=post, input=(3, 8, 11), incep="""
input 3x8x11
c1: conv 4 3x3 pad 1
output a { avgpool 3x3 stride 2 ceil }
output b { avgpool 3x3 stride 3 pad 1 ceil }
output c { avgpool 3x3 stride 3 pad 1 ceil exclude_pad }
output d { avgpool 2x2 stride 2 pad 1 ceil }
output e { avgpool 2x2 stride 2 pad 1 ceil exclude_pad }
avgpool 3x3 stride 2 pad 1 ceil
output main
""")


@case
def avgpool_pad():
    """Average pooling with padding, count_include_pad on and off, stride 1 and 2, a 1x3 window,
    and a concat of four pooled branches."""

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(4, 6, 1)

        def forward(self, x):
            x = self.c1(x)
            main = torch.cat([
                F.avg_pool2d(x, 3, 1, 1),
                F.avg_pool2d(x, 3, 1, 1, count_include_pad=False),
                F.avg_pool2d(x, 5, 1, 2, count_include_pad=False),
                F.avg_pool2d(x, 5, 1, 2),
            ], 1)
            return {
                "s2in": F.avg_pool2d(x, 3, 2, 1),
                "s2ex": F.avg_pool2d(x, 3, 2, 1, count_include_pad=False),
                "k1x3": F.avg_pool2d(x, (1, 3), 1, (0, 1), count_include_pad=False),
                "main": main,
            }

    def post(m, g):
        m.c1.bias[0] = 3.0
        m.c1.bias[3] = -2.0

    return dict(module=M(), post=post, input=(4, 7, 9), incep="""
input 4x7x9
c1: conv 6 1x1
output s2in { avgpool 3x3 stride 2 pad 1 }
output s2ex { avgpool 3x3 stride 2 pad 1 exclude_pad }
output k1x3 { avgpool 1x3 stride 1 pad 0x1 exclude_pad }
concat {
  avgpool 3x3 stride 1 pad 1
  avgpool 3x3 stride 1 pad 1 exclude_pad
  avgpool 5x5 stride 1 pad 2 exclude_pad
  avgpool 5x5 stride 1 pad 2
}
output main
""")


@case
def asym_kernels():
    """Factorised kernels 1x3, 3x1, 1x7, 7x1 with `pad HxW`, unpadded, and with stride 2
    (torchvision BasicConv2d, BN eps 1e-3)."""

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.b1 = BasicConv(4, 6, (1, 3), padding=(0, 1))
            self.b2 = BasicConv(6, 6, (3, 1), padding=(1, 0))
            self.b3 = BasicConv(6, 6, (1, 7), padding=(0, 3))
            self.b4 = BasicConv(6, 6, (7, 1), padding=(3, 0))
            self.b5 = BasicConv(6, 6, (1, 7))               # 7x5
            self.b6 = BasicConv(6, 5, (3, 1), stride=2)     # 3x3

        def forward(self, x):
            for m in (self.b1, self.b2, self.b3, self.b4, self.b5, self.b6):
                x = m(x)
            return x

    return dict(module=M(), input=(4, 7, 11), incep="""
input 4x7x11
default conv nobias bn eps 0.001 relu
b1: conv 6 1x3 pad 0x1
b2: conv 6 3x1 pad 1x0
b3: conv 6 1x7 pad 0x3
b4: conv 6 7x1 pad 3x0
b5: conv 6 1x7          # 7x5
b6: conv 5 3x1 stride 2 # 3x3
""")


@case
def asym_pad():
    """Per-side padding `pad (top,bottom,left,right)` on convolutions (also with stride 2 and
    a 2x2 kernel), on max pooling (padding is -inf) and on average pooling with and without
    counting the padding."""

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(3, 4, 3)
            self.c2 = nn.Conv2d(4, 5, (1, 7), stride=2)
            self.c3 = nn.Conv2d(5, 5, (7, 1))
            self.c4 = nn.Conv2d(5, 4, 2, stride=2)

        def forward(self, x):
            x = F.relu(self.c1(pad4(x, 0, 1, 2, 0)))   # 8x10
            x = F.relu(self.c2(pad4(x, 0, 0, 4, 2)))   # 4x5
            x = self.c3(pad4(x, 1, 5, 0, 0))           # 4x5
            return {
                "a": F.max_pool2d(pad4(x, 0, 1, 1, 0, float("-inf")), 3, 2),
                "b": F.avg_pool2d(pad4(x, 1, 0, 0, 1), 3, 1),
                "c": avg_exclude(x, 3, 1, (1, 0, 0, 1)),
                "main": F.relu(self.c4(pad4(x, 1, 0, 1, 0))),
            }

    def post(m, g):
        m.c3.bias[0] = -5.0
        m.c3.bias[1] = 3.0

    return dict(module=M(), post=post, input=(3, 9, 10), incep="""
input 3x9x10
default conv relu
c1: conv 4 3x3 pad (0,1,2,0)            # 8x10
c2: conv 5 1x7 stride 2 pad (0,0,4,2)   # 4x5
c3: conv 5 7x1 pad (1, 5, 0, 0) norelu  # 4x5
output a { maxpool 3x3 stride 2 pad (0,1,1,0) }
output b { avgpool 3x3 stride 1 pad (1,0,0,1) }
output c { avgpool 3x3 stride 1 pad (1,0,0,1) exclude_pad }
c4: conv 4 2x2 stride 2 pad (1,0,1,0)
output main
""")


@case
def strides():
    """Strides 2 and 3, a rectangular stride 2x3 on a 3x2 kernel, a pool with stride 3x2, and a
    convolution with bias=False and batch norm at stride 3."""

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(3, 6, 3, stride=2)
            self.c2 = nn.Conv2d(6, 4, 3, stride=3, padding=1)
            self.c3 = nn.Conv2d(6, 4, (3, 2), stride=(2, 3))
            self.c4 = BasicConv(6, 4, 5, stride=3, padding=2, eps=1e-5)

        def forward(self, x):
            x = F.relu(self.c1(x))   # 8x7
            return {
                "a": self.c2(x),      # 3x3
                "b": self.c3(x),      # 3x2
                "p": F.avg_pool2d(x, (2, 3), (3, 2)),   # 3x3
                "main": self.c4(x),   # 3x3
            }

    return dict(module=M(), input=(3, 17, 15), incep="""
input 3x17x15
c1: conv 6 3x3 stride 2 relu                     # 8x7
output a { c2: conv 4 3x3 stride 3 pad 1 }       # 3x3
output b { c3: conv 4 3x2 stride 2x3 }           # 3x2
output p { avgpool 2x3 stride 3x2 }              # 3x3
c4: conv 4 5x5 stride 3 pad 2 nobias bn relu     # 3x3
output main
""")


@case
def grouped_conv():
    """Grouped convolutions: 2 groups with bias, depthwise (groups = channels) at stride 2,
    4 groups followed by batch norm."""

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.g1 = nn.Conv2d(4, 8, 3, padding=1, groups=2)
            self.g2 = nn.Conv2d(8, 8, 3, stride=2, groups=8)
            self.g3 = BasicConv(8, 12, 1, groups=4)

        def forward(self, x):
            return self.g3(self.g2(F.relu(self.g1(x))))

    return dict(module=M(), input=(4, 9, 9), incep="""
input 4x9x9
g1: conv 8 3x3 pad 1 groups 2 relu
g2: conv 8 3x3 stride 2 groups 8               # depthwise, 4x4
g3: conv 12 1x1 groups 4 nobias bn eps 0.001 relu
""")


@case
def lrn():
    """Local response normalisation: size 5 and the even sizes 4 and 2 (asymmetric channel
    windows), non-default alpha, beta and k, and the defaults (alpha 1e-4, beta 0.75, k 1)."""

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(3, 7, 3, padding=1)
            self.n1 = nn.LocalResponseNorm(5, alpha=0.3, beta=0.6, k=2.0)
            self.c2 = nn.Conv2d(7, 6, 1)
            self.n2 = nn.LocalResponseNorm(4, alpha=1.2, beta=0.9, k=1.5)
            self.n3 = nn.LocalResponseNorm(2, alpha=0.5, beta=0.75, k=0.5)
            self.n4 = nn.LocalResponseNorm(3)

        def forward(self, x):
            a = self.n1(F.relu(self.c1(x)))
            y = self.c2(a)
            return {"a": a, "c": self.n3(y), "d": self.n4(y), "main": self.n2(y)}

    def post(m, g):
        with torch.no_grad():
            m.c2.weight.mul_(2.0)  # large activations: the normaliser matters

    return dict(module=M(), post=post, input=(3, 9, 9), incep="""
input 3x9x9
c1: conv 7 3x3 pad 1 relu
lrn size 5 alpha 0.3 beta 0.6 k 2
output a
c2: conv 6 1x1
output c { lrn size 2 alpha 0.5 beta 0.75 k 0.5 }
output d { lrn 3 }
lrn size 4 alpha 1.2 beta 0.9 k 1.5
output main
""")


@case
def bn_eps():
    """Batch-norm eps where it matters: tiny running variances with eps 1e-3, with the default
    1e-5, and a standalone BatchNorm2d with eps 1e-2 (a wrong eps changes outputs by >2x)."""

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = BasicConv(3, 4, 3, padding=1, eps=1e-3)
            self.b = BasicConv(4, 5, 1, eps=1e-5)
            self.c = nn.BatchNorm2d(5, eps=1e-2)

        def forward(self, x):
            a = self.a(x)
            return {"first": a, "main": self.c(self.b(a))}

    def post(m, g):
        m.a.bn.running_var.copy_(torch.rand(4, generator=g) * 9e-4 + 1e-4)    # vs eps 1e-3
        m.b.bn.running_var.copy_(torch.rand(5, generator=g) * 9e-6 + 1e-6)    # vs eps 1e-5
        m.c.running_var.copy_(torch.rand(5, generator=g) * 9e-3 + 1e-3)       # vs eps 1e-2
        with torch.no_grad():
            m.b.conv.weight.mul_(0.03)
            m.b.bn.running_mean.mul_(0.03)

    return dict(module=M(), post=post, input=(3, 7, 9), incep="""
input 3x7x9
default conv nobias bn relu
a: conv 4 3x3 pad 1 eps 0.001
output first
b: conv 5 1x1          # default eps 1e-5
c: bn eps 0.01
output main
""")


@case
def bn_inception():
    """BN-Inception (pretrainedmodels) naming and semantics: convolutions WITH bias before batch
    norm, keys `<name>.weight/.bias` and `<name>_bn.*` (`names conv "{}" bn "{}_bn" sep "_"`),
    flat attribute names built with `_` (`inception_3a_3x3_reduce`), ceil-mode max pooling and a
    ceil-mode average pool with padding inside a block used twice with different filter counts."""

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.cbr("conv1_3x3_s2", 3, 8, 3, 2, 1)
            cin = 8
            for blk, (c1, c3r, c3, cp) in (("inception_3a", (4, 3, 4, 2)), ("inception_3b", (6, 4, 6, 3))):
                self.cbr(f"{blk}_1x1", cin, c1, 1)
                self.cbr(f"{blk}_3x3_reduce", cin, c3r, 1)
                self.cbr(f"{blk}_3x3", c3r, c3, 3, 1, 1)
                self.cbr(f"{blk}_double_3x3_reduce", cin, c3r, 1)
                self.cbr(f"{blk}_double_3x3_1", c3r, c3, 3, 1, 1)
                self.cbr(f"{blk}_double_3x3_2", c3, c3, 3, 1, 1)
                self.cbr(f"{blk}_pool_proj", cin, cp, 1)
                cin = c1 + 2 * c3 + cp
            self.last_linear = nn.Linear(cin, 5)

        def cbr(self, name, cin, cout, k, s=1, p=0):
            setattr(self, name, nn.Conv2d(cin, cout, k, s, p))
            setattr(self, name + "_bn", nn.BatchNorm2d(cout))

        def run(self, name, x):
            return F.relu(getattr(self, name + "_bn")(getattr(self, name)(x)))

        def forward(self, x):
            x = self.run("conv1_3x3_s2", x)                               # 7x6
            x = F.max_pool2d(x, 3, 2, ceil_mode=True)                     # 3x3
            for blk in ("inception_3a", "inception_3b"):
                b1 = self.run(f"{blk}_1x1", x)
                b2 = self.run(f"{blk}_3x3", self.run(f"{blk}_3x3_reduce", x))
                b3 = self.run(f"{blk}_double_3x3_reduce", x)
                b3 = self.run(f"{blk}_double_3x3_2", self.run(f"{blk}_double_3x3_1", b3))
                b4 = F.avg_pool2d(x, 3, 1, 1, ceil_mode=True)
                b4 = self.run(f"{blk}_pool_proj", b4)
                x = torch.cat([b1, b2, b3, b4], 1)
            x = F.adaptive_avg_pool2d(x, 1).flatten(1)
            return self.last_linear(x)

    return dict(module=M(), input=(3, 13, 11), incep="""
input 3x13x11
names conv "{}" bn "{}_bn" sep "_"
default conv bias bn relu

block inception(c1, c3r, c3, cp) {
  concat {
    1x1: conv c1 1x1
    { 3x3_reduce: conv c3r 1x1; 3x3: conv c3 3x3 pad 1 }
    {
      double_3x3_reduce: conv c3r 1x1
      double_3x3_1: conv c3 3x3 pad 1
      double_3x3_2: conv c3 3x3 pad 1
    }
    { avgpool 3x3 stride 1 pad 1 ceil; pool_proj: conv cp 1x1 }
  }
}

conv1_3x3_s2: conv 8 3x3 stride 2 pad 1   # 7x6
maxpool 3x3 stride 2 ceil                 # 3x3
inception_3a: inception(4, 3, 4, 2)
inception_3b: inception(6, 4, 6, 3)
gap
flatten
last_linear: fc 5
""")


class _Res(nn.Module):
    """Inception-ResNet style: x + scale * conv2d(cat(branches)), optional ReLU."""

    def __init__(self, scale, act):
        super().__init__()
        self.scale, self.act = scale, act
        self.branch0 = BasicConv(8, 4, 1)
        self.branch1 = nn.Sequential(BasicConv(8, 4, 1), BasicConv(4, 4, 3, padding=1))
        self.conv2d = nn.Conv2d(8, 8, 1)

    def forward(self, x):
        out = self.conv2d(torch.cat([self.branch0(x), self.branch1(x)], 1))
        out = out * self.scale + x
        return F.relu(out) if self.act else out


@case
def residual():
    """Residual connections: scale 0.17 without a final activation, scale 0.5 with ReLU (both
    through a block whose `relu = act` flag is a parameter), and an unscaled one; the body ends
    in a 1x1 convolution with bias and no batch norm."""

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = BasicConv(4, 8, 3, padding=1)
            self.r1 = _Res(0.17, False)
            self.r2 = _Res(0.5, True)
            self.r3 = nn.Module()
            self.r3.c = nn.Conv2d(8, 8, 3, padding=1)

        def forward(self, x):
            x = self.r2(self.r1(self.stem(x)))
            return x + self.r3.c(x)

    return dict(module=M(), input=(4, 7, 9), incep="""
input 4x7x9
default conv nobias bn eps 0.001 relu

block res(s, act) {
  residual scale s relu = act {
    concat {
      branch0: conv 4 1x1
      branch1: [ conv 4 1x1; conv 4 3x3 pad 1 ]
    }
    conv2d: conv 8 1x1 bias nobn norelu
  }
}

stem: conv 8 3x3 pad 1
r1: res(0.17, false)
r2: res(0.5, true)
r3: residual { c: conv 8 3x3 pad 1 bias nobn norelu }
""")


@case
def fc_bn1d_l2norm():
    """FaceNet-style head: global average pool, dropout, a bias-free linear layer, BatchNorm1d
    (eps 1e-3), an auxiliary classifier on the normalised features, and L2 normalisation."""

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = BasicConv(3, 8, 3, stride=2)
            self.dropout = nn.Dropout(0.6)
            self.last_linear = nn.Linear(8, 12, bias=False)
            self.last_bn = nn.BatchNorm1d(12, eps=1e-3)
            self.logits = nn.Linear(12, 5)

        def forward(self, x):
            x = F.adaptive_avg_pool2d(self.conv1(x), 1)
            x = self.dropout(x).view(1, -1)
            f = self.last_bn(self.last_linear(x))
            return {"features": f, "logits": self.logits(f), "embedding": F.normalize(f, p=2, dim=1)}

    return dict(module=M(), input=(3, 9, 9), incep="""
input 3x9x9
default conv nobias bn eps 0.001 relu
conv1: conv 8 3x3 stride 2
gap
dropout 0.6
flatten
last_linear: fc 12 nobias
last_bn: bn eps 0.001
output features
output logits { logits: fc 5 }
l2norm
output embedding
""")


@case
def softmax_dropout():
    """Classifier head: dropout (identity in eval), linear, softmax over the classes."""

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(3, 6, 3, stride=2)
            self.drop = nn.Dropout(0.5)
            self.fc = nn.Linear(6, 10)

        def forward(self, x):
            x = F.adaptive_avg_pool2d(F.relu(self.c1(x)), 1).flatten(1)
            logits = self.fc(self.drop(x))
            return {"logits": logits, "probs": F.softmax(logits, dim=1)}

    def post(m, g):
        with torch.no_grad():
            m.fc.weight.mul_(3.0)  # spread the logits so softmax is far from uniform

    return dict(module=M(), post=post, input=(3, 9, 9), incep="""
input 3x9x9
c1: conv 6 3x3 stride 2 relu
gap
flatten
dropout 0.5
fc: fc 10
output logits
softmax
output probs
""")


@case
def flatten_fc():
    """Flatten of a CxHxW map (channel-major order) into a linear layer with fused ReLU
    (`fc N relu`), dropout, and a second linear layer."""

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(3, 3, 3, stride=2)
            self.fc1 = nn.Linear(36, 10)
            self.fc2 = nn.Linear(10, 4)

        def forward(self, x):
            x = torch.flatten(F.relu(self.c1(x)), 1)   # 3x3x4
            x = F.dropout(F.relu(self.fc1(x)), 0.3, training=False)
            return self.fc2(x)

    return dict(module=M(), input=(3, 7, 9), incep="""
input 3x7x9
c1: conv 3 3x3 stride 2 relu   # 3x3x4
flatten
fc1: fc 10 relu
dropout 0.3
fc2: fc 4
output logits
""")


class _Mixed(nn.Module):
    """Inception-v3 Mixed_5b-like module: four branches concatenated."""

    def __init__(self, cin, c1, c3, pf):
        super().__init__()
        self.branch1x1 = BasicConv(cin, c1, 1)
        self.branch3x3_1 = BasicConv(cin, c3, 1)
        self.branch3x3_2 = BasicConv(c3, c3, 3, padding=1)
        self.branch3x3dbl_1 = BasicConv(cin, c3, 1)
        self.branch3x3dbl_2 = BasicConv(c3, c3, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv(c3, c3, 3, padding=1)
        self.branch_pool = BasicConv(cin, pf, 1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b2 = self.branch3x3_2(self.branch3x3_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        b4 = self.branch_pool(F.avg_pool2d(x, 3, 1, 1))
        return torch.cat([b1, b2, b3, b4], 1)


@case
def concat_blocks():
    """A parameterised Inception-v3 block used twice with different filter counts (concat of four
    branches, in order), then a grid reduction concatenating a conv and two pools."""

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.Mixed_a = _Mixed(4, 4, 6, 2)
            self.Mixed_b = _Mixed(18, 6, 4, 3)
            self.reduction = nn.Module()
            self.reduction.branch3x3 = BasicConv(17, 6, 3, stride=2)

        def forward(self, x):
            x = self.Mixed_b(self.Mixed_a(x))
            return torch.cat([self.reduction.branch3x3(x), F.max_pool2d(x, 3, 2), F.avg_pool2d(x, 3, 2)], 1)

    return dict(module=M(), input=(4, 9, 9), incep="""
input 4x9x9
default conv nobias bn eps 0.001 relu

block mixed(c1, c3, pool_features) {
  concat {
    branch1x1: conv c1 1x1
    branch3x3: { _1: conv c3 1x1; _2: conv c3 3x3 pad 1 }
    branch3x3dbl: { _1: conv c3 1x1; _2: conv c3 3x3 pad 1; _3: conv c3 3x3 pad 1 }
    branch_pool: { avgpool 3x3 stride 1 pad 1; conv pool_features 1x1 }
  }
}

Mixed_a: mixed(4, 6, 2)    # 18 channels
Mixed_b: mixed(6, 4, 3)    # 17 channels
reduction: concat {
  branch3x3: conv 6 3x3 stride 2
  maxpool 3x3 stride 2
  avgpool 3x3 stride 2
}
""")


class _Mix(nn.Module):
    def __init__(self, cin, c):
        super().__init__()
        self.branch0 = BasicConv(cin, c, 1)
        self.branch1 = nn.Sequential(BasicConv(cin, c, 1), BasicConv(c, c, 3, padding=1))
        self.branch2 = nn.Sequential(nn.AvgPool2d(3, 1, 1, count_include_pad=False), BasicConv(cin, c, 1))

    def forward(self, x):
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x)], 1)


@case
def indexed_repeat():
    """timm-style `nn.Sequential` keys: an indexed `[ ... ]` sequence with a parameter-free pool at
    index 0, a `repeat` of a block inside it (each copy takes the next index), `repeat ... as i`
    with interpolated labels (`blk_{i+1}`) and with the index in an expression, and branches that
    are themselves sequences."""

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.MaxPool2d(3, 1, 1),
                BasicConv(3, 6, 3, stride=2),
                _Mix(6, 2),
                _Mix(6, 2),
                BasicConv(6, 8, 1),
            )
            self.blk_1 = BasicConv(8, 8, 3, padding=1)
            self.blk_2 = BasicConv(8, 8, 3, padding=1)
            self.head = nn.Sequential(nn.Conv2d(8, 8, 1), nn.ReLU(), nn.Conv2d(8, 6, 1), nn.ReLU())

        def forward(self, x):
            return self.head(self.blk_2(self.blk_1(self.features(x))))

    return dict(module=M(), input=(3, 9, 9), incep="""
input 3x9x9
default conv nobias bn eps 0.001 relu

block mix(c) {
  concat {
    branch0: conv c 1x1
    branch1: [ conv c 1x1; conv c 3x3 pad 1 ]
    branch2: [ avgpool 3x3 stride 1 pad 1 exclude_pad; conv c 1x1 ]
  }
}

features: [
  maxpool 3x3 stride 1 pad 1     # features.0
  conv 6 3x3 stride 2            # features.1, 4x4
  repeat 2 { mix(2) }            # features.2, features.3
  conv 8 1x1                     # features.4
]
repeat 2 as i { blk_{i+1}: conv 8 3x3 pad 1 }
head: [ repeat 2 as i { conv 8-2*i 1x1 bias nobn norelu; relu } ]
""")


@case
def aux_output():
    """Two named outputs: an auxiliary classifier as a side branch (`output aux { ... }`, keys
    under `AuxLogits.`) and the main classifier continuing from the same tensor."""

    class Aux(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv0 = BasicConv(8, 6, 1)
            self.conv1 = BasicConv(6, 6, 3)
            self.fc = nn.Linear(6, 5)

        def forward(self, x):
            x = self.conv1(self.conv0(F.avg_pool2d(x, 3, 2)))
            return self.fc(torch.flatten(x, 1))

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.Conv1 = BasicConv(3, 8, 3, stride=2, padding=1)
            self.AuxLogits = Aux()
            self.Conv2 = BasicConv(8, 8, 3)
            self.fc = nn.Linear(8, 5)

        def forward(self, x):
            x = self.Conv1(x)                                  # 8x7
            aux = self.AuxLogits(x)
            x = F.adaptive_avg_pool2d(self.Conv2(x), 1)        # 6x5 -> 1x1
            return {"aux": aux, "logits": self.fc(torch.flatten(F.dropout(x, 0.5, False), 1))}

    return dict(module=M(), input=(3, 15, 13), incep="""
input 3x15x13
default conv nobias bn eps 0.001 relu
Conv1: conv 8 3x3 stride 2 pad 1     # 8x7
AuxLogits: output aux {
  avgpool 3x3 stride 2               # 3x3
  conv0: conv 6 1x1
  conv1: conv 6 3x3                  # 1x1
  flatten
  fc: fc 5
}
Conv2: conv 8 3x3                    # 6x5
gap
dropout 0.5
flatten
fc: fc 5
output logits
""")


@case
def pad_same():
    """TensorFlow `pad same`: stride 2 with the odd padding element after (bottom/right), an even
    2x2 kernel at stride 1, a 4x4 kernel at stride 3 padding (1,1,1,2), max pooling (padding
    never wins) and average pooling without counting the padding, as TensorFlow does."""

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(3, 6, 3, stride=2)
            self.c2 = nn.Conv2d(6, 6, 2)
            self.c3 = nn.Conv2d(6, 4, 4, stride=3)

        def forward(self, x):
            a = F.relu(self.c1(pad4(x, *same4(x, 3, 2))))          # 5x4, pads (0,1,1,1)
            x = self.c2(pad4(a, *same4(a, 2, 1)))                  # 5x4, pads (0,1,0,1)
            mp = F.max_pool2d(pad4(x, *same4(x, 3, 2), float("-inf")), 3, 2)   # 3x2
            ap = avg_exclude(x, 3, 2, same4(x, 3, 2))
            main = self.c3(pad4(x, *same4(x, 4, 3)))               # 2x2, pads (1,1,1,2)
            return {"a": a, "mp": mp, "ap": ap, "main": main}

    def post(m, g):
        m.c2.bias[0] = -6.0
        m.c2.bias[1] = 4.0

    return dict(module=M(), post=post, input=(3, 10, 7), incep="""
input 3x10x7
c1: conv 6 3x3 stride 2 pad same relu   # 5x4
output a
c2: conv 6 2x2 pad same                 # 5x4
output mp { maxpool 3x3 stride 2 pad same }
output ap { avgpool 3x3 stride 2 pad same exclude_pad }
c3: conv 4 4x4 stride 3 pad same        # 2x2
output main
""")


@case
def conv_bias_bn():
    """A convolution with bias before batch norm under the default `{}.conv` / `{}.bn` names,
    a bias-free one, and a standalone `bn relu` after a plain convolution."""

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = BasicConv(3, 5, 3, padding=1, eps=1e-5)
            self.a.conv = nn.Conv2d(3, 5, 3, padding=1, bias=True)
            self.b = BasicConv(5, 6, 3, stride=2, eps=1e-4, relu=False)
            self.c = nn.Conv2d(6, 4, 1)
            self.c_bn = nn.BatchNorm2d(4)

        def forward(self, x):
            x = self.b(self.a(x))
            return F.relu(self.c_bn(self.c(x)))

    return dict(module=M(), input=(3, 9, 7), incep="""
input 3x9x7
a: conv 5 3x3 pad 1 bias bn relu
b: conv 6 3x3 stride 2 nobias bn eps 0.0001
c: conv 4 1x1
c_bn: bn relu
""")


# ---------------------------------------------------------------------------------------------

def randomize(model, g):
    """Random weights (He-normal convolutions and linear layers, random biases) and non-trivial
    batch-norm statistics: gamma in +-[0.5, 1.5] (a quarter negative), beta ~ N(0, 0.3),
    running mean ~ N(0, 0.5), running var in [0.5, 2]."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.3)
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                sign = torch.where(torch.rand(n, generator=g) < 0.25, -1.0, 1.0)
                m.weight.copy_((torch.rand(n, generator=g) + 0.5) * sign)
                m.bias.copy_(torch.randn(n, generator=g) * 0.3)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
                m.num_batches_tracked.fill_(1000)


def as_dict(y):
    return y if isinstance(y, dict) else {"output": y}


def build(name):
    spec = CASES[name]()
    model = spec["module"]
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    randomize(model, g)
    if "post" in spec:
        with torch.no_grad():
            spec["post"](model, g)
    model.eval()
    x = torch.randn(1, *spec["input"], generator=g)
    return spec, model, x


def write_case(name, out_dir):
    spec, model, x = build(name)
    d = os.path.join(out_dir, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)

    doc = " ".join(CASES[name].__doc__.split())
    header = [f"# Fixture `{name}`: written by conformance/make_fixtures.py (edit that, not this).", "#"]
    words, line = doc.split(), "#"
    for w in words:
        if len(line) + 1 + len(w) > 96:
            header.append(line)
            line = "#"
        line += " " + w
    header.append(line)
    text = "\n".join(header) + f"\n\nnetwork {name}" + spec["incep"]
    with open(os.path.join(d, "net.incep"), "w") as f:
        f.write(text)

    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(sd, os.path.join(d, "weights.safetensors"))
    np.save(os.path.join(d, "input.npy"), x.numpy().astype(np.float32))

    with torch.no_grad():
        y32 = as_dict(model(x))
        m64 = copy.deepcopy(model).double()
        y64 = as_dict(m64(x.double()))
    names = list(y64)
    noise = 0.0
    outs = []
    for k in names:
        ref = y64[k].float()
        noise = max(noise, float((y32[k] - ref).abs().max()) / max(1.0, float(ref.abs().max())))
        fname = "output.npy" if len(names) == 1 else f"output_{k}.npy"
        np.save(os.path.join(d, fname), ref.numpy().astype(np.float32))
        outs.append(f"{k}{list(ref.shape[1:])}" if len(names) > 1 else f"{list(ref.shape[1:])}")
    params = sum(v.numel() for k, v in sd.items() if v.is_floating_point() and "running_" not in k)
    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    return dict(name=name, params=params, input="x".join(map(str, spec["input"])),
                outputs=" ".join(outs), noise=noise, size=size)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cases", nargs="*", help="cases to write (default: all)")
    ap.add_argument("--out", default=OUT, help="fixture directory (default: tests/fixtures)")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    args = ap.parse_args()
    if args.list:
        for n, fn in CASES.items():
            print(f"{n:18s} {' '.join(fn.__doc__.split())}")
        return
    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        sys.exit(f"unknown case(s): {', '.join(unknown)}; see --list")
    torch.set_num_threads(1)
    rows = [write_case(n, args.out) for n in (args.cases or CASES)]
    print(f"{'case':18s} {'params':>6s} {'input':>8s} {'f32 noise':>9s} {'bytes':>6s}  outputs")
    for r in rows:
        print(f"{r['name']:18s} {r['params']:6d} {r['input']:>8s} {r['noise']:9.1e} {r['size']:6d}  {r['outputs']}")
    total = sum(r["size"] for r in rows)
    print(f"{len(rows)} case(s), {total} bytes in {os.path.relpath(args.out, os.getcwd())}")
    stale = sorted(set(os.listdir(args.out)) - set(CASES)) if os.path.isdir(args.out) else []
    if stale:
        print(f"note: {', '.join(stale)} in {args.out} are not cases of this script")


if __name__ == "__main__":
    main()
