//! The C entry points of an object, generated as CLIF: `P_create`, `P_run`, `P_destroy` and
//! the params-file loader they share.
//!
//! An instance is one 64-byte-aligned block from `posix_memalign`:
//!
//! ```text
//!   +0   float *params        the embedded parameters, or the loaded copy
//!   +8   float *owned_params  the loaded copy (freed by P_destroy), or NULL
//!   +64  arena                Plan::arena_bytes, zeroed by P_create
//! ```
//!
//! `P_run` is straight-line code: the length checks, one loop nest per input converting
//! NCHW to the blocked layout, then for every [`Step`] either a `memset` or a direct call of
//! its kernel on items `0..items` with an argument table built in a stack slot (arena base +
//! offset, params base + offset, `&powf` / `&expf`), then one loop nest per output back to
//! NCHW. Everything the plan fixes is a constant in the code.

use super::header::Tensor;
use crate::error::{Error, Result};
use crate::ir::layout::BLOCK;
use crate::target::clif::{add, add_scaled, for_n, ic};
use crate::target::plan::{Arg, Helper, Plan, Slot, Step, cpad};
use cranelift_codegen::Context;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    AbiParam, FuncRef, GlobalValue, InstBuilder, MemFlagsData, StackSlotData, StackSlotKind, Type, Value, types,
};
use cranelift_codegen::isa::TargetFrontendConfig;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{DataId, FuncId, Linkage, Module};
use cranelift_object::ObjectModule;
use std::collections::HashMap;

const I32: Type = types::I32;
const I64: Type = types::I64;

/// Bytes before the arena in an instance block.
const HEAD: i64 = 64;
/// Offset of the params pointer in an instance.
const PARAMS_AT: i32 = 0;
/// Offset of the owned params pointer in an instance.
const OWNED_AT: i32 = 8;

/// The libc and libm functions the entry points may call: name, parameter and result types.
const LIBC: &[(&str, &[Type], &[Type])] = &[
    ("posix_memalign", &[I64, I64, I64], &[I32]),
    ("free", &[I64], &[]),
    ("memset", &[I64, I32, I64], &[I64]),
    ("fopen", &[I64, I64], &[I64]),
    ("fread", &[I64, I64, I64, I64], &[I64]),
    ("fclose", &[I64], &[I32]),
    ("powf", &[types::F32, types::F32], &[types::F32]),
    ("expf", &[types::F32], &[types::F32]),
];

/// What the entry points need from the object being built.
pub(super) struct Parts<'a> {
    /// The symbol prefix `P`.
    pub prefix: &'a str,
    /// The plan whose steps `P_run` performs.
    pub plan: &'a Plan,
    /// One function per [`Plan::kernels`] entry.
    pub kernels: &'a [FuncId],
    /// The embedded parameters (64-byte aligned).
    pub params: DataId,
    /// The params file's expected header words: magic, version, count, fingerprint.
    pub header_words: [u64; 4],
    /// Inputs and outputs with their offsets in the C buffers, in plan order.
    pub inputs: &'a [Tensor],
    /// See `inputs`.
    pub outputs: &'a [Tensor],
}

/// Generates the entry points into `module`; returns their machine code bytes.
pub(super) fn define(module: &mut ObjectModule, parts: &Parts) -> Result<usize> {
    let target = module.isa().frontend_config();
    let mut g = Gen { module, fbc: FunctionBuilderContext::new(), libc: HashMap::new(), code_bytes: 0, target };
    let p = parts.prefix;
    let load = g.declare(&format!("{p}_load_params"), Linkage::Local, &[I64], &[I64])?;
    let create = g.declare(&format!("{p}_create"), Linkage::Export, &[I64], &[I64])?;
    let run = g.declare(&format!("{p}_run"), Linkage::Export, &[I64, I64, I64, I64, I64], &[I32])?;
    let destroy = g.declare(&format!("{p}_destroy"), Linkage::Export, &[I64], &[])?;
    let mode = g.module.declare_data(&format!("{p}_mode_rb"), Linkage::Local, false, false).map_err(jit_err)?;
    let mut d = cranelift_module::DataDescription::new();
    d.define(b"rb\0".to_vec().into_boxed_slice());
    g.module.define_data(mode, &d).map_err(jit_err)?;

    g.load_params(load, mode, parts.header_words)?;
    g.create(create, load, parts.params, parts.plan.arena_bytes)?;
    g.run(run, parts)?;
    g.destroy(destroy)?;
    Ok(g.code_bytes)
}

