//! The AVX2 implementation of the tile contract ([`crate::target::tile`]), for CPUs without
//! AVX-512.
//!
//! AVX2 ([`crate::target::x86::Isa::Avx2`], for CPUs without AVX-512) follows the same contract with 8-float
//! ymm halves: two accumulators per pixel and block, `vbroadcastss` once per pixel (VEX
//! has no embedded broadcast), weight halves in the registers left (the FMAs read the rest
//! from memory), so `2*m*nr + 1 <= 16` (6x1, 3x2, 2x3, 1x4, or 7x1 with one weight half
//! in a register). VEX displacements are plain bytes ([-128, 127]): the input bases are
//! 256 bytes apart and the weight pointer moves every 256 bytes (see `emit_avx2`).

use super::tile::{Broadcast, TileSpec};
use super::x86::frame::{Frame, InputBases, Width};
use super::x86::{Emitted, TileIsa, Y};
use crate::cpu::Cpu;
use iced_x86::IcedError;
use iced_x86::code_asm::*;

/// AVX2 and FMA tiles (VEX encoded): 16 ymm registers of 8 floats, two per output block and
/// pixel.
pub struct Avx2;

impl TileIsa for Avx2 {
    fn needs(&self) -> &'static str {
        "AVX2 and FMA"
    }

    fn available(&self, cpu: &Cpu) -> bool {
        cpu.avx2 && cpu.fma
    }

    fn blocking(&self, m: usize, nr: usize) -> Result<usize, String> {
        let regs = m.saturating_mul(nr).saturating_mul(2).saturating_add(1);
        if regs > 16 {
            return Err(format!("needs {regs} ymm registers (2*m*nr + 1), there are 16"));
        }
        Ok(m * (2 * nr + 1) + 2 * nr)
    }

    fn max_m(&self, nr: usize) -> usize {
        7 / nr
    }

    /// Two FMAs per pixel and block; one broadcast per pixel, the weight halves that have a
    /// register once and the others once per pixel, on two load ports (AVX2-only cores have
    /// two); and the `nr` weight vectors of a step streamed from L2 at ~25 bytes a cycle.
    /// `examples/wide_bench.rs` here (1x1 and 3x3 convs, median GFLOP/s of the quietest
    /// run): 6x1 59/62, 5x1 58/61, 3x2 57/58, 7x1 (a weight half read by every FMA) 50/53,
    /// 2x3 -/46, 1x4 32/-; the model ranks them so, with 6x1, 5x1 and 3x2 even.
    fn step_cycles(&self, m: usize, nr: usize) -> f64 {
        let halves = 2 * nr;
        let held = halves.min(15 - 2 * m * nr);
        let fmas = (m * halves) as f64;
        let loads = (m + held + (halves - held) * m) as f64;
        (fmas / 2.0).max(loads / 2.0).max(4.0).max(2.5 * nr as f64)
    }

    fn regs_per_block(&self) -> usize {
        2
    }

    /// VEX has no embedded broadcast: always [`Broadcast::Register`].
    fn broadcast(&self, _spec: &TileSpec, _b: Broadcast) -> Broadcast {
        Broadcast::Register
    }

    fn emit_conv(&self, spec: &TileSpec, _b: Broadcast) -> Result<Emitted, IcedError> {
        emit_avx2(spec)
    }
}

/// VEX has no compressed displacement: one byte reaches [-128, 127]. The input pointer is
/// biased by +128 and the extra bases are 256 bytes apart; the weight pointer is biased
/// by +128 and moved, when a vector falls out of reach, to 128 past the current lane's.
const IN_BIAS2: i64 = 128;
const IN_SPAN2: i64 = 256;
const W_BIAS2: i64 = 128;

