//! Packing the wide convolutions' weights after planning, on several threads.
//!
//! The planner reserves each wide convolution's packed block ([`Pack`]) instead of writing
//! it; a [`Queue`] cuts the blocks into tasks of a few output-channel groups, which any
//! number of threads take in turn. Each task reads its groups' weights a group of output
//! channels (`nr * 16`) at a time, column by column, straight into tile order and front to
//! back ([`TiledConvSpec::column_runs`], [`Weights::columns`]: a seeded tensor is generated
//! there, not copied).
//! [`crate::exec::Model::compile`] generates code on one thread while the others pack,
//! then packs too.

use super::mem;
use super::mem::Line;
use super::params::Params;
use crate::error::{Error, Result};
use crate::target::clif::BLOCK;
use crate::target::tile::Dtype;
use crate::target::tiled_conv::TiledConvSpec;
use crate::target::winograd::{WeightTransform, WinogradSpec};
use crate::weights::{LANES, MAX_ROWS, Weights};

// The weights are read a group of channel blocks at a time, at most four.
const _: () = assert!(LANES == BLOCK && MAX_ROWS == 4 * BLOCK);
use std::ops::Range;
use std::sync::Mutex;

/// Floats a task writes, about (4 MiB): enough that two threads seldom write (and map,
/// [`mem::Prefault`]) the same 2 MiB region at once, few enough that they finish together
/// (the arena's touching tasks, last in the queue, even out the end).
const TASK_FLOATS: usize = 1 << 20;

/// The packed weights of one wide convolution, to be written at `at`.
#[derive(Debug)]
pub struct Pack<'w> {
    /// Offset of the block in the packed parameters, in floats.
    pub at: usize,
    /// The convolution.
    pub spec: TiledConvSpec,
    /// Output channels.
    pub oc: usize,
    /// Input channels.
    pub ic: usize,
    /// The weights holding the dense `[oc][ic][kh][kw]` tensor.
    pub weights: &'w Weights,
    /// The tensor's key.
    pub key: String,
    /// The Winograd convolution whose products `spec` computes (one 1x1 product per
    /// position, [`TiledConvSpec::row_weights`]): the weights are transformed as they are
    /// packed.
    pub winograd: Option<WinogradSpec>,
    /// Round every weight to bf16 (kept f32): f32 tiles computing a bf16 layer.
    pub round_bf16: bool,
}

impl Pack<'_> {
    /// Packs groups `groups` into `out` (their [`TiledConvSpec::block_floats`] each).
    fn run(&self, groups: Range<usize>, out: &mut [f32]) -> Result<()> {
        let reader = self.weights.columns(&self.key)?;
        let [kh, kw] = self.winograd.as_ref().map_or(self.spec.kernel, |w| w.r);
        if reader.row_len() != self.ic * kh * kw || reader.rows() != self.oc {
            return Err(Error::Invalid(format!(
                "tensor `{}` has {} rows of {} values, not {} of {}x{kh}x{kw}",
                self.key,
                reader.rows(),
                reader.row_len(),
                self.oc,
                self.ic,
            )));
        }
        let width = self.spec.nr * BLOCK;
        let blocks = groups.zip(out.chunks_exact_mut(self.spec.block_floats().max(1)));
        if let Some(w) = &self.winograd {
            // A group's kernels, a few input channels at a time: read column-major (tap by
            // tap, `width` output channels each), transformed to every position.
            const CHANNELS: usize = 16;
            let (r, gf) = (kh * kw, self.spec.group_floats());
            let mut transform = WeightTransform::new(w);
            let mut taps = vec![0.0; CHANNELS * r * width];
            for (g, out) in blocks {
                let block = reader.block(self.spec.group_rows(g, self.oc), width)?;
                for i0 in (0..self.ic).step_by(CHANNELS) {
                    let n = CHANNELS.min(self.ic - i0);
                    block.read(i0 * r, 1, n * r, &mut taps, width)?;
                    for (i, taps) in (i0..i0 + n).zip(taps.chunks_exact(r * width)) {
                        transform.apply(taps, width, &mut out[i * width..], gf);
                    }
                }
            }
            return Ok(());
        }
        let runs = self.spec.column_runs(self.ic);
        // bf16: each group packed in f32 first, then paired and rounded into place.
        let bf16 = self.spec.dtype == Dtype::Bf16;
        let mut f32s = vec![0.0; if bf16 { self.spec.group_elems() } else { 0 }];
        for (g, out) in blocks {
            let block = reader.block(self.spec.group_rows(g, self.oc), width)?;
            let group = if bf16 { &mut f32s[..] } else { &mut *out };
            for run in &runs {
                block.read(run.first, run.step, run.count, &mut group[run.at..], width)?;
            }
            if bf16 {
                self.spec.to_bf16_pairs(&f32s, out);
                f32s.fill(0.0);
            }
            if self.round_bf16 {
                out.iter_mut().for_each(|v| *v = crate::ir::precision::bf16(*v));
            }
        }
        Ok(())
    }
}

