#!/usr/bin/env python3
"""The cost of bf16, side by side: incc bf16 and OpenVINO bf16 against f32 (ONNX Runtime) on
the same ONNX model (incc's seeded network, `incc export`), the same weights and inputs.

For N random inputs (standard normal, seed 11) prints, per engine, the median of
max|y - f32| / max|f32| and the top-1 agreement with f32; incc f32 is listed as a control.

Needs `pip install numpy onnxruntime openvino`. From the repository root after
`cargo build --release`:
    python3 bench/lowp_error.py [--n 8] [NET ...]
"""
import argparse, os, subprocess, sys, tempfile, warnings

warnings.filterwarnings("ignore")
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
INCC = os.path.join(ROOT, "target", "release", "incc")


def incc_run(net, x, precision, tmp):
    xi, yo = os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npy")
    np.save(xi, x[0])
    subprocess.run([INCC, "run", os.path.join(ROOT, "architectures", f"{net}.incep"), "--input", xi, "--output", yo,
                    "--precision", precision], check=True, capture_output=True)
    return np.load(yo).reshape(-1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("nets", nargs="*", default=["inception_v3", "inception_resnet_v2"])
    ap.add_argument("--n", type=int, default=8)
    a = ap.parse_args()
    import onnxruntime as ort
    import openvino as ov
    out = os.path.join(HERE, "out")
    os.makedirs(out, exist_ok=True)
    print("| net | engine | median max\\|y - f32\\| / max\\|f32\\| | top-1 agreement |")
    print("|---|---|---|---|")
    for net in a.nets:
        path = os.path.join(out, f"{net}.onnx")
        if not os.path.exists(path):
            subprocess.run([INCC, "export", os.path.join(ROOT, "architectures", f"{net}.incep"), "--onnx", path],
                           check=True, capture_output=True)
        s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        name = s.get_inputs()[0].name
        shape = [1] + [int(d) for d in s.get_inputs()[0].shape[1:]]
        core = ov.Core()
        model = core.read_model(path)
        model.reshape(shape)
        bf = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "bf16"}).create_infer_request()
        rng = np.random.default_rng(11)
        err = {"OpenVINO bf16": [], "incc bf16": [], "incc f32": []}
        agree = {k: 0 for k in err}
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(a.n):
                x = rng.standard_normal(shape).astype(np.float32)
                ref = s.run(None, {name: x})[0].reshape(-1)
                ys = {"OpenVINO bf16": np.asarray(bf.infer({0: x})[0]).reshape(-1),
                      "incc bf16": incc_run(net, x, "bf16", tmp), "incc f32": incc_run(net, x, "f32", tmp)}
                for k, y in ys.items():
                    err[k].append(np.abs(y - ref).max() / np.abs(ref).max())
                    agree[k] += int(y.argmax() == ref.argmax())
        for k in err:
            print(f"| {net} | {k} | {np.median(err[k]):.2e} | {agree[k]}/{a.n} |", flush=True)


if __name__ == "__main__":
    main()
