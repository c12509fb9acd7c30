#!/usr/bin/env python3
"""incc vs PyTorch on the six bundled architectures that have a PyTorch reference.

For each network: build the reference model (models.py) with random weights, give its batch
norms realistic running statistics (re-estimated on random-normal batches: the raw init makes
outputs degenerate), save its state_dict unchanged with safetensors and a random input as .npy,
run `incc run --engine ENGINE`, and print max|incc - torch| / max|torch|. Required: <= 1e-4.
With `--precision f64`, incc's reference engine computes in float64 and is compared with the
same torch model run in float64 (`model.double()`): rounding is then out of the picture and
the comparison checks the semantics of every layer.

Each row also compares incc and torch's own float32 result with the same torch model run in
float64: a network with random weights can amplify rounding (Inception-v4's error doubles per
block), and then no float32 engine, torch included, is within 1e-4 of another.

Not part of CI's default path (it needs PyTorch). Install:
    python3 -m venv /opt/torchenv
    /opt/torchenv/bin/pip install torch torchvision timm safetensors numpy
    /opt/torchenv/bin/pip install --no-deps pretrainedmodels facenet-pytorch
    /opt/torchenv/bin/pip install six munch requests tqdm
Run (from the repository root, after `cargo build --release`):
    /opt/torchenv/bin/python conformance/torch_parity.py [--engine reference|jit] [NET ...]
"""
import argparse, copy, os, subprocess, sys, time
import numpy as np
import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from models import build, NAMES  # noqa: E402


def realistic_bn(model, chw, batches=3, batch=4, seed=0):
    """Re-estimate every BN's running mean/var on random-normal inputs (cumulative average)."""
    g = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            model(torch.randn(batch, *chw, generator=g))
    model.eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("nets", nargs="*", default=NAMES)
    ap.add_argument("--engine", default="reference")
    ap.add_argument("--precision", default="f32", choices=["f32", "f64"],
                    help="f64: incc's reference engine in float64 against torch in float64")
    ap.add_argument("--incc", default=os.path.join(ROOT, "target", "release", "incc"))
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)
    worst = 0.0
    rows = []
    for name in args.nets:
        model, chw = build(name)
        realistic_bn(model, chw)
        sd = {k: v.contiguous() for k, v in model.state_dict().items()}
        wpath = os.path.join(args.out, f"{name}.safetensors")
        save_file(sd, wpath)
        x = torch.randn(1, *chw, generator=torch.Generator().manual_seed(1))
        xpath = os.path.join(args.out, f"{name}_input.npy")
        np.save(xpath, x.numpy().astype(np.float32))
        with torch.no_grad():
            ref = model(x).numpy()
            # The same network in float64: how far torch's own float32 result is from the exact
            # function (a measure of how much this random network amplifies rounding).
            ref64 = copy.deepcopy(model).double()(x.double()).numpy()
        ypath = os.path.join(args.out, f"{name}_incc.npy")
        arch = os.path.join(ROOT, "architectures", f"{name}.incep")
        t0 = time.time()
        cmd = [args.incc, "run", arch, "--weights", wpath, "--input", xpath, "--output", ypath, "--engine", args.engine,
               "--precision", args.precision]
        if args.engine == "reference":
            cmd.append("-O0")  # the reference interprets the network as written (-O2 would fold BN first)
        r = subprocess.run(cmd, capture_output=True, text=True)
        dt = time.time() - t0
        if r.returncode != 0:
            print(f"{name}: incc failed:\n{r.stderr}", flush=True)
            worst = float("inf")
            continue
        got = np.load(ypath)
        if got.shape != ref.shape:
            print(f"{name}: shape {got.shape} != torch {ref.shape}")
            worst = float("inf")
            continue
        torch_rel64 = float(np.abs(ref - ref64).max()) / float(np.abs(ref64).max())
        if args.precision == "f64":
            ref = ref64
        diff = float(np.abs(got - ref).max())
        rel = diff / float(np.abs(ref).max())
        worst = max(worst, rel)
        scale64 = float(np.abs(ref64).max())
        rel64 = float(np.abs(got - ref64).max()) / scale64
        rows.append((name, diff, rel, dt))
        print(f"{name:24s} max|diff| {diff:.3e}  rel {rel:.3e}  max|torch| {np.abs(ref).max():.3e}  "
              f"| vs torch-f64: incc {rel64:.2e}, torch-f32 {torch_rel64:.2e}  "
              f"({args.engine} {args.precision}, {dt:.1f}s)  {'ok' if rel <= 1e-4 else 'FAIL'}", flush=True)
    print(f"worst relative difference: {worst:.3e} ({'ok' if worst <= 1e-4 else 'FAIL'}: bound 1e-4)")
    sys.exit(0 if worst <= 1e-4 else 1)


if __name__ == "__main__":
    main()
