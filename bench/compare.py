#!/usr/bin/env python3
"""incc vs ONNX Runtime on the same networks, alternating in one run (batch 1, fp32).

Each reference model (conformance/models.py) is exported to ONNX (opset 17, the legacy
exporter, as in the peers table) once and cached in bench/out/. Then, for ROUNDS rounds, ONNX
Runtime and `incc bench` are timed one after the other on the same machine, and the medians of
the per-round medians are printed with the ratio incc / ORT (below 1: incc is faster).

Needs the PyTorch environment of conformance/torch_parity.py plus `pip install onnx onnxruntime`.
Run from the repository root after `cargo build --release`:
    /opt/torchenv/bin/python bench/compare.py [--threads 2] [--iters 20] [--rounds 3] [NET ...]
"""
import argparse, json, os, statistics, subprocess, sys, time
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "conformance"))
from models import build, NAMES  # noqa: E402


def export(name, out):
    path = os.path.join(out, f"{name}.onnx")
    if os.path.exists(path):
        return path
    import torch
    model, chw = build(name)
    model.eval()
    x = torch.randn(1, *chw)
    torch.onnx.export(model, x, path, opset_version=17, dynamo=False, do_constant_folding=True,
                      input_names=["input"], output_names=["output"])
    return path


def ort_median(path, chw, threads, iters):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((1, *chw)).astype(np.float32)
    for _ in range(3):
        sess.run(None, {"input": x})
    ts = []
    for _ in range(iters):
        t = time.perf_counter()
        sess.run(None, {"input": x})
        ts.append((time.perf_counter() - t) * 1e3)
    return statistics.median(ts)


def incc_median(incc, name, threads, iters):
    arch = os.path.join(ROOT, "architectures", f"{name}.incep")
    r = subprocess.run([incc, "bench", arch, "--threads", str(threads), "--iters", str(iters), "--format", "json"],
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout)["median_ms"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("nets", nargs="*", default=NAMES)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--incc", default=os.path.join(ROOT, "target", "release", "incc"))
    args = ap.parse_args()
    out = os.path.join(HERE, "out")
    os.makedirs(out, exist_ok=True)
    # Per round, the two engines ran back to back: the ratio of a round is paired, so the
    # spread of those ratios shows how far the machine's noise moves the comparison.
    print("| net | incc median ms | ONNX Runtime median ms | incc / ORT | per-round ratios, min-max |")
    print("|---|---|---|---|---|")
    for name in args.nets:
        _, chw = build(name)
        path = export(name, out)
        a, b = [], []
        for _ in range(args.rounds):
            a.append(incc_median(args.incc, name, args.threads, args.iters))
            b.append(ort_median(path, chw, args.threads, args.iters))
        ma, mb = statistics.median(a), statistics.median(b)
        ratios = [x / y for x, y in zip(a, b)]
        print(f"| {name} | {ma:.1f} | {mb:.1f} | {ma / mb:.2f} | {min(ratios):.2f}-{max(ratios):.2f} |", flush=True)


if __name__ == "__main__":
    main()
