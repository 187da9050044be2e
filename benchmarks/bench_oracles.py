"""Oracle cost per call: wall time of each spec's mpmath oracle at (B=1, T, D) sizes.

    python benchmarks/bench_oracles.py [--sizes 64x16,512x64] [--dps 30] [--repeat 3]

Prints one line per (spec, size): best-of-N seconds per call.  Whether gmpy2 backs mpmath is printed too.
"""
from __future__ import annotations

import argparse
import time

import mpmath.libmp
import torch

from rnnconf.oracles import get_oracle
from rnnconf.registry import all_specs


def _inputs(spec, T, D, gen):
    dims = {"B": 1, "T": T, "D": D}
    out = {}
    for a in spec.inputs:
        shape = tuple(dims.get(s, D) for s in a.shape)
        v = torch.randn(shape, generator=gen, dtype=torch.float64)
        if a.domain.hi <= 0:
            v = -v.abs()
        elif a.domain.lo >= 0:
            v = v.abs().clamp(max=0.99)
        out[a.name] = v
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="64x16,512x64")
    ap.add_argument("--dps", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--spec", default=None)
    args = ap.parse_args()
    print(f"mpmath backend: {mpmath.libmp.BACKEND}, dps={args.dps}")
    gen = torch.Generator().manual_seed(0)
    for spec in all_specs():
        if args.spec and spec.id != args.spec:
            continue
        oracle = get_oracle(spec.id)
        for size in args.sizes.split(","):
            T, D = (int(v) for v in size.split("x"))
            inputs = _inputs(spec, T, D, gen)
            best = float("inf")
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                oracle(**inputs, dps=args.dps)
                best = min(best, time.perf_counter() - t0)
            per = best / (T * D) * 1e6
            print(f"{spec.id:12s} T={T:5d} D={D:4d}  {best:8.3f} s/call  ({per:6.2f} µs per element-step)")


if __name__ == "__main__":
    main()
