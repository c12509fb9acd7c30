//! The peak of each multiply-add instruction the tiles use, on this core: a register-only
//! loop of independent accumulators (no loads), timed on one thread.
//!
//! `cargo run --release --example isa_peak` prints, per instruction, instructions per cycle
//! (at the measured clock) and GFLOP/s of one core. A multiply-add is two FLOPs; `vdpbf16ps`
//! does two per 32-bit lane, `vpdpbusd` four 8-bit products per lane (counted as 8 ops).

use iced_x86::code_asm::*;
use memmap2::MmapMut;
use std::time::Instant;

/// Accumulators per loop iteration: enough to hide a 4-5 cycle latency on two ports.
const ACC: usize = 12;
/// Unrolled copies of the accumulator set per iteration.
const UNROLL: usize = 4;

const Z: [AsmRegisterZmm; 16] =
    [zmm0, zmm1, zmm2, zmm3, zmm4, zmm5, zmm6, zmm7, zmm8, zmm9, zmm10, zmm11, zmm12, zmm13, zmm14, zmm15];
const Y: [AsmRegisterYmm; 16] =
    [ymm0, ymm1, ymm2, ymm3, ymm4, ymm5, ymm6, ymm7, ymm8, ymm9, ymm10, ymm11, ymm12, ymm13, ymm14, ymm15];

#[derive(Clone, Copy, Debug)]
enum Op {
    FmaZmm,
    FmaYmm,
    DpBf16Zmm,
    DpBf16Ymm,
    VnniZmm,
}

impl Op {
    /// Operations (FLOPs, or int8 ops) of one instruction.
    fn ops(self) -> f64 {
        match self {
            Op::FmaZmm => 32.0,
            Op::FmaYmm => 16.0,
            Op::DpBf16Zmm => 64.0,
            Op::DpBf16Ymm => 32.0,
            Op::VnniZmm => 128.0,
        }
    }

    fn needs(self) -> bool {
        let c = incc::cpu::Cpu::host();
        match self {
            Op::FmaZmm => c.avx512f,
            Op::FmaYmm => c.avx2 && c.fma,
            Op::DpBf16Zmm | Op::DpBf16Ymm => c.avx512_bf16,
            Op::VnniZmm => c.avx512_vnni,
        }
    }
}

/// `fn(iterations: u64)`: `iterations` times `ACC * UNROLL` instructions of `op`.
fn emit(op: Op) -> Result<Vec<u8>, IcedError> {
    let mut a = CodeAssembler::new(64)?;
    let mut top = a.create_label();
    a.vzeroupper()?;
    a.set_label(&mut top)?;
    for _ in 0..UNROLL {
        for k in 0..ACC {
            let (x, y) = (14, 15);
            match op {
                Op::FmaZmm => a.vfmadd231ps(Z[k], Z[x], Z[y])?,
                Op::FmaYmm => a.vfmadd231ps(Y[k], Y[x], Y[y])?,
                Op::DpBf16Zmm => a.vdpbf16ps(Z[k], Z[x], Z[y])?,
                Op::DpBf16Ymm => a.vdpbf16ps(Y[k], Y[x], Y[y])?,
                Op::VnniZmm => a.vpdpbusd(Z[k], Z[x], Z[y])?,
            }
        }
    }
    a.sub(rdi, 1)?;
    a.jnz(top)?;
    a.vzeroupper()?;
    a.ret()?;
    a.assemble(0)
}

fn main() {
    let ghz = clock_ghz();
    println!("core clock ~{ghz:.2} GHz (a dependent add chain)");
    println!("{:<12} {:>10} {:>12}", "instruction", "per cycle", "GOP/s 1 core");
    for op in [Op::FmaZmm, Op::FmaYmm, Op::DpBf16Zmm, Op::DpBf16Ymm, Op::VnniZmm] {
        if !op.needs() {
            println!("{op:?}: not on this CPU");
            continue;
        }
        let secs = run(&emit(op).expect("assemble"), 2_000_000);
        let instr = 2_000_000.0 * (ACC * UNROLL) as f64;
        println!(
            "{:<12} {:>10.2} {:>12.1}",
            format!("{op:?}"),
            instr / secs / (ghz * 1e9),
            instr * op.ops() / secs / 1e9
        );
    }
}

/// Seconds of the best of 5 runs of `code` with `n` iterations.
fn run(code: &[u8], n: u64) -> f64 {
    let mut map = MmapMut::map_anon(code.len().max(64)).expect("map");
    map[..code.len()].copy_from_slice(code);
    let map = map.make_exec().expect("exec");
    // SAFETY: position-independent code assembled above, `extern "C" fn(u64)`, System V.
    let f: extern "C" fn(u64) = unsafe { std::mem::transmute(map.as_ptr()) };
    f(n / 10);
    (0..5)
        .map(|_| {
            let t = Instant::now();
            f(n);
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// The clock, from a chain of dependent 1-cycle adds.
fn clock_ghz() -> f64 {
    let mut a = CodeAssembler::new(64).expect("asm");
    let mut top = a.create_label();
    a.set_label(&mut top).expect("label");
    for _ in 0..100 {
        a.add(rax, 1).expect("add");
    }
    a.sub(rdi, 1).expect("sub");
    a.jnz(top).expect("jnz");
    a.ret().expect("ret");
    let code = a.assemble(0).expect("assemble");
    let n = 5_000_000u64;
    n as f64 * 101.0 / run(&code, n) / 1e9
}
