"""Writes keys/<net>.txt: every state_dict entry (key, dtype, shape) of each reference model,
plus its parameter count. The tests compare the keys an .incep file declares with these."""
import os, sys
sys.path.insert(0, os.path.dirname(__file__))
from models import build, NAMES

for name in NAMES:
    m, chw = build(name)
    m.eval()
    sd = m.state_dict()
    params = sum(p.numel() for p in m.parameters())
    with open(os.path.join(os.path.dirname(__file__), "keys", name + ".txt"), "w") as f:
        f.write(f"# state_dict of the reference implementation of {name}; params {params}; input 1x{chw[0]}x{chw[1]}x{chw[2]}\n")
        for k, v in sd.items():
            if k.endswith("num_batches_tracked"):
                continue
            f.write(f"{k} {'x'.join(map(str, v.shape))}\n")
    print(name, params, len(sd))
