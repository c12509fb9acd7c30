#!/usr/bin/env python3
"""Checks `incc export --onnx` against incc itself, with ONNX Runtime as the second engine.

For each .incep file (default: the seven in architectures/) it
  1. exports the network with its seeded default weights (`incc export FILE --onnx M.onnx`),
  2. validates the file with `onnx.checker.check_model(full_check=True)` (schema, opset,
     shape inference),
  3. runs it with ONNX Runtime (CPU) on a seeded standard-normal input, and
  4. runs `incc run FILE --input x.npy --output y.npy` (the JIT, same weights) on that input,
then asserts, for every output, max|onnx - incc| <= TOL * max|incc| (TOL = 1e-4), and that the
model's symbolic batch works: a batch of two inputs gives, row by row, what each gives alone.
It prints one table row per output and exits 1 if any check fails.

    pip install onnxruntime onnx numpy           # (CI pins versions: see .ci/run)
    cargo build --release
    python3 conformance/onnx_check.py            # the seven architectures
    python3 conformance/onnx_check.py -O 2 tests/user/*.incep tests/fixtures/*/net.incep

`tests/onnx.rs` runs it on the small networks of the repository at -O0 and -O2.
"""

import argparse
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort

ROOT = pathlib.Path(__file__).resolve().parent.parent


def incc(binary, *args):
    """Runs incc; on failure prints its stderr and raises."""
    r = subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"incc {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stderr}")
    return r


def ratio(found, expected):
    """max|found - expected| / max|expected| (or the bare difference if expected is all 0)."""
    diff = float(np.max(np.abs(found.astype(np.float64) - expected.astype(np.float64))))
    scale = float(np.max(np.abs(expected)))
    return diff, scale, (diff / scale if scale > 0 else diff)


def check(binary, net, tmp, opt, seed, tol):
    """Exports, runs and compares one network; returns its table rows (ok flag last)."""
    model_path = tmp / f"{net.stem}-{net.parent.name}.onnx"
    t0 = time.perf_counter()
    incc(binary, "export", net, "--onnx", model_path, "-O", opt)
    export_s = time.perf_counter() - t0
    onnx.checker.check_model(onnx.load(str(model_path)), full_check=True)
    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    dims = inp.shape[1:]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal([1, *dims]).astype(np.float32)
    x2 = rng.standard_normal([1, *dims]).astype(np.float32)
    x_path, y_path = tmp / "x.npy", tmp / "y.npy"
    np.save(x_path, x)
    incc(binary, "run", net, "--input", x_path, "--output", y_path)
    names = [o.name for o in sess.get_outputs()]
    got = sess.run(None, {inp.name: x})
    both = sess.run(None, {inp.name: np.concatenate([x, x2])})
    alone2 = sess.run(None, {inp.name: x2})
    rows = []
    for i, name in enumerate(names):
        expected = np.load(y_path if i == 0 else tmp / f"y_{name}.npy")
        found = got[i]
        ok = found.shape == expected.shape
        diff, scale, r = ratio(found, expected) if ok else (float("nan"),) * 3
        ok = ok and r <= tol
        # The batch of two: row 0 is x's output, row 1 is x2's.
        _, _, b0 = ratio(both[i][:1], found)
        _, _, b1 = ratio(both[i][1:], alone2[i])
        batch_ok = max(b0, b1) <= tol
        rows.append((net, name, "x".join(map(str, expected.shape)), scale, diff, r, max(b0, b1),
                     model_path.stat().st_size, export_s, ok and batch_ok))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="*", type=pathlib.Path, help="the .incep files (default: architectures/*.incep)")
    ap.add_argument("--incc", type=pathlib.Path, default=ROOT / "target" / "release" / "incc", help="the incc binary")
    ap.add_argument("-O", dest="opt", default="0", choices=["0", "1", "2"], help="optimisation level of the export")
    ap.add_argument("--seed", type=int, default=0, help="seed of the input")
    ap.add_argument("--tol", type=float, default=1e-4, help="allowed max|diff| / max|incc output|")
    args = ap.parse_args()
    files = args.files or sorted((ROOT / "architectures").glob("*.incep"))
    if not args.incc.exists():
        sys.exit(f"{args.incc}: no incc binary (run `cargo build --release` or pass --incc)")
    print(f"onnxruntime {ort.__version__}, onnx {onnx.__version__}, export -O{args.opt}, tolerance {args.tol:g}")
    header = ("network", "output", "shape", "max|incc|", "max|diff|", "ratio", "batch ratio", "MB", "export s", "")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    passed = failed = 0
    with tempfile.TemporaryDirectory() as d:
        for net in files:
            try:
                rows = check(args.incc, net, pathlib.Path(d), args.opt, args.seed, args.tol)
            except Exception as e:  # one network's failure is reported, the others still run
                print(f"| {net} | error: {e} |")
                failed += 1
                continue
            for (n, name, shape, scale, diff, r, b, size, secs, ok) in rows:
                print(f"| {n.stem if n.parent.name == 'architectures' else n} | {name} | {shape} | {scale:.4g} | "
                      f"{diff:.3g} | {r:.2e} | {b:.2e} | {size / 1e6:.1f} | {secs:.2f} | {'ok' if ok else 'FAIL'} |")
                passed += ok
                failed += not ok
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
