//! Moving values between a caller's NCHW slices and the blocked layout of the arena.

use crate::target::mem::{Line, as_f32, as_f32_mut};
use crate::target::plan::{self, Slot};

/// Channels per block of the layout.
const B: usize = crate::ir::layout::BLOCK;

/// NCHW (or `[F]`) to the blocked layout, padded channels zero.
pub(super) fn write_blocked(mem: &mut [Line], slot: &Slot, x: &[f32]) {
    let m = as_f32_mut(mem);
    let base = slot.offset.0 / 4;
    if let Some(k) = slot.compact {
        // `[hp][wp][c]`: a zero border, the image at (top, left).
        let c = slot.c;
        let dst = &mut m[base..base + k.hp * k.wp * c];
        dst.fill(0.0);
        for y in 0..k.h {
            for xx in 0..k.w {
                let at = ((y + k.top) * k.wp + xx + k.left) * c;
                for (ch, d) in dst[at..at + c].iter_mut().enumerate() {
                    *d = x[(ch * k.h + y) * k.w + xx];
                }
            }
        }
        return;
    }
    let cp = plan::cpad(slot.c);
    let dst = &mut m[base..base + cp * slot.pix];
    dst.fill(0.0);
    for c in 0..slot.c {
        for p in 0..slot.pix {
            dst[(c / B) * slot.pix * B + p * B + c % B] = x[c * slot.pix + p];
        }
    }
}

/// The blocked layout back to NCHW.
pub(super) fn read_blocked(mem: &[Line], slot: &Slot, y: &mut [f32]) {
    let m = as_f32(mem);
    let src = &m[slot.offset.0 / 4..];
    for c in 0..slot.c {
        for p in 0..slot.pix {
            y[c * slot.pix + p] = src[(c / B) * slot.pix * B + p * B + c % B];
        }
    }
}