/// What a task writes.
enum Work<'q, 'w> {
    /// Groups of a [`Pack`].
    Pack(&'q Pack<'w>, Range<usize>),
    /// A staged block (see [`Params`]), copied.
    Copy(Vec<f32>),
    /// Memory to map ([`mem::touch`]).
    Touch(&'q mut [Line]),
}

/// One task: its work and the floats it fills.
struct Task<'q, 'w> {
    work: Work<'q, 'w>,
    out: &'q mut [f32],
}

/// [`Pack`]s cut into tasks, and the staged blocks of the parameters, for threads to take
/// from ([`Queue::work`]).
pub struct Queue<'q, 'w> {
    tasks: Mutex<Vec<Task<'q, 'w>>>,
    error: Mutex<Option<Error>>,
    /// Maps the parameters' pages as the tasks reach them.
    prefault: mem::Prefault,
}

impl<'q, 'w> Queue<'q, 'w> {
    /// The tasks that write `packs` and the staged blocks into `params` (the blocks the
    /// planner reserved; they must not overlap).
    pub fn new(params: &'q mut Params, packs: &'q [Pack<'w>]) -> Result<Queue<'q, 'w>> {
        let staged = params.take_staged();
        Queue::with_blocks(params, staged, packs)
    }

    /// The tasks that write `packs` and copy `staged` (offset, values) into `params`.
    fn with_blocks(
        params: &'q mut [f32],
        staged: Vec<(usize, Vec<f32>)>,
        packs: &'q [Pack<'w>],
    ) -> Result<Queue<'q, 'w>> {
        let mut blocks: Vec<(usize, usize, Work)> = packs
            .iter()
            .map(|p| (p.at, p.spec.packed_floats(), Work::Pack(p, 0..p.spec.ocb / p.spec.nr)))
            .chain(staged.into_iter().map(|(at, v)| (at, v.len(), Work::Copy(v))))
            .collect();
        blocks.sort_by_key(|b| b.0);
        let mut tasks = Vec::new();
        let prefault = mem::Prefault::new(params);
        let (mut rest, mut base): (&mut [f32], usize) = (params, 0);
        for (at, n, work) in blocks {
            let Some(skip) = at.checked_sub(base).filter(|s| s + n <= rest.len()) else {
                return Err(Error::Invalid(format!("parameter blocks at {at} ({n} floats) overlap or overrun")));
            };
            let (mut block, tail) = std::mem::take(&mut rest)[skip..].split_at_mut(n);
            (rest, base) = (tail, at + n);
            match work {
                Work::Pack(pack, groups) => {
                    let gf = pack.spec.block_floats();
                    let per_task = (TASK_FLOATS / gf.max(1)).max(1);
                    for first in groups.clone().step_by(per_task) {
                        let last = (first + per_task).min(groups.end);
                        let (out, more) = std::mem::take(&mut block).split_at_mut((last - first) * gf);
                        block = more;
                        tasks.push(Task { work: Work::Pack(pack, first..last), out });
                    }
                }
                copy => tasks.push(Task { work: copy, out: block }),
            }
        }
        // Taken from the back: the first blocks first.
        tasks.reverse();
        Ok(Queue { tasks: Mutex::new(tasks), error: Mutex::new(None), prefault })
    }

    /// Also maps the pages of `mem` ([`mem::touch`]), after the other tasks.
    pub fn touching(mut self, mem: &'q mut [Line]) -> Queue<'q, 'w> {
        let tasks = self.tasks.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Taken from the back: after everything queued so far.
        let touches: Vec<Task> = mem::regions(mem).map(|m| Task { work: Work::Touch(m), out: &mut [] }).collect();
        tasks.splice(0..0, touches.into_iter().rev());
        self
    }

