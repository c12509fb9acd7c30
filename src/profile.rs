//! Compile profiles: the options of a compilation in a YAML file (`--profile-file incc.yaml`).
//!
//! ```yaml
//! opt_level: 2                        # 0, 1 or 2
//! disable_passes: [fuse-sibling-1x1]  # passes not to run
//! threads: 2                          # worker threads (absent: all cores)
//! tier: auto                          # kernel tier: auto | avx512 | avx2 | portable (wide: avx512)
//! precision: f32                      # f32 | bf16 | auto (bf16 where the CPU has AVX512_BF16)
//! outputs: [logits]                   # outputs to keep (absent: all but aux*)
//! seed: 0                             # seed of the initial weights and input
//! weights: inception_v4.safetensors   # relative to this file's folder (absent: seeded weights)
//! ```
//!
//! Every key is optional. Unknown keys and values of the wrong type are errors that name the
//! file, line and column ([`Error::Profile`]); the YAML goes through serde with `serde_yaml_ng`,
//! the maintained fork of the archived `serde_yaml` (same API). A [`Profile`] is also what the
//! command line builds from its flags: [`Profile::overlay`] puts the flags over the file.

use crate::driver::{Compiler, PrecisionChoice, Tier, parse_level};
use crate::error::{Error, Result};
use serde::de::{self, Unexpected, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use std::path::{Path, PathBuf};

/// The options of a compilation; `None` (or an empty list) leaves the default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Optimisation level 0, 1 or 2 (default 2).
    #[serde(default, deserialize_with = "opt_level", skip_serializing_if = "Option::is_none")]
    pub opt_level: Option<u8>,
    /// Passes not to run, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disable_passes: Vec<String>,
    /// Worker threads, 1 to 1024 (default: all cores).
    #[serde(default, deserialize_with = "threads", skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
    /// Kernel tier (default `auto`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
    /// Arithmetic of convolutions and linear layers (default `f32`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<PrecisionChoice>,
    /// Outputs to keep (default: all but auxiliary classifiers `aux*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Vec<String>>,
    /// Seed of the initial weights and of the default input (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// A safetensors state_dict (default: seeded initial weights). In a file, a relative path
    /// is relative to the file's folder; [`Profile::load`] resolves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<PathBuf>,
}

fn opt_level<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<u8>, D::Error> {
    Ok(d.deserialize_option(Optional(InRange(0, 2)))?.map(|v| v as u8))
}

fn threads<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<u32>, D::Error> {
    Ok(d.deserialize_option(Optional(InRange(1, 1024)))?.map(|v| v as u32))
}

/// Accepts an integer in `.0..=.1`. The check runs in the visitor, while the deserializer
/// still stands on the value, so a range error carries the value's line and column.
#[derive(Clone, Copy)]
struct InRange(u64, u64);

impl<'de> Visitor<'de> for InRange {
    type Value = u64;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "an integer from {} to {}", self.0, self.1)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<u64, E> {
        if (self.0..=self.1).contains(&v) { Ok(v) } else { Err(E::invalid_value(Unexpected::Unsigned(v), &self)) }
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<u64, E> {
        match u64::try_from(v) {
            Ok(u) => self.visit_u64(u),
            Err(_) => Err(E::invalid_value(Unexpected::Signed(v), &self)),
        }
    }
}

/// `null` or an absent key, or what the inner visitor accepts.
struct Optional(InRange);

impl<'de> Visitor<'de> for Optional {
    type Value = Option<u64>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.expecting(f)
    }
    fn visit_none<E: de::Error>(self) -> std::result::Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> std::result::Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_u64(self.0).map(Some)
    }
}