fn jit_err(e: impl std::fmt::Debug) -> Error {
    Error::Jit(format!("object: {e:?}"))
}

/// Loads and stores in memory the entry points own or the C caller passed (aligned floats and
/// pointers, never trapping by the ABI's contract).
fn mf() -> MemFlagsData {
    MemFlagsData::trusted()
}

struct Gen<'m> {
    module: &'m mut ObjectModule,
    fbc: FunctionBuilderContext,
    libc: HashMap<&'static str, FuncId>,
    code_bytes: usize,
    target: TargetFrontendConfig,
}

/// Function references usable in the function being built.
struct Refs {
    libc: HashMap<&'static str, FuncRef>,
    funcs: Vec<FuncRef>,
    data: Vec<GlobalValue>,
}

impl Refs {
    fn libc(&self, name: &str) -> FuncRef {
        self.libc[name]
    }
}

impl Gen<'_> {
    fn signature(&self, params: &[Type], returns: &[Type]) -> cranelift_codegen::ir::Signature {
        let mut sig = self.module.make_signature();
        sig.params.extend(params.iter().map(|&t| AbiParam::new(t)));
        sig.returns.extend(returns.iter().map(|&t| AbiParam::new(t)));
        sig
    }

    fn declare(&mut self, name: &str, linkage: Linkage, params: &[Type], returns: &[Type]) -> Result<FuncId> {
        let sig = self.signature(params, returns);
        self.module.declare_function(name, linkage, &sig).map_err(jit_err)
    }

    /// Builds function `id` (signature `params -> returns`): `body` gets the builder, the
    /// references to the named libc functions, `funcs` and `data`, and the parameters.
    #[allow(clippy::too_many_arguments)]
    fn build(
        &mut self,
        id: FuncId,
        params: &[Type],
        returns: &[Type],
        libc: &[&'static str],
        funcs: &[FuncId],
        data: &[DataId],
        body: impl FnOnce(&mut FunctionBuilder, &Refs, &[Value]),
    ) -> Result<()> {
        let mut ctx = Context::new();
        ctx.func.signature = self.signature(params, returns);
        let mut refs = Refs { libc: HashMap::new(), funcs: Vec::new(), data: Vec::new() };
        for &name in libc {
            let fid = match self.libc.get(name) {
                Some(&f) => f,
                None => {
                    let (_, ps, rs) = LIBC.iter().find(|l| l.0 == name).ok_or_else(|| jit_err(name))?;
                    let f = self.declare(name, Linkage::Import, ps, rs)?;
                    self.libc.insert(name, f);
                    f
                }
            };
            refs.libc.insert(name, self.module.declare_func_in_func(fid, &mut ctx.func));
        }
        for &f in funcs {
            refs.funcs.push(self.module.declare_func_in_func(f, &mut ctx.func));
        }
        for &d in data {
            refs.data.push(self.module.declare_data_in_func(d, &mut ctx.func));
        }
        {
            let mut b = FunctionBuilder::new(&mut ctx.func, &mut self.fbc);
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            let args = b.block_params(entry).to_vec();
            body(&mut b, &refs, &args);
            b.seal_all_blocks();
            b.finalize(self.target);
        }
        self.module.define_function(id, &mut ctx).map_err(jit_err)?;
        self.code_bytes += ctx.compiled_code().map_or(0, |c| c.code_buffer().len());
        Ok(())
    }

    /// `void *P_load_params(const char *path)`: the checked contents of a params file in a
    /// 64-byte-aligned block, or NULL.
    fn load_params(&mut self, id: FuncId, mode: DataId, words: [u64; 4]) -> Result<()> {
        let count = words[2] as i64;
        let bytes = ((words[2] as usize * 4).max(64).div_ceil(64) * 64) as i64;
        let libc = ["fopen", "fread", "fclose", "posix_memalign", "free"];
        self.build(id, &[I64], &[I64], &libc, &[], &[mode], |b, r, a| {
            let path = a[0];
            let hdr = b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, 40, 3));
            let rb = b.ins().symbol_value(I64, r.data[0]);
            let f = call1(b, r.libc("fopen"), &[path, rb]);
            let none = b.ins().icmp_imm_s(IntCC::Equal, f, 0);
            return_if(b, none, &[I64], 0);
            // Header: 32 bytes, each word as expected.
            let h = b.ins().stack_addr(I64, hdr, 0);
            let (one, n32) = (ic(b, 1), ic(b, 32));
            let got = call1(b, r.libc("fread"), &[h, one, n32, f]);
            let mut ok = b.ins().icmp_imm_s(IntCC::Equal, got, 32);
            for (i, &w) in words.iter().enumerate() {
                let v = b.ins().load(I64, mf(), h, (i * 8) as i32);
                let wv = ic(b, w as i64);
                let eq = b.ins().icmp(IntCC::Equal, v, wv);
                ok = b.ins().band(ok, eq);
            }
            let close_fail = b.create_block();
            let body = b.create_block();
            b.ins().brif(ok, body, &[], close_fail, &[]);
            b.switch_to_block(close_fail);
            b.ins().call(r.libc("fclose"), &[f]);
            let zero = ic(b, 0);
            b.ins().return_(&[zero]);
            // The floats, then nothing more.
            b.switch_to_block(body);
            let mem_at = b.ins().stack_addr(I64, hdr, 32);
            let (align, size) = (ic(b, 64), ic(b, bytes));
            let rc = call1(b, r.libc("posix_memalign"), &[mem_at, align, size]);
            let failed = b.ins().icmp_imm_s(IntCC::NotEqual, rc, 0);
            let read = b.create_block();
            b.ins().brif(failed, close_fail, &[], read, &[]);
            b.switch_to_block(read);
            let buf = b.ins().load(I64, mf(), h, 32);
            let (four, n) = (ic(b, 4), ic(b, count));
            let got = call1(b, r.libc("fread"), &[buf, four, n, f]);
            let extra = call1(b, r.libc("fread"), &[h, one, one, f]);
            b.ins().call(r.libc("fclose"), &[f]);
            let full = b.ins().icmp_imm_s(IntCC::Equal, got, count);
            let end = b.ins().icmp_imm_s(IntCC::Equal, extra, 0);
            let good = b.ins().band(full, end);
            let (done, bad) = (b.create_block(), b.create_block());
            b.ins().brif(good, done, &[], bad, &[]);
            b.switch_to_block(bad);
            b.ins().call(r.libc("free"), &[buf]);
            let zero = ic(b, 0);
            b.ins().return_(&[zero]);
            b.switch_to_block(done);
            b.ins().return_(&[buf]);
        })
    }

    /// `P_model *P_create(const char *params_path)`.
    fn create(&mut self, id: FuncId, load: FuncId, params: DataId, arena_bytes: usize) -> Result<()> {
        let total = HEAD + arena_bytes as i64;
        let libc = ["posix_memalign", "memset", "free"];
        self.build(id, &[I64], &[I64], &libc, &[load], &[params], |b, r, a| {
            let path = a[0];
            let slot = b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, 8, 3));
            let at = b.ins().stack_addr(I64, slot, 0);
            let (align, size) = (ic(b, 64), ic(b, total));
            let rc = call1(b, r.libc("posix_memalign"), &[at, align, size]);
            let failed = b.ins().icmp_imm_s(IntCC::NotEqual, rc, 0);
            return_if(b, failed, &[I64], 0);
            let m = b.ins().load(I64, mf(), at, 0);
            let z = b.ins().iconst(I32, 0);
            b.ins().call(r.libc("memset"), &[m, z, size]);
            let (embedded, from_file) = (b.create_block(), b.create_block());
            b.ins().brif(path, from_file, &[], embedded, &[]);
            b.switch_to_block(embedded);
            let pv = b.ins().symbol_value(I64, r.data[0]);
            b.ins().store(mf(), pv, m, PARAMS_AT);
            b.ins().return_(&[m]);
            b.switch_to_block(from_file);
            let p = call1(b, r.funcs[0], &[path]);
            let (fail, ok) = (b.create_block(), b.create_block());
            b.ins().brif(p, ok, &[], fail, &[]);
            b.switch_to_block(fail);
            b.ins().call(r.libc("free"), &[m]);
            let zero = ic(b, 0);
            b.ins().return_(&[zero]);
            b.switch_to_block(ok);
            b.ins().store(mf(), p, m, PARAMS_AT);
            b.ins().store(mf(), p, m, OWNED_AT);
            b.ins().return_(&[m]);
        })
    }

    /// `void P_destroy(P_model *)`.
    fn destroy(&mut self, id: FuncId) -> Result<()> {
        self.build(id, &[I64], &[], &["free"], &[], &[], |b, r, a| {
            let m = a[0];
            let null = b.ins().icmp_imm_s(IntCC::Equal, m, 0);
            return_if(b, null, &[], 0);
            let owned = b.ins().load(I64, mf(), m, OWNED_AT);
            b.ins().call(r.libc("free"), &[owned]);
            b.ins().call(r.libc("free"), &[m]);
            b.ins().return_(&[]);
        })
    }

    /// `int P_run(P_model *, const float *input, size_t input_len, float *output, size_t
    /// output_len)`.
    fn run(&mut self, id: FuncId, parts: &Parts) -> Result<()> {
        let plan = parts.plan;
        let uses = |h: Helper| {
            plan.steps.iter().any(|s| matches!(s, Step::Kernel { args, .. } if args.contains(&Arg::Helper(h))))
        };
        let (powf, expf) = (uses(Helper::Powf), uses(Helper::Expf));
        let mut libc = vec!["memset"];
        libc.extend(powf.then_some("powf"));
        libc.extend(expf.then_some("expf"));
        let in_len: usize = parts.inputs.iter().map(|t| t.shape.numel()).sum();
        let out_len: usize = parts.outputs.iter().map(|t| t.shape.numel()).sum();
        let max_args = plan
            .steps
            .iter()
            .map(|s| if let Step::Kernel { args, .. } = s { args.len() } else { 0 })
            .max()
            .unwrap_or(0);
        let table_bytes = (max_args.max(1) * 8) as u32;
        self.build(id, &[I64, I64, I64, I64, I64], &[I32], &libc, parts.kernels, &[], |b, r, a| {
            let (m, input, input_len, output, output_len) = (a[0], a[1], a[2], a[3], a[4]);
            let null = b.ins().icmp_imm_s(IntCC::Equal, m, 0);
            return_if(b, null, &[I32], 3);
            let bad = b.ins().icmp_imm_s(IntCC::NotEqual, input_len, in_len as i64);
            return_if(b, bad, &[I32], 1);
            let bad = b.ins().icmp_imm_s(IntCC::NotEqual, output_len, out_len as i64);
            return_if(b, bad, &[I32], 2);
            let a_null = b.ins().icmp_imm_s(IntCC::Equal, input, 0);
            let b_null = b.ins().icmp_imm_s(IntCC::Equal, output, 0);
            let null = b.ins().bor(a_null, b_null);
            return_if(b, null, &[I32], 3);

            let arena = add(b, m, HEAD);
            let params = b.ins().load(I64, mf(), m, PARAMS_AT);
            let zero32 = b.ins().iconst(I32, 0);
            for (t, (_, _, slot)) in parts.inputs.iter().zip(&plan.inputs) {
                let dst = add(b, arena, slot.offset.0 as i64);
                let len = ic(b, (cpad(slot.c) * slot.pix * 4) as i64);
                b.ins().call(r.libc("memset"), &[dst, zero32, len]);
                let src = add(b, input, (t.offset * 4) as i64);
                convert(b, src, dst, slot, true);
            }

            let helper =
                |b: &mut FunctionBuilder, on: bool, name: &str| on.then(|| b.ins().func_addr(I64, r.libc(name)));
            let (powf_at, expf_at) = (helper(b, powf, "powf"), helper(b, expf, "expf"));
            let table_slot = b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, table_bytes, 3));
            let table = b.ins().stack_addr(I64, table_slot, 0);
            for s in &plan.steps {
                match s {
                    Step::Zero { offset, len } => {
                        let at = add(b, arena, offset.0 as i64);
                        let n = ic(b, *len as i64);
                        b.ins().call(r.libc("memset"), &[at, zero32, n]);
                    }
                    Step::Kernel { kernel, args, items, .. } => {
                        for (i, arg) in args.iter().enumerate() {
                            let v = match *arg {
                                Arg::Arena(o) => add(b, arena, o.0 as i64),
                                Arg::Param(o) => add(b, params, o.0 as i64),
                                // Present whenever a step names them (`uses` above).
                                Arg::Helper(Helper::Powf) => powf_at.unwrap_or(arena),
                                Arg::Helper(Helper::Expf) => expf_at.unwrap_or(arena),
                                // Portable plans call no wide tiles; unread arguments are null.
                                Arg::Tile(_) | Arg::Null => ic(b, 0),
                                Arg::Value(v) => ic(b, v as i64),
                            };
                            b.ins().store(mf(), v, table, (i * 8) as i32);
                        }
                        let (begin, end) = (ic(b, 0), ic(b, *items as i64));
                        b.ins().call(r.funcs[kernel.index()], &[table, begin, end]);
                    }
                }
            }

            for (t, (_, _, slot)) in parts.outputs.iter().zip(&plan.outputs) {
                let src = add(b, arena, slot.offset.0 as i64);
                let dst = add(b, output, (t.offset * 4) as i64);
                convert(b, dst, src, slot, false);
            }
            let ok = b.ins().iconst(I32, 0);
            b.ins().return_(&[ok]);
        })
    }
}