    /// Runs tasks until none is left (call it from every thread that should help).
    pub fn work(&self) {
        loop {
            let task = match self.tasks.lock() {
                Ok(mut tasks) => tasks.pop(),
                Err(_) => None,
            };
            let Some(Task { work, out }) = task else { return };
            let done = match work {
                Work::Pack(pack, groups) => {
                    self.prefault.ensure(out);
                    pack.run(groups, out)
                }
                Work::Copy(values) => {
                    out.copy_from_slice(&values);
                    Ok(())
                }
                Work::Touch(mem) => {
                    mem::touch(mem);
                    Ok(())
                }
            };
            if let Err(e) = done
                && let Ok(mut first) = self.error.lock()
            {
                first.get_or_insert(e);
            }
        }
    }

    /// Runs every task on `threads` threads (this one included) and reports the first error.
    pub fn run(self, threads: usize) -> Result<()> {
        std::thread::scope(|s| {
            for _ in 1..threads {
                s.spawn(|| self.work());
            }
            self.work();
        });
        self.finish()
    }

    /// The first error a task met, once every task has run.
    pub fn finish(self) -> Result<()> {
        let error = self.error.into_inner().map_err(|_| Error::Jit("a packing thread panicked".into()))?;
        let left = self.tasks.into_inner().map_or(1, |t| t.len());
        match error {
            Some(e) => Err(e),
            None if left > 0 => Err(Error::Jit(format!("{left} packing tasks did not run"))),
            None => Ok(()),
        }
    }
}

/// Threads to pack (and generate code) with: the cores there are, at most 8.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Conv2d, Op, Pad, Shape};
    use crate::target::tiled_conv::tests::spec;
    use crate::weights::tests::{add, with_input};

    /// Seeded weights for convolutions `a` (`oc_a` outputs) and `b` (`oc_b`) of `ic` inputs
    /// and a `k` kernel.
    fn weights(oc_a: usize, oc_b: usize, ic: usize, k: [usize; 2]) -> Weights {
        let (mut g, x) = with_input(Shape::nchw(ic, 9, 9));
        for (key, oc) in [("a", oc_a), ("b", oc_b)] {
            let conv = Conv2d {
                out_channels: oc,
                in_channels: ic,
                kernel: k,
                stride: [1, 1],
                pad: Pad::default(),
                groups: 1,
                key: key.into(),
                bias: false,
                epilogue: Default::default(),
                winograd: None,
            };
            let y = add(&mut g, Op::Conv2d(conv), &[x]);
            g.outputs.push((key.into(), y));
        }
        Weights::init(&g, 3)
    }

    /// Packing through the queue (generated tensors: plain, scaled, and concatenated with a
    /// block straddling the parts; and the same tensors in memory) gives what `pack_into`
    /// gives from the dense values, on any number of threads; staged blocks are copied.
    #[test]
    fn queued_packs_match_packing_the_dense_weights() {
        for (s, oc_a, oc_b, ic) in [
            (spec(2, 16, [3, 3], 4, 2), 24, 29, 20),
            (spec(1, 3, [7, 1], 2, 1), 7, 20, 3),
            (spec(3, 16, [1, 1], 3, 3), 40, 8, 48),
        ] {
            let oc = oc_a + oc_b;
            assert!(oc <= s.ocb * BLOCK);
            let mut w = weights(oc_a, oc_b, ic, s.kernel);
            let scale: Vec<f64> = (0..oc_a).map(|r| 0.5 + r as f64 * 0.01).collect();
            w.scale_rows("a.weight", &scale).unwrap();
            w.concat_rows("ab", &["a.weight", "b.weight"]).unwrap();
            let tensor = w.clone().get("ab").unwrap().clone();
            assert!(w.resident("ab").is_none());
            let mut dense = Weights::new();
            dense.insert("ab", tensor.clone());
            let mut want = vec![0.0; s.packed_floats()];
            s.pack_into(oc, ic, &tensor.data, &mut want);
            for (weights, threads) in [(&w, 1), (&w, 3), (&dense, 2)] {
                let mut lazy = weights.clone();
                lazy.retain(|k| k == "ab");
                let packs = [Pack {
                    at: 16,
                    spec: s.clone(),
                    oc,
                    ic,
                    weights: &lazy,
                    key: "ab".into(),
                    winograd: None,
                    round_bf16: false,
                }];
                let mut params = vec![7.0; 16 + s.packed_floats() + 16];
                params[16..16 + s.packed_floats()].fill(0.0);
                let staged = vec![(0, vec![1.0; 16]), (16 + s.packed_floats(), vec![2.0; 3])];
                Queue::with_blocks(&mut params, staged, &packs).unwrap().run(threads).unwrap();
                assert_eq!(params[16..16 + s.packed_floats()], want, "{s:?} {threads}");
                assert_eq!(params[..16], [1.0; 16]);
                assert_eq!(
                    params[16 + s.packed_floats()..],
                    [2.0, 2.0, 2.0, 7.0, 7.0, 7.0, 7.0, 7.0, 7.0, 7.0, 7.0, 7.0, 7.0, 7.0, 7.0, 7.0]
                );
            }
        }
    }

