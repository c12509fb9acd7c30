//! Linear-transform tiles for the wide tiers: `Y = L X Rᵀ` over one 16-channel vector per
//! element, the input and output transforms of a Winograd convolution
//! ([`crate::target::winograd`]), emitted with iced-x86 as AVX-512 (zmm) or AVX2 (two ymm halves).
//!
//! Same entry point as a convolution tile ([`crate::target::tile::TileFn`]: `inp, w, out, bias,
//! res`; `w` unused). For every output column `j`, each input row `i` is reduced against
//! row `j` of `R` straight from memory into a register `t[i]`, then every output row `a`
//! is `sum_i L[a][i] t[i]`, the epilogue applied, and stored:
//!
//! ```text
//! for j < cols:  t[i] = sum_l R[j][l] * inp[i*src_row + l*src_col]         (i < xr)
//!                y = sum_i L[a][i] * t[i] (+ bias) (res + s*y) (max 0)      (a < rows)
//!                out[a*dst_row + j*dst_col] = y
//! ```
//!
//! Coefficients 0 are skipped and ±1 become adds and subtracts; every other magnitude is
//! broadcast into a register once. Everything stays in registers: `xr` for `t` (none when
//! `R` is the identity: then `y` reads the inputs from memory), one for `y`, zero, bias,
//! scale, and the constants.

use super::{Emitted, Isa, X, Y, Z};
use crate::error::{Error, Result};
use iced_x86::IcedError;
use iced_x86::code_asm::*;

/// One transform tile.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TransformSpec {
    /// `L`, `lr x xr`, as f32 bits.
    pub left: Vec<u32>,
    /// Rows of `L`.
    pub lr: usize,
    /// Rows of `X` (columns of `L`).
    pub xr: usize,
    /// `R`, `rr x xc`, as f32 bits.
    pub right: Vec<u32>,
    /// Rows of `R`.
    pub rr: usize,
    /// Columns of `X` (columns of `R`).
    pub xc: usize,
    /// Output rows stored (`<= lr`).
    pub rows: usize,
    /// Output columns stored (`<= rr`).
    pub cols: usize,
    /// Bytes between input rows.
    pub src_row: i64,
    /// Bytes between input columns.
    pub src_col: i64,
    /// Bytes between output rows (the residual's too).
    pub dst_row: i64,
    /// Bytes between output columns.
    pub dst_col: i64,
    /// Add the 16 floats at `bias`.
    pub bias: bool,
    /// f32 bits of `s`: `y = res + s*y`.
    pub residual: Option<u32>,
    /// `y = max(y, 0)` last.
    pub relu: bool,
}

/// Where an operand comes from: a register index, or `base + disp`.
#[derive(Clone, Copy)]
enum Src {
    Reg(usize),
    Mem(AsmRegister64, i64),
}

impl TransformSpec {
    /// `L` and `R` from f64 matrices (exact in f32, as the Winograd constructions are).
    #[allow(clippy::too_many_arguments)]
    pub fn new(left: &[f64], lr: usize, right: &[f64], rr: usize, strides: [i64; 4], rows: usize, cols: usize) -> Self {
        let bits = |m: &[f64]| m.iter().map(|&x| (x as f32).to_bits()).collect::<Vec<u32>>();
        TransformSpec {
            left: bits(left),
            lr,
            xr: left.len() / lr,
            right: bits(right),
            rr,
            xc: right.len() / rr,
            rows,
            cols,
            src_row: strides[0],
            src_col: strides[1],
            dst_row: strides[2],
            dst_col: strides[3],
            bias: false,
            residual: None,
            relu: false,
        }
    }

    /// Distinct coefficient magnitudes other than 0 and 1, as f32 bits.
    fn constants(&self) -> Vec<u32> {
        let mut c: Vec<u32> = Vec::new();
        for &b in self.left.iter().chain(&self.right) {
            let m = f32::from_bits(b).abs();
            if m != 0.0 && m != 1.0 && !c.contains(&m.to_bits()) {
                c.push(m.to_bits());
            }
        }
        c
    }

    /// Whether `R` is the 1x1 identity (a transform down the columns only, as for a 7x1
    /// kernel): then `y` combines the inputs straight from memory, with no `t` registers.
    fn columns_only(&self) -> bool {
        self.rr == 1 && self.xc == 1 && f32::from_bits(self.right[0]) == 1.0
    }