/// Calls `f` and returns its single result.
fn call1(b: &mut FunctionBuilder, f: FuncRef, args: &[Value]) -> Value {
    let call = b.ins().call(f, args);
    b.inst_results(call)[0]
}

/// `if cond { return code }` (no value when `returns` is empty); continues in a new block.
fn return_if(b: &mut FunctionBuilder, cond: Value, returns: &[Type], code: i64) {
    let (exit, cont) = (b.create_block(), b.create_block());
    b.ins().brif(cond, exit, &[], cont, &[]);
    b.switch_to_block(exit);
    match returns.first() {
        Some(&t) => {
            let v = b.ins().iconst(t, code);
            b.ins().return_(&[v]);
        }
        None => {
            b.ins().return_(&[]);
        }
    }
    b.switch_to_block(cont);
}

/// Copies the `slot.c x slot.pix` map between NCHW floats at `flat` and the blocked layout
/// at `blocked` (element `(c / BLOCK) * pix * BLOCK + p * BLOCK + c % BLOCK`), in the
/// direction `to_blocked` says. Padded channels are not touched.
fn convert(b: &mut FunctionBuilder, flat: Value, blocked: Value, slot: &Slot, to_blocked: bool) {
    let pix = slot.pix as i64;
    let lanes = BLOCK as i64;
    for_n(b, slot.c, |b, c| {
        let flat_row = add_scaled(b, flat, c, pix * 4);
        let block = b.ins().udiv_imm_u(c, lanes);
        let lane = b.ins().urem_imm_u(c, lanes);
        let at = add_scaled(b, blocked, block, pix * lanes * 4);
        let blocked_row = add_scaled(b, at, lane, 4);
        for_n(b, slot.pix, |b, p| {
            let f = add_scaled(b, flat_row, p, 4);
            let q = add_scaled(b, blocked_row, p, lanes * 4);
            let (from, to) = if to_blocked { (f, q) } else { (q, f) };
            let v = b.ins().load(types::F32, mf(), from, 0);
            b.ins().store(mf(), v, to, 0);
        });
    });
}
