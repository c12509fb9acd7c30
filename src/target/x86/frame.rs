//! The frame every x86 convolution tile shares, whatever the width of its registers: the
//! accumulators, the input bases, the two counted loops and the epilogue. An ISA's emitter
//! ([`crate::target::avx512`], [`crate::target::avx2`]) writes only the unrolled body of
//! one kernel row between [`Frame::open_loops`] and [`Frame::close_loops`].
//!
//! ```text
//!     acc = first ? bias : out                 load_accumulators
//!     rdi += in_bias; rsi += w_bias            open_loops
//!     r9 = kc; c_loop: r10 = kh; ky_loop:      (counters only when > 1)
//!       bases k = rdi + k*span
//!       <the ISA's body>
//!     rdi += in_row; r10 -= 1; jnz ky_loop     close_loops
//!     rdi += in_plane - kh*in_row; r9 -= 1; jnz c_loop
//!     acc = relu?(res + s*acc) when last        finish
//!     out = acc; vzeroupper; ret
//! ```
//!
//! Accumulators are the registers `0 .. m*vecs`, pixel-major: vector `h` of pixel `i` is
//! register `i*vecs + h`, where a pixel's `nr` blocks of 16 floats take `vecs = nr*64/bytes`
//! registers.

use super::{Emitted, IN_BASES, X, Y, Z};
use crate::target::tile::TileSpec;
use iced_x86::IcedError;
use iced_x86::code_asm::*;

/// The vector registers a tile computes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Width {
    /// zmm (AVX-512, EVEX): 16 floats.
    Zmm,
    /// ymm (AVX2, VEX): 8 floats.
    Ymm,
}

impl Width {
    /// Bytes of one register.
    pub(crate) const fn bytes(self) -> i64 {
        match self {
            Width::Zmm => 64,
            Width::Ymm => 32,
        }
    }

    /// `r = [base + disp]`.
    fn load(self, a: &mut CodeAssembler, r: usize, base: AsmRegister64, disp: i64) -> Result<(), IcedError> {
        match self {
            Width::Zmm => a.vmovups(Z[r], zmmword_ptr(base + disp)),
            Width::Ymm => a.vmovups(Y[r], ymmword_ptr(base + disp)),
        }
    }

    /// `[base + disp] = r`.
    fn store(self, a: &mut CodeAssembler, r: usize, base: AsmRegister64, disp: i64) -> Result<(), IcedError> {
        match self {
            Width::Zmm => a.vmovups(zmmword_ptr(base + disp), Z[r]),
            Width::Ymm => a.vmovups(ymmword_ptr(base + disp), Y[r]),
        }
    }

    /// `r = f32::from_bits(bits)` in every lane (through `eax`).
    fn splat(self, a: &mut CodeAssembler, r: usize, bits: u32) -> Result<(), IcedError> {
        a.mov(eax, bits)?;
        match self {
            Width::Zmm => a.vpbroadcastd(Z[r], eax),
            Width::Ymm => {
                a.vmovd(X[r], eax)?;
                a.vbroadcastss(Y[r], X[r])
            }
        }
    }

    /// `acc = s*acc + [base + disp]`.
    fn scale_add(
        self,
        a: &mut CodeAssembler,
        acc: usize,
        s: usize,
        base: AsmRegister64,
        disp: i64,
    ) -> Result<(), IcedError> {
        match self {
            Width::Zmm => a.vfmadd213ps(Z[acc], Z[s], zmmword_ptr(base + disp)),
            Width::Ymm => a.vfmadd213ps(Y[acc], Y[s], ymmword_ptr(base + disp)),
        }
    }

    /// `r = 0`.
    fn zero(self, a: &mut CodeAssembler, r: usize) -> Result<(), IcedError> {
        match self {
            Width::Zmm => a.vpxord(Z[r], Z[r], Z[r]),
            Width::Ymm => a.vxorps(Y[r], Y[r], Y[r]),
        }
    }

    /// `acc = max(acc, z)`.
    fn max(self, a: &mut CodeAssembler, acc: usize, z: usize) -> Result<(), IcedError> {
        match self {
            Width::Zmm => a.vmaxps(Z[acc], Z[acc], Z[z]),
            Width::Ymm => a.vmaxps(Y[acc], Y[acc], Y[z]),
        }
    }
}

/// Where the input of one kernel row is read from: `rdi` (biased by `bias`) and up to three
/// more bases `span` bytes apart, so that short displacements reach every pixel.
pub(crate) struct InputBases {
    n: usize,
    bias: i64,
    span: i64,
}

impl InputBases {
    /// The bases a row of `spec` needs, for displacements reaching `[-bias, span - bias)`.
    pub(crate) fn new(spec: &TileSpec, bias: i64, span: i64) -> InputBases {
        let &TileSpec { m, kw, sw, .. } = spec;
        let max_in = ((m - 1) * sw + kw - 1) as i64 * spec.pixel_bytes() as i64 + (spec.steps_per_tap() as i64 - 1) * 4;
        InputBases { n: ((max_in / span) as usize + 1).min(IN_BASES.len()), bias, span }
    }

