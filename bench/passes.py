#!/usr/bin/env python3
"""What each optimisation pass saves: `incc bench` at -O0, -O2, and -O2 with each pass
disabled in turn, alternating within every round so that all configurations see the same
machine load. Prints the median of the per-round medians, and the kernels and activation
bytes each pass removes (from `incc compile --format json`).

Standard library only. Run from the repository root after `cargo build --release`:
    python3 bench/passes.py [--rounds 3] [--iters 10] [--threads 2] [NET ...]
"""
import argparse, json, os, statistics, subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NETS = ["googlenet_torchvision", "bn_inception", "inception_v3", "inception_v4",
        "inception_resnet_v1", "inception_resnet_v2"]


def incc(*args):
    out = subprocess.run([os.path.join(ROOT, "target/release/incc"), *args],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("nets", nargs="*", default=NETS)
    a = ap.parse_args()
    for net in a.nets:
        path = os.path.join(ROOT, "architectures", net + ".incep")
        report = incc("compile", path, "--format", "json")
        passes = [p["name"] for p in report["passes"]]
        configs = [("-O0", ["-O", "0"]), ("-O2", ["-O", "2"])]
        configs += [(f"-O2 without {p}", ["-O", "2", "--disable-pass", p]) for p in passes]
        times = {name: [] for name, _ in configs}
        for _ in range(a.rounds):
            for name, flags in configs:
                r = incc("bench", path, "--iters", str(a.iters), "--threads", str(a.threads),
                         "--format", "json", *flags)
                times[name].append(r["median_ms"])
        med = {k: statistics.median(v) for k, v in times.items()}
        base = med["-O2"]
        print(f"\n{net}: -O0 {med['-O0']:.1f} ms, -O2 {base:.1f} ms ({med['-O0'] / base:.2f}x), "
              f"{a.rounds} rounds x {a.iters} runs, {a.threads} threads")
        print("| pass | rewrites | kernels removed | activation MB removed | ms saved (-O2 without it, minus -O2) |")
        print("|---|---:|---:|---:|---:|")
        for p in report["passes"]:
            off = med[f"-O2 without {p['name']}"]
            print(f"| {p['name']} | {p['rewrites']} | {p['kernels_before'] - p['kernels_after']} | "
                  f"{(p['activation_bytes_before'] - p['activation_bytes_after']) / 1e6:.1f} | {off - base:+.1f} |")


if __name__ == "__main__":
    main()
