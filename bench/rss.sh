#!/usr/bin/env bash
# Peak resident memory (max RSS, from /usr/bin/time) of `incc bench` and of ONNX Runtime running
# the same network 20 times in a minimal Python process (numpy + onnxruntime only; the ONNX
# files are those bench/compare.py exports into bench/out/). Baseline: the same Python process
# that only imports the two modules.
# Usage, from the repository root after `cargo build --release` and `bench/compare.py`:
#   bash bench/rss.sh [PYTHON]   (PYTHON: an interpreter with numpy and onnxruntime)
set -euo pipefail
py=${1:-python3}
ort='import sys, numpy as np, onnxruntime as ort
if len(sys.argv) > 1:
    so = ort.SessionOptions(); so.intra_op_num_threads = 2
    s = ort.InferenceSession(sys.argv[1], so, providers=["CPUExecutionProvider"])
    i = s.get_inputs()[0]
    x = np.random.rand(*[d if isinstance(d, int) else 1 for d in i.shape]).astype(np.float32)
    for _ in range(20): s.run(None, {i.name: x})'
kb() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
echo "| net | incc MB | ONNX Runtime MB | Python + numpy + onnxruntime imported, MB |"
echo "|---|---:|---:|---:|"
base=$(kb "$py" -c "$ort")
for n in googlenet_torchvision bn_inception inception_v3 inception_v4 inception_resnet_v1 inception_resnet_v2; do
  a=$(kb target/release/incc bench "architectures/$n.incep" --iters 20)
  b=$(kb "$py" -c "$ort" "bench/out/$n.onnx")
  echo "| $n | $((a / 1024)) | $((b / 1024)) | $((base / 1024)) |"
done
