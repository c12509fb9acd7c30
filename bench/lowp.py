#!/usr/bin/env python3
"""incc f32 and bf16 against OpenVINO f32 and bf16, each engine in its own process, alternating.

The models are incc's own seeded networks exported with `incc export --onnx` (no PyTorch
needed), so OpenVINO runs the same weights. For ROUNDS rounds every engine is timed once per
network (batch 1, THREADS threads, ITERS runs after warm-up); the medians of the per-round
medians are printed with the ratios incc bf16 / OpenVINO bf16 and incc f32 / incc bf16.
`--incc BIN` (repeatable) times further incc binaries in f32 (an A/B of two builds).

Needs `pip install numpy openvino`. From the repository root after `cargo build --release`:
    python3 bench/lowp.py [--threads 2] [--iters 20] [--rounds 3] [--incc OLD_BINARY] [NET ...]
"""
import argparse, json, os, statistics, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
INCC = os.path.join(ROOT, "target", "release", "incc")
NETS = ["googlenet_torchvision", "bn_inception", "inception_v3", "inception_v4",
        "inception_resnet_v1", "inception_resnet_v2"]

# Runs in its own process: one OpenVINO model, median ms of ITERS runs.
OV_WORKER = r"""
import sys, time, statistics, numpy as np, openvino as ov
path, prec, threads, iters = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
core = ov.Core()
cfg = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
       "INFERENCE_PRECISION_HINT": prec}
model = core.read_model(path)
ps = model.input(0).get_partial_shape()
shape = [1] + [ps[i].get_length() for i in range(1, len(ps))]
model.reshape(shape)
m = core.compile_model(model, "CPU", cfg)
x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
req = m.create_infer_request()
for _ in range(3):
    req.infer({0: x})
ts = []
for _ in range(iters):
    t = time.perf_counter(); req.infer({0: x}); ts.append((time.perf_counter() - t) * 1e3)
print(statistics.median(ts))
"""


def incc_ms(binary, net, precision, threads, iters):
    cmd = [binary, "bench", os.path.join(ROOT, "architectures", f"{net}.incep"), "--threads", str(threads),
           "--iters", str(iters), "--format", "json"]
    if precision != "f32":
        cmd += ["--precision", precision]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out)["median_ms"]


def ov_ms(path, precision, threads, iters):
    out = subprocess.run([sys.executable, "-c", OV_WORKER, path, precision, str(threads), str(iters)],
                         capture_output=True, text=True, check=True).stdout
    return float(out.split()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("nets", nargs="*", default=NETS)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--incc", action="append", default=[], help="another incc binary, timed in f32")
    ap.add_argument("--no-ov", action="store_true", help="incc only")
    a = ap.parse_args()
    out = os.path.join(HERE, "out")
    os.makedirs(out, exist_ok=True)
    engines = [("incc f32", lambda n, p: incc_ms(INCC, n, "f32", a.threads, a.iters)),
               ("incc bf16", lambda n, p: incc_ms(INCC, n, "bf16", a.threads, a.iters))]
    for k, b in enumerate(a.incc):
        engines.append((f"other{k} f32", lambda n, p, b=b: incc_ms(b, n, "f32", a.threads, a.iters)))
    if not a.no_ov:
        engines += [("OV f32", lambda n, p: ov_ms(p, "f32", a.threads, a.iters)),
                    ("OV bf16", lambda n, p: ov_ms(p, "bf16", a.threads, a.iters))]
    print("| net | " + " | ".join(e for e, _ in engines) + " | incc bf16 / OV bf16 | incc f32 / bf16 |")
    print("|---" * (len(engines) + 3) + "|")
    for net in a.nets:
        path = os.path.join(out, f"{net}.onnx")
        if not a.no_ov and not os.path.exists(path):
            subprocess.run([INCC, "export", os.path.join(ROOT, "architectures", f"{net}.incep"), "--onnx", path],
                           check=True, capture_output=True)
        runs = {e: [] for e, _ in engines}
        for _ in range(a.rounds):
            for e, f in engines:
                runs[e].append(f(net, path))
        med = {e: statistics.median(v) for e, v in runs.items()}
        ov = med.get("OV bf16")
        cells = " | ".join(f"{med[e]:.1f}" for e, _ in engines)
        r1 = f"{med['incc bf16'] / ov:.2f}" if ov else "-"
        print(f"| {net} | {cells} | {r1} | {med['incc f32'] / med['incc bf16']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
