//! Tiers: which kernels compute the convolutions, by the instruction set they need.
//!
//! A tier is asked for by name, the same names everywhere: `auto`, `avx512`, `avx2` or
//! `portable` ([`TierChoice::NAMES`]), with `wide` still accepted for `avx512`. One parser
//! reads them, [`TierChoice::from_name`], with one error for an unknown name: `FromStr`
//! (`--tier`, `INCC_TIER`) and `Deserialize` (a compile profile's `tier:`) both call it.

use super::isa::Isa;
use super::tile::Dtype;
use crate::error::{Error, Result};
use crate::ir::Precision;
use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::{Serialize, Serializer};

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

/// The tier asked for. Serialised as its [name](TierChoice::name); read with
/// [`TierChoice::from_name`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TierChoice {
    /// The fastest this CPU runs.
    #[default]
    Auto,
    /// Always [`Tier::Portable`].
    Portable,
    /// [`Tier::Avx512`], or an error on a CPU without AVX-512F. `wide`, its name before
    /// 2026-12, is accepted as an alias.
    Avx512,
    /// [`Tier::Avx2`], or an error on a CPU without AVX2 and FMA.
    Avx2,
}

impl TierChoice {
    /// Every choice, in the order of [`TierChoice::NAMES`].
    pub const ALL: [TierChoice; 4] = [TierChoice::Auto, TierChoice::Avx512, TierChoice::Avx2, TierChoice::Portable];

    /// The names of [`TierChoice::ALL`]: what `--tier` and a profile's `tier:` accept, and
    /// what an unknown name's error lists.
    pub const NAMES: &'static [&'static str] = &["auto", "avx512", "avx2", "portable"];

    /// Former names, still accepted: `wide` is `avx512`.
    pub const ALIASES: [(&'static str, TierChoice); 1] = [("wide", TierChoice::Avx512)];

    /// The name: `auto`, `avx512`, `avx2` or `portable`.
    pub fn name(self) -> &'static str {
        match self {
            TierChoice::Auto => "auto",
            TierChoice::Avx512 => "avx512",
            TierChoice::Avx2 => "avx2",
            TierChoice::Portable => "portable",
        }
    }

    /// The choice called `name` (one of [`TierChoice::NAMES`] or an alias), exactly as written.
    pub fn from_name(name: &str) -> Option<TierChoice> {
        let alias = TierChoice::ALIASES.iter().find(|(a, _)| *a == name).map(|(_, t)| *t);
        TierChoice::ALL.into_iter().find(|t| t.name() == name).or(alias)
    }

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

    /// The tier for this CPU computing in `precision`: f32 as [`TierChoice::resolve`]; bf16
    /// only on the avx512 tier (`auto` or `avx512`), on a CPU with AVX512_BF16.
    pub fn resolve_in(self, precision: Precision) -> Result<Tier> {
        if precision == Precision::F32 {
            return self.resolve();
        }
        if let Err(needs) = Isa::Avx512.runs(Dtype::Bf16) {
            return Err(Error::Jit(format!("precision {precision} needs a CPU with {needs}; this one has none")));
        }
        match self {
            TierChoice::Auto | TierChoice::Avx512 => Ok(Tier::Avx512),
            other => Err(Error::Jit(format!(
                "precision {precision} runs on the avx512 tier, not {} (use --tier auto or avx512)",
                other.resolve().map_or("that tier", |t| t.name())
            ))),
        }
    }
}

/// The precision `auto` picks: bf16 on a CPU that runs the bf16 tiles, else f32.
pub fn best_precision() -> Precision {
    if Isa::Avx512.runs(Dtype::Bf16).is_ok() { Precision::Bf16 } else { Precision::F32 }
}

impl std::fmt::Display for TierChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for TierChoice {
    type Err = Error;
    /// [`TierChoice::from_name`], or an error that lists the names.
    fn from_str(s: &str) -> Result<TierChoice> {
        TierChoice::from_name(s).ok_or_else(|| {
            Error::Invalid(format!(
                "unknown tier `{s}`: expected {} (`wide` is an alias of `avx512`)",
                TierChoice::NAMES.join(", ")
            ))
        })
    }
}

impl Serialize for TierChoice {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for TierChoice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<TierChoice, D::Error> {
        d.deserialize_str(Named)
    }
}

/// Reads a tier name as `FromStr` does (the same error). The check runs in the visitor, while the
/// deserializer still stands on the value, so an unknown name's error carries its location.
struct Named;

impl Visitor<'_> for Named {
    type Value = TierChoice;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a tier: {}", TierChoice::NAMES.join(", "))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<TierChoice, E> {
        v.parse().map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        assert_eq!(TierChoice::ALL.map(TierChoice::name), TierChoice::NAMES);
        for t in TierChoice::ALL {
            assert_eq!(t.name().parse::<TierChoice>().ok(), Some(t));
        }
        assert_eq!("wide".parse::<TierChoice>().ok(), Some(TierChoice::Avx512));
        let e = "fast".parse::<TierChoice>().unwrap_err().to_string();
        assert!(e.contains("`fast`") && e.contains("auto, avx512, avx2, portable"), "{e}");
    }
}
