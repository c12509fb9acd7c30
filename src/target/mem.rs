//! Memory for the large buffers (packed parameters, arenas): zero pages straight from the
//! kernel, mapped ahead of their first write.
//!
//! They are small (4 KiB) pages, not transparent huge pages. On this machine (a VM whose
//! free memory goes back to the host after a few seconds idle) 200 MB of huge pages map in
//! 22-30 ms when the host still backs them but 95-260 ms when it must back them again,
//! while small pages come from free fragments the host never took back: 30-38 ms either
//! way with [`populate`] on two threads. Inception-v4 compiled in 125-185 ms after an idle
//! pause with huge pages, 93-112 ms with small ones. Whole-network runs showed no
//! difference outside the noise (A/B: -10% to +3%).

use std::sync::atomic::{AtomicBool, Ordering};

/// A zero-filled buffer of 64-byte [`Line`]s, mapped straight from the kernel: creating it
/// writes nothing, and each page is zeroed by the kernel when first touched. The packed
/// weights and the activation arenas live in these, so their pages are written once (by
/// the packing or the kernels) instead of twice (zeroes first, then the values), and only
/// the pages used are ever backed by memory.
#[derive(Default)]
pub struct Lines {
    map: Option<memmap2::MmapMut>,
    len: usize,
}

impl Lines {
    /// `len` zero lines, in small pages (see the module notes). Like a `Vec`, aborts
    /// when the system has no memory for them.
    pub fn zeroed(len: usize) -> Lines {
        if len == 0 {
            return Lines::default();
        }
        let bytes = len.checked_mul(std::mem::size_of::<Line>()).filter(|&b| b <= isize::MAX as usize);
        let Some(map) = bytes.and_then(|b| memmap2::MmapMut::map_anon(b).ok()) else {
            let layout = std::alloc::Layout::new::<Line>();
            std::alloc::handle_alloc_error(layout)
        };
        Lines { map: Some(map), len }
    }
}

impl std::ops::Deref for Lines {
    type Target = [Line];
    fn deref(&self) -> &[Line] {
        match &self.map {
            // SAFETY: the mapping is page aligned (so 64-byte aligned), `len` lines long and
            // lives as long as `self`; any bytes are a valid `Line` (16 plain f32s).
            Some(m) => unsafe { std::slice::from_raw_parts(m.as_ptr() as *const Line, self.len) },
            None => &[],
        }
    }
}

impl std::ops::DerefMut for Lines {
    fn deref_mut(&mut self) -> &mut [Line] {
        match &mut self.map {
            // SAFETY: as in `deref`, and `&mut self` makes this the only reference.
            Some(m) => unsafe { std::slice::from_raw_parts_mut(m.as_mut_ptr() as *mut Line, self.len) },
            None => &mut [],
        }
    }
}

impl std::fmt::Debug for Lines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Lines({})", self.len)
    }
}

/// Bytes between two writes of [`touch`]: the smallest page.
pub const PAGE: usize = 4096;

/// Maps every page of `mem`, which must be zero (fresh from [`Lines::zeroed`]), so that
/// later writes take no page faults: first-touch pages cost ~10x a mapped one's write on
/// this machine. Asks the kernel to [`populate`] them; where it cannot, one volatile zero
/// store per [`PAGE`]: a store, not a read (a read maps the shared zero page, and the first
/// write then faults anyway, in 4 KiB pages).
pub fn touch(mem: &mut [Line]) {
    if populate(mem) {
        return;
    }
    let bytes = std::mem::size_of_val(mem);
    let base = mem.as_mut_ptr() as *mut u8;
    for at in (0..bytes).step_by(PAGE) {
        // SAFETY: `at < bytes`, inside `mem`, which `&mut` makes ours alone.
        unsafe { base.add(at).write_volatile(0) };
    }
}

/// Asks the kernel to map every page `mem` touches for writing (Linux 5.14's
/// `MADV_POPULATE_WRITE`), in one call, without changing a byte: as if each page were
/// written, but without a fault per page. That is 1.5x faster than faulting the pages in
/// one by one here (200 MB: 30-38 ms against 48-58 ms on two threads). False when the
/// kernel cannot (older kernels, other systems); the pages are then mapped when written.
pub fn populate<T>(mem: &mut [T]) -> bool {
    populate_range(mem.as_mut_ptr() as usize, std::mem::size_of_val(mem))
}

