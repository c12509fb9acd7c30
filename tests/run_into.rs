//! `Model::run_into`: the outputs written into the caller's buffers, bit-identical to
//! `Model::run`'s, with no allocation once the calling thread's arena exists (counted by
//! a global allocator of this test binary), and wrong buffers refused, naming the output.

use incc::{Compiler, Tier};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Counts the allocations made on each thread.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; the counter is a plain
// thread-local cell (const-initialised, so touching it does not allocate).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: as the caller guarantees for `GlobalAlloc::alloc`.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: as the caller guarantees for `GlobalAlloc::realloc`.
        unsafe { System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

const NET: &str = "
    input 3x20x20
    default conv nobias bn eps 0.001 relu
    stem: conv 16 3x3 stride 2 pad 1
    side: conv 8 1x1
    output side
    gap; flatten; fc: fc 5
    output logits
";

#[test]
fn run_into_matches_run_and_allocates_nothing_once_warm() {
    for tier in Tier::runnable() {
        // One thread: a pool's workers would be other threads, whose counts we do not see.
        let c = Compiler::new().seed(3).threads(1).tier(tier).compile_str("two.incep", NET).expect("compile");
        let x = incc::weights::random_input(3 * 20 * 20, 9);
        let want = c.model.run(&x).expect("run");
        let names: Vec<&str> = c.model.outputs().map(|(n, _)| n).collect();
        assert_eq!(names, want.names().collect::<Vec<_>>(), "{tier:?}: outputs() in run's order");
        let mut bufs: Vec<Vec<f32>> = c.model.outputs().map(|(_, s)| vec![f32::NAN; s.numel()]).collect();
        let mut views: Vec<&mut [f32]> = bufs.iter_mut().map(Vec::as_mut_slice).collect();
        let before = allocations();
        for _ in 0..3 {
            c.model.run_into(&[&x], &mut views).expect("run_into");
        }
        let made = allocations() - before;
        assert_eq!(made, 0, "{tier:?}: run_into allocated {made} time(s) in 3 warm runs");
        for (got, o) in bufs.iter().zip(&want) {
            let same = got.iter().zip(&o.data).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{tier:?}: output `{}` of run_into differs from run's", o.name);
        }
    }
}

#[test]
fn run_into_refuses_buffers_of_the_wrong_number_or_length() {
    let c = Compiler::new().seed(3).threads(1).compile_str("two.incep", NET).expect("compile");
    let x = vec![0.0f32; 3 * 20 * 20];
    let (mut a, mut b) = (vec![0.0f32; 8 * 10 * 10], vec![0.0f32; 4]);
    let e = c.model.run_into(&[&x], &mut [&mut a]).expect_err("one buffer for two outputs");
    assert!(e.to_string().contains("2 output(s), 1 buffers"), "{e}");
    let e = c.model.run_into(&[&x], &mut [&mut a, &mut b]).expect_err("a short buffer");
    assert!(e.to_string().contains("output `logits`") && e.to_string().contains("holds 4"), "{e}");
    let e = c.model.run_into(&[&x[1..]], &mut [&mut a, &mut b]).expect_err("a short input");
    assert!(e.to_string().contains("1199 values"), "{e}");
}