    /// Registers needed: `t` (unless [`Self::columns_only`]), `y`, zero, bias and scale if
    /// used, constants.
    fn registers(&self) -> usize {
        let t = if self.columns_only() { 0 } else { self.xr };
        t + 2 + usize::from(self.bias) + usize::from(self.residual.is_some()) + self.constants().len()
    }

    /// Checks shapes, registers and displacements for `isa`.
    pub fn validate(&self, isa: Isa) -> Result<()> {
        let bad = |why: &str| Err(Error::Invalid(format!("transform tile {self:?}: {why}")));
        if self.left.len() != self.lr * self.xr || self.right.len() != self.rr * self.xc {
            return bad("matrix sizes");
        }
        if self.rows > self.lr || self.cols > self.rr || self.rows == 0 || self.cols == 0 {
            return bad("rows and cols must be 1..=lr and 1..=rr");
        }
        let have = if isa == Isa::Avx512 { 32 } else { 16 };
        if self.registers() > have {
            return bad(&format!("needs {} vector registers, there are {have}", self.registers()));
        }
        let far = |a: usize, s: i64, b: usize, t: i64| (a as i64 * s.abs() + b as i64 * t.abs() + 64).abs();
        let reach =
            far(self.xr, self.src_row, self.xc, self.src_col).max(far(self.lr, self.dst_row, self.rr, self.dst_col));
        if i32::try_from(reach).is_err() {
            return bad("a displacement exceeds 32 bits");
        }
        Ok(())
    }

    /// The instructions (`self` validated for `isa`).
    pub(crate) fn emit(&self, isa: Isa) -> std::result::Result<Emitted, IcedError> {
        let mut a = CodeAssembler::new(64)?;
        let consts = self.constants();
        let direct = self.columns_only();
        let y = if direct { 0 } else { self.xr };
        let zero = y + 1;
        let bias = zero + usize::from(self.bias);
        let scale = bias + usize::from(self.residual.is_some());
        let kbase = scale + 1;
        let kreg = |c: f32| kbase + consts.iter().position(|&b| b == c.abs().to_bits()).unwrap_or(0);
        let mut e = Em { a: &mut a, isa };
        e.zero(zero)?;
        for (i, &c) in consts.iter().enumerate() {
            e.splat(kbase + i, c)?;
        }
        if let Some(s) = self.residual {
            e.splat(scale, s)?;
        }
        let halves: &[i64] = if isa == Isa::Avx512 { &[0] } else { &[0, 32] };
        for &h in halves {
            if self.bias {
                e.load(bias, Src::Mem(rcx, h))?;
            }
            for j in 0..self.cols {
                for i in (0..self.xr).filter(|_| !direct) {
                    let terms: Vec<(f32, Src)> = (0..self.xc)
                        .map(|l| {
                            let c = f32::from_bits(self.right[j * self.xc + l]);
                            (c, Src::Mem(rdi, i as i64 * self.src_row + l as i64 * self.src_col + h))
                        })
                        .collect();
                    e.combine(i, zero, &terms, &kreg)?;
                }
                for r in 0..self.rows {
                    let terms: Vec<(f32, Src)> = (0..self.xr)
                        .map(|i| {
                            let src = if direct { Src::Mem(rdi, i as i64 * self.src_row + h) } else { Src::Reg(i) };
                            (f32::from_bits(self.left[r * self.xr + i]), src)
                        })
                        .collect();
                    e.combine(y, zero, &terms, &kreg)?;
                    let off = r as i64 * self.dst_row + j as i64 * self.dst_col + h;
                    if self.bias {
                        e.op(Op::Add, y, y, Src::Reg(bias))?;
                    }
                    if self.residual.is_some() {
                        e.op(Op::Fmadd213, y, scale, Src::Mem(r8, off))?;
                    }
                    if self.relu {
                        e.op(Op::Max, y, y, Src::Reg(zero))?;
                    }
                    e.store(Src::Mem(rdx, off), y)?;
                }
            }
        }
        a.vzeroupper()?;
        a.ret()?;
        Ok(Emitted { code: a.take_instructions(), loops: Vec::new() })
    }
}

/// Three-operand vector instructions the tiles use.
#[derive(Clone, Copy)]
enum Op {
    Add,
    Sub,
    Mul,
    Max,
    /// `d += s1 * s2`
    Fmadd231,
    /// `d -= s1 * s2`
    Fnmadd231,
    /// `d = d * s1 + s2`
    Fmadd213,
}

/// The emitter of one ISA: zmm registers on AVX-512, ymm on AVX2.
struct Em<'a> {
    a: &'a mut CodeAssembler,
    isa: Isa,
}