/// [`populate`] for the pages of the bytes `start..start + bytes`. Safe for any range:
/// the call changes no contents and no access rights, and fails on memory that is not
/// mapped writable.
fn populate_range(start: usize, bytes: usize) -> bool {
    #[cfg(target_os = "linux")]
    {
        if bytes == 0 {
            return true;
        }
        let lo = start / PAGE * PAGE;
        // SAFETY: MADV_POPULATE_WRITE only maps pages (as a write fault would, leaving their
        // contents alone) and fails with ENOMEM on addresses that are not mapped.
        unsafe { libc::madvise(lo as *mut libc::c_void, start + bytes - lo, libc::MADV_POPULATE_WRITE) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (start, bytes);
        false
    }
}

/// Bytes one page-table page maps on x86-64 (and aarch64 with 4 KiB pages): pages of one
/// region share a lock in the kernel, so threads that map different regions do not wait
/// on each other (200 MB on two threads: 34-42 ms in 2 MiB regions, 43-49 ms in 1 MiB
/// pieces taken in turn).
pub const REGION: usize = 2 << 20;

/// `mem` cut at the addresses that are multiples of [`REGION`].
pub fn regions<T>(mut mem: &mut [T]) -> impl Iterator<Item = &mut [T]> {
    let size = std::mem::size_of::<T>().max(1);
    std::iter::from_fn(move || {
        if mem.is_empty() {
            return None;
        }
        let to_edge = REGION - mem.as_ptr() as usize % REGION;
        let n = (to_edge / size).clamp(1, mem.len());
        let (head, tail) = std::mem::take(&mut mem).split_at_mut(n);
        mem = tail;
        Some(head)
    })
}

/// Maps a buffer's pages ahead of the threads that write its parts, a [`REGION`] at a time
/// and each region once, by whichever thread first writes into it ([`Prefault::ensure`]).
/// It keeps only the buffer's addresses: mapping changes no contents, and fails harmlessly
/// on memory no longer mapped.
pub struct Prefault {
    start: usize,
    bytes: usize,
    claimed: Box<[AtomicBool]>,
}

impl Prefault {
    /// For the buffer `mem`, which the caller then cuts into the parts its threads write.
    pub fn new<T>(mem: &[T]) -> Prefault {
        let (start, bytes) = (mem.as_ptr() as usize, std::mem::size_of_val(mem));
        let n = if bytes == 0 { 0 } else { (start + bytes - 1) / REGION - start / REGION + 1 };
        Prefault { start, bytes, claimed: (0..n).map(|_| AtomicBool::new(false)).collect() }
    }

    /// Maps the regions `part` (a part of the buffer) overlaps that no thread has claimed.
    /// A region another thread is still mapping is left to it: writes there at worst fault.
    pub fn ensure<T>(&self, part: &[T]) {
        let (lo, bytes) = (part.as_ptr() as usize, std::mem::size_of_val(part));
        if bytes == 0 || lo < self.start || lo + bytes > self.start + self.bytes {
            return;
        }
        let first = self.start / REGION;
        for r in lo / REGION..=(lo + bytes - 1) / REGION {
            if let Some(flag) = self.claimed.get(r - first)
                && !flag.swap(true, Ordering::Relaxed)
            {
                let a = (r * REGION).max(self.start);
                let b = ((r + 1) * REGION).min(self.start + self.bytes);
                populate_range(a, b - a);
            }
        }
    }
}

/// 64 bytes, 64-byte aligned: the unit of the arena and of the packed parameters.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub struct Line(pub [f32; 16]);

impl Line {
    /// Sixteen zeros.
    pub const ZERO: Line = Line([0.0; 16]);
}

/// `mem` as floats.
pub fn as_f32(mem: &[Line]) -> &[f32] {
    // SAFETY: `Line` is 16 plain f32s with no padding.
    unsafe { std::slice::from_raw_parts(mem.as_ptr() as *const f32, mem.len() * 16) }
}

/// `mem` as mutable floats.
pub fn as_f32_mut(mem: &mut [Line]) -> &mut [f32] {
    // SAFETY: `Line` is 16 plain f32s with no padding.
    unsafe { std::slice::from_raw_parts_mut(mem.as_mut_ptr() as *mut f32, mem.len() * 16) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Touching zero memory (whole and from an unaligned start) leaves it zero.
    #[test]
    fn touched_lines_stay_zero() {
        let mut l = Lines::zeroed(3 * PAGE / 64 + 5);
        touch(&mut l);
        touch(&mut l[1..]);
        assert!(l.iter().all(|line| line.0 == [0.0; 16]));
    }

    /// Regions cut a buffer at 2 MiB addresses, in order, none empty; prefaulting any parts
    /// (twice, out of range, empty) leaves the contents alone.
    #[test]
    fn regions_and_prefault_keep_the_contents() {
        let mut l = Lines::zeroed(5 * REGION / 64 + 3);
        let f = as_f32(&mut l[7..]);
        f.iter_mut().enumerate().for_each(|(i, v)| *v = i as f32);
        let cuts: Vec<(usize, usize)> = regions(&mut *f).map(|r| (r.as_ptr() as usize, r.len())).collect();
        assert!(cuts.iter().all(|&(_, n)| n > 0) && cuts.iter().map(|c| c.1).sum::<usize>() == f.len());
        assert!(cuts.windows(2).all(|w| w[0].0 + w[0].1 * 4 == w[1].0 && w[1].0 % REGION == 0), "{cuts:?}");
        let n = f.len();
        let p = Prefault::new(f);
        for (a, b) in [(0, 10), (5, 3 * REGION / 4), (0, n), (n - 1, n), (n, n)] {
            p.ensure(&f[a..b]);
        }
        p.ensure(&[1.0f32; 4]);
        assert!(f.iter().enumerate().all(|(i, &v)| v == i as f32));
    }

    fn as_f32(l: &mut [Line]) -> &mut [f32] {
        // SAFETY: a line is 16 plain f32s.
        unsafe { std::slice::from_raw_parts_mut(l.as_mut_ptr() as *mut f32, l.len() * 16) }
    }

    #[test]
    fn lines_are_zero_aligned_and_writable() {
        for n in [0, 1, 3, 70_000] {
            let mut l = Lines::zeroed(n);
            assert_eq!(l.len(), n);
            assert!(l.iter().all(|line| line.0 == [0.0; 16]));
            assert_eq!(l.as_ptr() as usize % 64, 0);
            if let Some(last) = l.last_mut() {
                last.0[15] = 1.0;
            }
            assert_eq!(l.iter().map(|line| line.0.iter().sum::<f32>()).sum::<f32>(), if n > 0 { 1.0 } else { 0.0 });
        }
    }
}
