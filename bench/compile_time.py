#!/usr/bin/env python3
"""Compile time: `incc compile` against ONNX Runtime creating a session, alternating in one run.

Each round runs, one after the other, `incc compile NET.incep --format json` (its `total_ms`:
parse to packed weights and mapped arena, the model ready to run) and a fresh Python process
that times `onnxruntime.InferenceSession(NET.onnx)` (reading the cached ONNX file, optimising
the graph and packing its weights: the session ready to run). With `--idle S`, each of them
runs after S seconds of idleness, which on this VM costs memory mapping time (the host takes
idle free memory back). Prints the medians, their ratio and each round's paired ratio.

Needs `pip install onnx onnxruntime` and the ONNX files bench/compare.py exports into
bench/out/ (run it once). From the repository root after `cargo build --release`:
    /opt/torchenv/bin/python bench/compile_time.py [--rounds 7] [--idle 0] [--threads 2] [NET ...]
"""
import argparse, json, os, statistics, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

ORT_SESSION = """
import sys, time, onnxruntime as ort
so = ort.SessionOptions()
so.intra_op_num_threads = int(sys.argv[2])
so.inter_op_num_threads = 1
t = time.perf_counter()
ort.InferenceSession(sys.argv[1], so, providers=["CPUExecutionProvider"])
print((time.perf_counter() - t) * 1e3)
"""


def incc_ms(incc, name, threads):
    arch = os.path.join(ROOT, "architectures", f"{name}.incep")
    r = subprocess.run([incc, "compile", arch, "--threads", str(threads), "--format", "json"],
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout)["total_ms"]


def ort_ms(name, threads):
    path = os.path.join(HERE, "out", f"{name}.onnx")
    r = subprocess.run([sys.executable, "-c", ORT_SESSION, path, str(threads)], capture_output=True, text=True,
                       check=True)
    return float(r.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("nets", nargs="*", default=["inception_v4"])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--idle", type=float, default=0.0, help="seconds of idleness before each measurement")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--incc", default=os.path.join(ROOT, "target", "release", "incc"))
    args = ap.parse_args()
    print("| net | idle s | incc compile ms | ORT session ms | incc / ORT | per-round ratios, min-max |")
    print("|---|---|---|---|---|---|")
    for name in args.nets:
        a, b = [], []
        for _ in range(args.rounds):
            time.sleep(args.idle)
            a.append(incc_ms(args.incc, name, args.threads))
            time.sleep(args.idle)
            b.append(ort_ms(name, args.threads))
        ratios = [x / y for x, y in zip(a, b)]
        ma, mb = statistics.median(a), statistics.median(b)
        print(f"| {name} | {args.idle:g} | {ma:.1f} (min {min(a):.1f}, max {max(a):.1f}) | {mb:.1f} | "
              f"{ma / mb:.2f} | {min(ratios):.2f}-{max(ratios):.2f} |", flush=True)


if __name__ == "__main__":
    main()
