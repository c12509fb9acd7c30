//! Memory for the large buffers (weights, packed parameters, arenas): huge-page hints and
//! buffers the kernel zeroes on first touch.

use super::plan::Line;

/// Asks the kernel to back the whole 2 MiB pages inside `v`'s allocation with transparent
/// huge pages (Linux, `madvise` mode). A 170 MB weight tensor then takes 85 page faults
/// instead of 43,000 when it is first written, and far fewer TLB misses when it is read.
/// Call it before the first write; a no-op elsewhere or when the kernel says no.
pub fn hint_huge_pages<T>(v: &Vec<T>) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let (start, bytes) = (v.as_ptr() as usize, v.capacity() * std::mem::size_of::<T>());
        let lo = start.next_multiple_of(HUGE);
        let hi = (start + bytes) / HUGE * HUGE;
        if hi > lo {
            // SAFETY: `lo..hi` lies inside `v`'s allocation, which stays mapped while `v`
            // lives; MADV_HUGEPAGE changes no contents and no access rights.
            unsafe {
                libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = v;
}

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
    /// `len` zero lines, with the huge-page hint of [`hint_huge_pages`]. Like a `Vec`, aborts
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
        #[cfg(target_os = "linux")]
        let _ = map.advise(memmap2::Advice::HugePage);
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
/// this machine. One volatile zero store per [`PAGE`]: a store, not a read (a read maps the
/// shared zero page, and the first write then faults anyway, in 4 KiB pages).
pub fn touch(mem: &mut [Line]) {
    let bytes = std::mem::size_of_val(mem);
    let base = mem.as_mut_ptr() as *mut u8;
    for at in (0..bytes).step_by(PAGE) {
        // SAFETY: `at < bytes`, inside `mem`, which `&mut` makes ours alone.
        unsafe { base.add(at).write_volatile(0) };
    }
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