macro_rules! three {
    ($self:ident, $m:ident, $d:expr, $s1:expr, $s2:expr) => {
        match ($self.isa, $s2) {
            (Isa::Avx512, Src::Reg(r)) => $self.a.$m(Z[$d], Z[$s1], Z[r]),
            (Isa::Avx512, Src::Mem(b, o)) => $self.a.$m(Z[$d], Z[$s1], zmmword_ptr(b + o)),
            (Isa::Avx2, Src::Reg(r)) => $self.a.$m(Y[$d], Y[$s1], Y[r]),
            (Isa::Avx2, Src::Mem(b, o)) => $self.a.$m(Y[$d], Y[$s1], ymmword_ptr(b + o)),
        }
    };
}

impl Em<'_> {
    fn op(&mut self, op: Op, d: usize, s1: usize, s2: Src) -> std::result::Result<(), IcedError> {
        match op {
            Op::Add => three!(self, vaddps, d, s1, s2),
            Op::Sub => three!(self, vsubps, d, s1, s2),
            Op::Mul => three!(self, vmulps, d, s1, s2),
            Op::Max => three!(self, vmaxps, d, s1, s2),
            Op::Fmadd231 => three!(self, vfmadd231ps, d, s1, s2),
            Op::Fnmadd231 => three!(self, vfnmadd231ps, d, s1, s2),
            Op::Fmadd213 => three!(self, vfmadd213ps, d, s1, s2),
        }
    }

    fn load(&mut self, d: usize, s: Src) -> std::result::Result<(), IcedError> {
        match (self.isa, s) {
            (_, Src::Reg(r)) if r == d => Ok(()),
            (Isa::Avx512, Src::Reg(r)) => self.a.vmovaps(Z[d], Z[r]),
            (Isa::Avx512, Src::Mem(b, o)) => self.a.vmovups(Z[d], zmmword_ptr(b + o)),
            (Isa::Avx2, Src::Reg(r)) => self.a.vmovaps(Y[d], Y[r]),
            (Isa::Avx2, Src::Mem(b, o)) => self.a.vmovups(Y[d], ymmword_ptr(b + o)),
        }
    }

    fn store(&mut self, d: Src, s: usize) -> std::result::Result<(), IcedError> {
        match (self.isa, d) {
            (Isa::Avx512, Src::Mem(b, o)) => self.a.vmovups(zmmword_ptr(b + o), Z[s]),
            (Isa::Avx2, Src::Mem(b, o)) => self.a.vmovups(ymmword_ptr(b + o), Y[s]),
            (_, Src::Reg(r)) => self.load(r, Src::Reg(s)),
        }
    }

    fn zero(&mut self, d: usize) -> std::result::Result<(), IcedError> {
        match self.isa {
            Isa::Avx512 => self.a.vpxord(Z[d], Z[d], Z[d]),
            Isa::Avx2 => self.a.vxorps(Y[d], Y[d], Y[d]),
        }
    }

    /// `d = bits` in every lane.
    fn splat(&mut self, d: usize, bits: u32) -> std::result::Result<(), IcedError> {
        self.a.mov(eax, bits)?;
        match self.isa {
            Isa::Avx512 => self.a.vpbroadcastd(Z[d], eax),
            Isa::Avx2 => {
                self.a.vmovd(X[d], eax)?;
                self.a.vbroadcastss(Y[d], X[d])
            }
        }
    }

    /// `d = sum c * s` over `terms`, skipping zeros (`zero` holds 0.0).
    fn combine(
        &mut self,
        d: usize,
        zero: usize,
        terms: &[(f32, Src)],
        kreg: &dyn Fn(f32) -> usize,
    ) -> std::result::Result<(), IcedError> {
        let mut first = true;
        for &(c, s) in terms {
            if c == 0.0 {
                continue;
            }
            let neg = c < 0.0;
            if first {
                match c.abs() {
                    1.0 if neg => self.op(Op::Sub, d, zero, s)?,
                    1.0 => self.load(d, s)?,
                    _ => {
                        self.op(Op::Mul, d, kreg(c), s)?;
                        if neg {
                            self.op(Op::Sub, d, zero, Src::Reg(d))?;
                        }
                    }
                }
                first = false;
            } else {
                match c.abs() {
                    1.0 => self.op(if neg { Op::Sub } else { Op::Add }, d, d, s)?,
                    _ => self.op(if neg { Op::Fnmadd231 } else { Op::Fmadd231 }, d, kreg(c), s)?,
                }
            }
        }
        if first {
            self.zero(d)?;
        }
        Ok(())
    }
}
