//! Tiers: which kernels compute the convolutions, by the instruction set they need.

use super::isa::Isa;
use crate::error::{Error, Result};

/// Which kernels compute the convolutions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tier {
    /// Cranelift's f32x4 kernels ([`super::portable`]): any CPU Cranelift supports.
    Portable,
    /// AVX-512 micro-tiles ([`super::avx512`]) called from Cranelift loops: x86-64 with
    /// AVX-512F.
    Avx512,
    /// The same with AVX2 micro-tiles ([`super::avx2`]): x86-64 with AVX2 and FMA.
    Avx2,
}

impl Tier {
    /// The ISA of the micro-tiles, or `None` for the portable tier.
    pub fn isa(self) -> Option<Isa> {
        match self {
            Tier::Portable => None,
            Tier::Avx512 => Some(Isa::Avx512),
            Tier::Avx2 => Some(Isa::Avx2),
        }
    }

    /// The name `--tier`, profiles and reports use: `portable`, `avx512` or `avx2`.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Portable => "portable",
            Tier::Avx512 => "avx512",
            Tier::Avx2 => "avx2",
        }
    }
}

/// The tier asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TierChoice {
    /// The fastest this CPU runs.
    #[default]
    Auto,
    /// Always [`Tier::Portable`].
    Portable,
    /// [`Tier::Avx512`], or an error on a CPU without AVX-512F. `wide`, its name before
    /// 2026-12, is accepted as an alias.
    #[serde(alias = "wide")]
    Avx512,
    /// [`Tier::Avx2`], or an error on a CPU without AVX2 and FMA.
    Avx2,
}

impl TierChoice {
    /// Every explicit tier this CPU runs: portable always, then AVX-512 and AVX2 when present
    /// (what a test that covers every tier iterates over).
    pub fn runnable() -> Vec<TierChoice> {
        let mut t = vec![TierChoice::Portable];
        if Isa::Avx512.available() {
            t.push(TierChoice::Avx512);
        }
        if Isa::Avx2.available() {
            t.push(TierChoice::Avx2);
        }
        t
    }

    /// The tier for this CPU: `Auto` is AVX-512 tiles, else AVX2 tiles, else portable.
    pub fn resolve(self) -> Result<Tier> {
        let tier = match self {
            TierChoice::Portable => return Ok(Tier::Portable),
            TierChoice::Auto => {
                return Ok(match Isa::best() {
                    Some(Isa::Avx512) => Tier::Avx512,
                    Some(Isa::Avx2) => Tier::Avx2,
                    None => Tier::Portable,
                });
            }
            TierChoice::Avx512 => Tier::Avx512,
            TierChoice::Avx2 => Tier::Avx2,
        };
        match tier.isa() {
            Some(isa) if !isa.available() => {
                Err(Error::Jit(format!("the {} tier needs an x86-64 CPU with {}", tier.name(), isa.needs())))
            }
            _ => Ok(tier),
        }
    }
}
