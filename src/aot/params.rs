//! The packed-parameter file (`model.params`) that `P_create(path)` loads.
//!
//! ```text
//!   offset  size  field
//!        0     8  magic "INCCPRM\0"
//!        8     4  version, u32 little-endian (= 1)
//!       12     4  reserved, 0
//!       16     8  float count, u64 little-endian (= P_PARAMS_COUNT)
//!       24     8  plan fingerprint, u64 little-endian (= P_PARAMS_FINGERPRINT)
//!       32   4*n  the packed parameters, f32 little-endian
//! ```
//!
//! The floats are the [`Plan::params`] of the network: weights already folded, reordered and
//! padded for the kernels, so the file is only meaningful to objects compiled from the same
//! plan. The fingerprint (FNV-1a over incc's version and the plan's kernels, steps and
//! slots) makes a file written for another network or another incc refused rather than
//! silently misread; it is a consistency check, not a checksum of the values.

use crate::target::plan::Plan;

/// The first 8 bytes of every params file.
pub const MAGIC: [u8; 8] = *b"INCCPRM\0";
/// The format version this incc writes and its objects accept.
pub const VERSION: u32 = 1;
/// Bytes before the first float.
pub const HEADER_BYTES: usize = 32;

/// The header word at offset 8 (version and the reserved zero) as one u64, as objects
/// compare it.
pub fn version_word() -> u64 {
    VERSION as u64
}

/// A 64-bit FNV-1a hash of what fixes the meaning of [`Plan::params`]: incc's version and
/// the plan's kernels, steps, sizes and slots.
pub fn fingerprint(plan: &Plan) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(env!("CARGO_PKG_VERSION").as_bytes());
    eat(format!("{:?}", plan.kernels).as_bytes());
    eat(format!("{:?}", plan.steps).as_bytes());
    eat(format!("{:?} {:?}", plan.inputs, plan.outputs).as_bytes());
    eat(&(plan.arena_bytes as u64).to_le_bytes());
    eat(&(plan.params.len() as u64).to_le_bytes());
    h
}

/// The params file of `plan`.
pub fn encode(plan: &Plan) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES + plan.params.len() * 4);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&version_word().to_le_bytes());
    out.extend_from_slice(&(plan.params.len() as u64).to_le_bytes());
    out.extend_from_slice(&fingerprint(plan).to_le_bytes());
    for x in &plan.params {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// The magic as the little-endian u64 the generated loader compares.
pub fn magic_word() -> u64 {
    u64::from_le_bytes(MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(src: &str) -> Plan {
        let g = crate::frontend::compile_str("t.incep", src).expect("compiles");
        let w = crate::weights::Weights::init(&g, 1);
        crate::aot::plan(&g, &w).expect("plans")
    }

    const NET: &str = "input 3x8x8\ndefault conv nobias bn relu\nc: conv 4 3x3\ngap\nflatten\nfc: fc 5\noutput y\n";

    #[test]
    fn header_then_little_endian_floats() {
        let plan = plan_of(NET);
        let bytes = encode(&plan);
        assert_eq!(&bytes[..8], b"INCCPRM\0");
        let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        assert_eq!(word(8), 1);
        assert_eq!(word(16), plan.params.len() as u64);
        assert_eq!(word(24), fingerprint(&plan));
        assert_eq!(bytes.len(), HEADER_BYTES + 4 * plan.params.len());
        let last = plan.params.len() - 1;
        let at = HEADER_BYTES + 4 * last;
        assert_eq!(f32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")), plan.params[last]);
    }

    #[test]
    fn fingerprint_tells_networks_apart_but_not_weights() {
        let a = plan_of(NET);
        let b = plan_of(&NET.replace("fc 5", "fc 6"));
        assert_ne!(fingerprint(&a), fingerprint(&b));
        let g = crate::frontend::compile_str("t.incep", NET).expect("compiles");
        let other = crate::aot::plan(&g, &crate::weights::Weights::init(&g, 2)).expect("plans");
        assert_ne!(*other.params, *a.params);
        assert_eq!(fingerprint(&other), fingerprint(&a));
    }
}