    /// The base and displacement of byte `off` of the row: base `off / span`, or the last
    /// one with a longer displacement.
    pub(crate) fn at(&self, off: i64) -> (AsmRegister64, i64) {
        let k = ((off / self.span) as usize).min(self.n - 1);
        (IN_BASES[k], off - k as i64 * self.span - self.bias)
    }
}

/// One tile's frame: its spec and register width.
pub(crate) struct Frame<'s> {
    spec: &'s TileSpec,
    width: Width,
    /// Registers per pixel (all `nr` blocks).
    vecs: usize,
}

impl<'s> Frame<'s> {
    /// The frame of `spec` in registers of `width`.
    pub(crate) fn new(spec: &'s TileSpec, width: Width) -> Frame<'s> {
        Frame { spec, width, vecs: spec.nr * 64 / width.bytes() as usize }
    }

    /// The register of accumulator vector `h` of pixel `i`.
    pub(crate) fn acc(&self, i: usize, h: usize) -> usize {
        i * self.vecs + h
    }

    /// Registers per pixel.
    pub(crate) fn vecs(&self) -> usize {
        self.vecs
    }

    /// The byte offset of accumulator vector `h` of pixel `i` in the output (and residual).
    pub(crate) fn out(&self, i: usize, h: usize) -> i64 {
        let per_block = (64 / self.width.bytes()) as usize;
        (h / per_block) as i64 * self.spec.out_plane + i as i64 * 64 + (h % per_block) as i64 * self.width.bytes()
    }

    /// Every accumulator from the bias (`rcx`) when `first`, else from the output (`rdx`).
    pub(crate) fn load_accumulators(&self, a: &mut CodeAssembler) -> Result<(), IcedError> {
        for i in 0..self.spec.m {
            for h in 0..self.vecs {
                if self.spec.first {
                    self.width.load(a, self.acc(i, h), rcx, h as i64 * self.width.bytes())?;
                } else {
                    self.width.load(a, self.acc(i, h), rdx, self.out(i, h))?;
                }
            }
        }
        Ok(())
    }

    /// Biases the input (`rdi`) and weight (`rsi`) pointers, opens the loops over input
    /// blocks (`r9`) and kernel rows (`r10`) and sets the row's extra input bases. Returns
    /// the first instructions of the two loops, `(c_loop, ky_loop)`.
    pub(crate) fn open_loops(
        &self,
        a: &mut CodeAssembler,
        bases: &InputBases,
        w_bias: i64,
    ) -> Result<(usize, usize), IcedError> {
        a.add(rdi, bases.bias as i32)?;
        a.add(rsi, w_bias as i32)?;
        if self.spec.kc > 1 {
            a.mov(r9, self.spec.kc as i64)?;
        }
        let c_loop = a.instructions().len();
        if self.spec.kh > 1 {
            a.mov(r10, self.spec.kh as i64)?;
        }
        let ky_loop = a.instructions().len();
        for (k, &base) in IN_BASES.iter().enumerate().take(bases.n).skip(1) {
            a.lea(base, qword_ptr(rdi + k as i64 * bases.span))?;
        }
        Ok((c_loop, ky_loop))
    }

    /// Ends the loops over kernel rows (counter `r10`, first instruction `ky_loop`) and
    /// input blocks (`r9`, `c_loop`), stepping the input pointer `rdi`.
    pub(crate) fn close_loops(
        &self,
        a: &mut CodeAssembler,
        (c_loop, ky_loop): (usize, usize),
        loops: &mut Vec<(usize, usize)>,
    ) -> Result<(), IcedError> {
        let &TileSpec { kc, kh, in_row, in_plane, .. } = self.spec;
        if kh > 1 {
            a.add(rdi, in_row as i32)?;
            a.sub(r10, 1)?;
            loops.push((a.instructions().len(), ky_loop));
            a.jnz(0u64)?;
        }
        if kc > 1 {
            let back = if kh > 1 { kh as i64 * in_row } else { 0 };
            a.add(rdi, (in_plane - back) as i32)?;
            a.sub(r9, 1)?;
            loops.push((a.instructions().len(), c_loop));
            a.jnz(0u64)?;
        }
        Ok(())
    }

    /// The epilogue (residual `res + s*acc` from `r8`, then ReLU, when `last`), using the
    /// free register `t`; the stores to the output; `vzeroupper; ret`.
    pub(crate) fn finish(
        &self,
        mut a: CodeAssembler,
        t: usize,
        loops: Vec<(usize, usize)>,
    ) -> Result<Emitted, IcedError> {
        let (spec, w, vecs) = (self.spec, self.width, self.vecs);
        let all = (0..spec.m).flat_map(move |i| (0..vecs).map(move |h| (i, h)));
        if spec.last {
            if let Some(bits) = spec.residual {
                w.splat(&mut a, t, bits)?;
                for (i, h) in all.clone() {
                    w.scale_add(&mut a, self.acc(i, h), t, r8, self.out(i, h))?;
                }
            }
            if spec.relu {
                w.zero(&mut a, t)?;
                for (i, h) in all.clone() {
                    w.max(&mut a, self.acc(i, h), t)?;
                }
            }
        }
        for (i, h) in all {
            w.store(&mut a, self.acc(i, h), rdx, self.out(i, h))?;
        }
        a.vzeroupper()?;
        a.ret()?;
        Ok(Emitted { code: a.take_instructions(), loops })
    }
}
