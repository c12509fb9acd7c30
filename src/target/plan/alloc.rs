//! The arena's memory plan: buffers placed by best fit into the space freed by dead ones (no
//! splitting), or, for bounds checking, each in its own range between guard zones.
//!
//! ```text
//!   new_buf(4096, refs 1) -> buf0 @0       unref(buf0): [0, 4096) free
//!   new_buf(1024, refs 2) -> buf1 @4096    new_buf(2048) -> buf2 @0 (best fit in the hole)
//! ```

use super::ArenaOffset;
use std::fmt;

/// A buffer of the planner's arena. Displays as `buf7`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BufId(u32);

impl fmt::Display for BufId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "buf{}", self.0)
    }
}

/// Bytes of each guard zone of a bounds-checking plan.
pub const GUARD: usize = 64;

struct Buf {
    offset: usize,
    size: usize,
    refs: usize,
}

/// The buffers of one arena, with their readers left: a buffer's space is free again once
/// its last reader is done ([`Arena::unref`]). Sizes are rounded up to 64 bytes.
pub struct Arena {
    guard: bool,
    /// Where the [`GUARD`]-byte guard zones are (guard mode only).
    pub guards: Vec<ArenaOffset>,
    /// Free ranges: offset, size.
    free: Vec<(usize, usize)>,
    top: usize,
    bufs: Vec<Buf>,
}

impl Arena {
    /// An empty arena; with `guard`, every buffer gets its own range between two guard zones
    /// and space is never reused.
    pub fn new(guard: bool) -> Arena {
        Arena { guard, guards: Vec::new(), free: Vec::new(), top: 0, bufs: Vec::new() }
    }

    fn alloc(&mut self, size: usize) -> usize {
        let size = size.max(64).div_ceil(64) * 64;
        if self.guard {
            // A guard line on each side, and no reuse: every buffer keeps its own place.
            self.guards.push(ArenaOffset(self.top));
            let off = self.top + GUARD;
            self.top = off + size;
            self.guards.push(ArenaOffset(self.top));
            self.top += GUARD;
            return off;
        }
        let best = self.free.iter().enumerate().filter(|(_, f)| f.1 >= size).min_by_key(|(_, f)| f.1).map(|(i, _)| i);
        if let Some(i) = best {
            return self.free.swap_remove(i).0;
        }
        let off = self.top;
        self.top += size;
        off
    }

    fn release(&mut self, offset: usize, size: usize) {
        if self.guard {
            return;
        }
        self.free.push((offset, size.max(64).div_ceil(64) * 64));
    }

    /// A new buffer of `size` bytes with `refs` readers to come.
    pub fn new_buf(&mut self, size: usize, refs: usize) -> BufId {
        let offset = self.alloc(size);
        self.bufs.push(Buf { offset, size, refs });
        BufId((self.bufs.len() - 1) as u32)
    }

    /// Where `b` is in the arena.
    pub fn offset(&self, b: BufId) -> ArenaOffset {
        ArenaOffset(self.bufs[b.0 as usize].offset)
    }

    /// `n` more readers of `b` (a view of it was taken).
    pub fn add_refs(&mut self, b: BufId, n: usize) {
        self.bufs[b.0 as usize].refs += n;
    }

    /// One reader of `b` is done; its space is free once none is left.
    pub fn unref(&mut self, b: BufId) {
        let buf = &mut self.bufs[b.0 as usize];
        buf.refs = buf.refs.saturating_sub(1);
        if buf.refs == 0 {
            let (o, s) = (buf.offset, buf.size);
            self.release(o, s);
        }
    }

    /// Bytes the arena needs (at least 64).
    pub fn bytes(&self) -> usize {
        self.top.max(64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_space_is_reused_by_best_fit() {
        let mut a = Arena::new(false);
        let big = a.new_buf(4096, 1);
        let small = a.new_buf(1024, 1);
        let keep = a.new_buf(100, 1);
        assert_eq!((a.offset(big).0, a.offset(small).0, a.offset(keep).0), (0, 4096, 5120));
        a.unref(big);
        a.unref(small);
        // 1000 bytes fit both holes: the smaller one (1024 at 4096) is taken.
        let c = a.new_buf(1000, 1);
        assert_eq!(a.offset(c).0, 4096);
        // 2048 fits only the 4096 hole; nothing is split, so the next one grows the arena.
        let d = a.new_buf(2048, 1);
        assert_eq!(a.offset(d).0, 0);
        let e = a.new_buf(64, 1);
        assert_eq!(a.offset(e).0, 5248);
        assert_eq!(a.bytes(), 5312);
    }

    #[test]
    fn a_buffer_lives_until_its_last_reader() {
        let mut a = Arena::new(false);
        let b = a.new_buf(256, 2);
        a.add_refs(b, 1);
        a.unref(b);
        a.unref(b);
        let c = a.new_buf(256, 1);
        assert_eq!(a.offset(c).0, 256, "still one reader: not freed");
        a.unref(b);
        let d = a.new_buf(256, 1);
        assert_eq!(a.offset(d).0, 0, "freed after the third");
    }

    #[test]
    fn sizes_round_up_to_lines() {
        let mut a = Arena::new(false);
        let x = a.new_buf(1, 1);
        let y = a.new_buf(65, 1);
        let z = a.new_buf(0, 1);
        assert_eq!((a.offset(x).0, a.offset(y).0, a.offset(z).0), (0, 64, 192));
        assert_eq!(a.bytes(), 256);
    }

    #[test]
    fn guard_mode_never_reuses_and_surrounds_every_buffer() {
        let mut a = Arena::new(true);
        let x = a.new_buf(100, 1);
        a.unref(x);
        let y = a.new_buf(100, 1);
        assert_eq!((a.offset(x).0, a.offset(y).0), (GUARD, GUARD + 128 + 2 * GUARD));
        assert_eq!(
            a.guards.iter().map(|g| g.0).collect::<Vec<_>>(),
            [0, GUARD + 128, GUARD + 128 + GUARD, 2 * GUARD + 256 + GUARD]
        );
        assert_eq!(a.bytes(), 4 * GUARD + 256);
    }
}
