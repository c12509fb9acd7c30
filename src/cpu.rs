//! The one CPU probe: which x86-64 instruction sets and extensions this machine has. Every
//! part of incc that chooses code by CPU (the target's ISAs, the weight stream's column
//! loops, the Winograd weight transform) asks [`Cpu::host`], so a test or a message sees the
//! same answer everywhere.
//!
//! It sits at the bottom of the layers (beside [`crate::error`]) because the weight stream,
//! below the target, asks it too; [`crate::target::isa`] builds the target's ISAs on it.

use std::sync::OnceLock;

/// What the CPU has. On targets other than x86-64 every field is `false`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cpu {
    /// AVX2.
    pub avx2: bool,
    /// FMA3 (`vfmadd231ps`).
    pub fma: bool,
    /// AVX-512 Foundation.
    pub avx512f: bool,
    /// AVX-512 byte and word instructions.
    pub avx512bw: bool,
    /// AVX-512 doubleword and quadword instructions.
    pub avx512dq: bool,
    /// AVX-512 bf16 dot products (`vdpbf16ps`, `vcvtne2ps2bf16`).
    pub avx512_bf16: bool,
    /// AVX-512 VNNI (`vpdpbusd` on zmm).
    pub avx512_vnni: bool,
    /// AVX-VNNI (`vpdpbusd` on ymm, VEX encoded).
    pub avx_vnni: bool,
    /// The System V calling convention, which generated x86 code follows (not Windows).
    pub sysv: bool,
}

impl Cpu {
    /// This machine, probed once.
    pub fn host() -> &'static Cpu {
        static HOST: OnceLock<Cpu> = OnceLock::new();
        HOST.get_or_init(Cpu::probe)
    }

    #[cfg(target_arch = "x86_64")]
    fn probe() -> Cpu {
        use std::arch::is_x86_feature_detected as has;
        Cpu {
            avx2: has!("avx2"),
            fma: has!("fma"),
            avx512f: has!("avx512f"),
            avx512bw: has!("avx512bw"),
            avx512dq: has!("avx512dq"),
            avx512_bf16: has!("avx512bf16"),
            avx512_vnni: has!("avx512vnni"),
            avx_vnni: has!("avxvnni"),
            sysv: cfg!(not(windows)),
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn probe() -> Cpu {
        Cpu::default()
    }
}