    /// Winograd weights transformed while packed (seeded, 3 and 6 groups of a `[g][pos]`
    /// layout, channels not a multiple of 16, tasks split inside the layer) equal the dense
    /// transform packed by `pack_rows_into`.
    #[test]
    fn queued_winograd_packs_match_the_dense_transform() {
        for (r, oc_a, oc_b, ic, nr) in [([3, 3], 20, 13, 21, 1), ([1, 7], 16, 32, 40, 2), ([5, 5], 5, 3, 3, 1)] {
            let oc = oc_a + oc_b;
            let mut w = weights(oc_a, oc_b, ic, r);
            w.concat_rows("ab", &["a.weight", "b.weight"]).unwrap();
            let dense = w.clone().get("ab").unwrap().data.clone();
            let (cb, ocb) = (ic.div_ceil(BLOCK), oc.div_ceil(BLOCK));
            let m = [if r[0] > 1 { 2 } else { 1 }, 2];
            let wg = WinogradSpec {
                cb,
                ocb,
                h: 9,
                w: 9,
                top: 0,
                left: 0,
                oh: 9 - r[0] + 1,
                ow: 9 - r[1] + 1,
                m,
                r,
                residual: None,
                relu: false,
                band: (9 - r[0] + 1).div_ceil(m[0]),
            };
            let mut gemm = spec(cb, 16, [1, 1], ocb, nr);
            (gemm.row_weights, gemm.oh, gemm.hp) = (true, wg.positions(), wg.positions());
            let mut want = vec![0.0; gemm.packed_floats()];
            gemm.pack_rows_into(oc, ic, &wg.transform_weights(oc, ic, &dense), &mut want);
            for threads in [1, 2] {
                let pack = Pack {
                    at: 0,
                    spec: gemm.clone(),
                    oc,
                    ic,
                    weights: &w,
                    key: "ab".into(),
                    winograd: Some(wg.clone()),
                    round_bf16: false,
                };
                // The packed storage starts zero (input channels past `ic` are not written).
                let mut params = vec![0.0; gemm.packed_floats()];
                let packs = [pack];
                Queue::with_blocks(&mut params, vec![], &packs).unwrap().run(threads).unwrap();
                assert_eq!(params, want, "{r:?} {threads}");
            }
        }
    }

    #[test]
    fn overlapping_blocks_are_refused() {
        let w = weights(16, 16, 16, [1, 1]);
        let s = spec(1, 16, [1, 1], 1, 1);
        let pack = |at| Pack {
            at,
            spec: s.clone(),
            oc: 16,
            ic: 16,
            weights: &w,
            key: "a.weight".into(),
            winograd: None,
            round_bf16: false,
        };
        let packs = [pack(0), pack(128)];
        let mut params = vec![0.0; 1024];
        assert!(Queue::with_blocks(&mut params, vec![], &packs).is_err());
        assert!(Queue::with_blocks(&mut params[..300], vec![], &packs[1..]).is_err(), "past the end");
        assert!(Queue::with_blocks(&mut params, vec![(250, vec![0.0; 8])], &packs[..1]).is_err(), "staged inside");
        assert!(Queue::with_blocks(&mut params, vec![(256, vec![0.0; 8])], &packs[..1]).is_ok());
    }
}