/// The AVX2 tile: the same contract with 8-float halves. Output block `j` of pixel `i` is
/// held in `ymm[2*(i*nr + j)]` and the next register; the broadcast takes the register
/// after the accumulators and the weight halves of one lane (`[l][j][16]`, 32 bytes
/// apart) as many of the rest as there are; the FMAs of the others read them from memory.
fn emit_avx2(spec: &TileSpec) -> Result<Emitted, IcedError> {
    let &TileSpec { m, nr, lanes, kw, sw, .. } = spec;
    let px = (lanes * 4) as i64; // bytes per input pixel
    let frame = Frame::new(spec, Width::Ymm);
    let halves = frame.vecs(); // ymm per pixel
    let acc = |i: usize, h: usize| Y[frame.acc(i, h)];
    let n_acc = m * halves; // <= 14: validated
    let areg = Y[n_acc];
    let nw = halves.min(15 - n_acc);
    let wreg = |h: usize| Y[n_acc + 1 + h];

    let mut a = CodeAssembler::new(64)?;
    a.set_prefer_vex(true);
    frame.load_accumulators(&mut a)?;

    let bases = InputBases::new(spec, IN_BIAS2, IN_SPAN2);
    let in_addr = |off: i64| {
        let (base, disp) = bases.at(off);
        dword_ptr(base + disp)
    };
    let row_w = (kw * lanes * nr * 64) as i64;

    let mut loops = Vec::new();
    let heads = frame.open_loops(&mut a, &bases, W_BIAS2)?;
    let mut w_at = W_BIAS2; // where rsi points, relative to this kernel row's weights
    for kx in 0..kw {
        for l in 0..lanes {
            let step = ((kx * lanes + l) * nr * 64) as i64;
            if step + (halves as i64 - 1) * 32 - w_at > 127 {
                a.add(rsi, (step + W_BIAS2 - w_at) as i32)?;
                w_at = step + W_BIAS2;
            }
            let w_mem = |h: usize| ymmword_ptr(rsi + (step + h as i64 * 32 - w_at));
            for h in 0..nw {
                a.vmovups(wreg(h), w_mem(h))?;
            }
            for i in 0..m {
                a.vbroadcastss(areg, in_addr((i * sw + kx) as i64 * px + (l * 4) as i64))?;
                for h in 0..halves {
                    if h < nw {
                        a.vfmadd231ps(acc(i, h), wreg(h), areg)?;
                    } else {
                        a.vfmadd231ps(acc(i, h), areg, w_mem(h))?;
                    }
                }
            }
        }
    }
    a.add(rsi, (row_w + W_BIAS2 - w_at) as i32)?;
    frame.close_loops(&mut a, heads, &mut loops)?;
    // The broadcast register is free now.
    frame.finish(a, n_acc, loops)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(m: usize, nr: usize, kw: usize, lanes: usize, first: bool, last: bool) -> TileSpec {
        TileSpec {
            m,
            nr,
            kc: 3,
            lanes,
            dtype: crate::target::tile::Dtype::F32,
            kh: 3,
            kw,
            sw: 2,
            in_row: 4096,
            in_plane: -40000,
            out_plane: 1 << 20,
            first,
            last,
            residual: Some(0.5f32.to_bits()),
            relu: true,
        }
    }

    /// AVX2 tiles must run on CPUs without AVX-512: no EVEX encoding anywhere (which would
    /// also be the only way to name ymm16-31 or a mask), whatever the shape and epilogue.
    #[test]
    fn avx2_tiles_are_vex_only() {
        for (m, nr) in [(7, 1), (6, 1), (3, 2), (2, 3), (1, 4), (1, 1)] {
            for (kw, lanes) in [(1, 16), (7, 16), (3, 3)] {
                for (first, last) in [(true, true), (false, false)] {
                    let s = spec(m, nr, kw, lanes, first, last);
                    s.check(Avx2.blocking(s.m, s.nr)).unwrap();
                    let t = Avx2.emit_conv(&s, Broadcast::Embedded).unwrap();
                    for ins in &t.code {
                        let code = format!("{:?}", ins.code());
                        assert!(!code.starts_with("EVEX_"), "{s:?}: {code}");
                    }
                    let fmas =
                        t.code.iter().filter(|i| format!("{:?}", i.code()).starts_with("VEX_Vfmadd231ps")).count();
                    assert_eq!(fmas, 2 * m * nr * kw * lanes, "{s:?}");
                }
            }
        }
    }
}