impl Profile {
    /// Parses profile text; `name` is the file reported in errors. Relative paths stay as written.
    pub fn parse(name: &str, text: &str) -> Result<Profile> {
        // An empty file (or one of comments) is the empty profile, not a type error.
        let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| located(name, &e))?;
        if value.is_null() {
            return Ok(Profile::default());
        }
        // Deserialise from the text, not the value, so errors keep their line and column.
        serde_yaml_ng::from_str(text).map_err(|e| located(name, &e))
    }

    /// Reads a profile file; a relative `weights` path is taken relative to the file's folder.
    pub fn load(path: &Path) -> Result<Profile> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut p = Profile::parse(&path.display().to_string(), &text)?;
        if let Some(w) = &p.weights
            && w.is_relative()
        {
            p.weights = Some(path.parent().unwrap_or(Path::new("")).join(w));
        }
        Ok(p)
    }

    /// `over`'s values where it has them, `self`'s elsewhere (flags over a file).
    pub fn overlay(self, over: Profile) -> Profile {
        Profile {
            opt_level: over.opt_level.or(self.opt_level),
            disable_passes: if over.disable_passes.is_empty() { self.disable_passes } else { over.disable_passes },
            threads: over.threads.or(self.threads),
            tier: over.tier.or(self.tier),
            precision: over.precision.or(self.precision),
            outputs: over.outputs.or(self.outputs),
            seed: over.seed.or(self.seed),
            weights: over.weights.or(self.weights),
        }
    }

    /// The profile with every defaulted scalar written out (`opt_level`, `tier`, `seed`) and a
    /// relative weights path made absolute, so the file means the same from any folder.
    pub fn effective(&self) -> Result<Profile> {
        let weights = match &self.weights {
            Some(w) => Some(std::path::absolute(w).map_err(|e| Error::io(w, e))?),
            None => None,
        };
        Ok(Profile {
            opt_level: Some(self.opt_level.unwrap_or(2)),
            tier: Some(self.tier.unwrap_or_default()),
            precision: Some(self.precision.unwrap_or_default()),
            seed: Some(self.seed.unwrap_or(0)),
            weights,
            ..self.clone()
        })
    }

    /// The profile as YAML, with a header that says what absent keys mean.
    pub fn to_yaml(&self) -> Result<String> {
        let body = serde_yaml_ng::to_string(self).map_err(|e| Error::Invalid(format!("profile: {e}")))?;
        Ok(format!(
            "# incc compile profile (incc compile FILE --profile-file THIS). Absent keys take their defaults:\n\
             # threads: all cores; outputs: all but aux*; weights: seeded initialisation.\n{body}"
        ))
    }

    /// A [`Compiler`] with these options.
    pub fn compiler(&self) -> Result<Compiler> {
        let level = parse_level(&self.opt_level.unwrap_or(2).to_string())?;
        let mut c = Compiler::new()
            .opt_level(level)
            .disable_passes(self.disable_passes.clone())
            .outputs(self.outputs.clone())
            .threads(self.threads.unwrap_or(0) as usize)
            .tier(self.tier.unwrap_or_default())
            .precision(self.precision.unwrap_or_default().resolve())
            .seed(self.seed.unwrap_or(0));
        if let Some(w) = &self.weights {
            c = c.weights_file(w);
        }
        Ok(c)
    }
}

/// A serde_yaml_ng error as `file:line:column: message`.
fn located(name: &str, e: &serde_yaml_ng::Error) -> Error {
    let text = e.to_string();
    match e.location() {
        Some(l) => {
            let suffix = format!(" at line {} column {}", l.line(), l.column());
            let message = text.replacen(&suffix, "", 1);
            Error::Profile { at: format!("{name}:{}:{}", l.line(), l.column()), message }
        }
        None => Error::Profile { at: name.to_string(), message: text },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_prefers_the_flags() {
        let file =
            Profile { opt_level: Some(1), seed: Some(7), disable_passes: vec!["a".into()], ..Default::default() };
        let flags = Profile { seed: Some(9), ..Default::default() };
        let p = file.overlay(flags);
        assert_eq!((p.opt_level, p.seed, p.disable_passes), (Some(1), Some(9), vec!["a".to_string()]));
    }

    #[test]
    fn round_trip() {
        let p = Profile {
            opt_level: Some(0),
            disable_passes: vec!["fuse-activation".into()],
            threads: Some(3),
            tier: Some(Tier::Portable),
            precision: Some(PrecisionChoice::Bf16),
            outputs: Some(vec!["logits".into(), "aux1".into()]),
            seed: Some(5),
            weights: Some("/w.safetensors".into()),
        };
        assert_eq!(Profile::parse("p.yaml", &p.to_yaml().unwrap()).unwrap(), p);
        assert_eq!(Profile::parse("p.yaml", "# nothing\n").unwrap(), Profile::default());
    }

    #[test]
    fn tiers_by_the_names_of_the_flag() {
        for (text, tier) in
            [("avx512", Tier::Avx512), ("wide", Tier::Avx512), ("avx2", Tier::Avx2), ("auto", Tier::Auto)]
        {
            let p = Profile::parse("p.yaml", &format!("tier: {text}\n")).unwrap();
            assert_eq!(p.tier, Some(tier), "{text}");
            assert_eq!(p.tier.map(|t| t.to_string()), Some(text.replace("wide", "avx512")));
        }
    }
}
