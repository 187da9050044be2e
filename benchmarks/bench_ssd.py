"""SSD forms' speed: the chunkwise form (and the quadratic one where it fits) against the sequential recurrence,
as ratios measured in one run on one machine.

    python benchmarks/bench_ssd.py [--T 4096] [--B 1] [--H 8] [--P 64] [--N 64] [--repeats 3] [--dtype float32]

Rows: ``sequential`` (the python loop over t), ``chunk-Q`` for Q in --chunks (rnnconf's four-step form at chunk Q;
chunk size passed per call), ``quadratic`` (one block: T² memory, only for T ≤ 2048).  Each row: best wall time of
--repeats after one warm-up, ratio = sequential / form, and max |form − sequential| (float64 check of agreement).
Torch forms on the CPU; mamba-ssm's Triton kernels natively on a GPU are not included here.
"""
from __future__ import annotations

import argparse
import time

import torch

from rnnconf.registry import get_form


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, default=4096)
    ap.add_argument("--B", type=int, default=1)
    ap.add_argument("--H", type=int, default=8)
    ap.add_argument("--G", type=int, default=1)
    ap.add_argument("--P", type=int, default=64)
    ap.add_argument("--N", type=int, default=64)
    ap.add_argument("--chunks", default="64,128,256")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dtype", default="float32")
    a = ap.parse_args()
    dt_ = getattr(torch, a.dtype)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(a.B, a.T, a.H, a.P, generator=g, dtype=dt_)
    dt = torch.randn(a.B, a.T, a.H, generator=g, dtype=dt_) - 2
    A = -torch.rand(a.H, generator=g, dtype=dt_) * 4 - 0.5
    Bm = torch.randn(a.B, a.T, a.G, a.N, generator=g, dtype=dt_) / a.N ** 0.5
    Cm = torch.randn(a.B, a.T, a.G, a.N, generator=g, dtype=dt_) / a.N ** 0.5
    D, bias = torch.randn(a.H, generator=g, dtype=dt_), torch.zeros(a.H, dtype=dt_)
    args = (x, dt, A, Bm, Cm, D, bias)

    def timed(fn, **kw):
        with torch.no_grad():
            fn(*args, **kw)
            best = float("inf")
            for _ in range(a.repeats):
                t0 = time.perf_counter()
                y, _ = fn(*args, **kw)
                best = min(best, time.perf_counter() - t0)
        return best, y

    seq_t, seq_y = timed(get_form("ssd/sequential").fn)
    print(f"ssd at B={a.B} T={a.T} H={a.H} P={a.P} N={a.N} G={a.G} {a.dtype}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'form':12s} {'best s':>9s} {'ratio':>8s} {'max|Δ|':>10s}")
    print(f"{'sequential':12s} {seq_t:9.3f} {1.0:8.1f} {0.0:10.2e}")
    for q in (int(c) for c in a.chunks.split(",")):
        t, y = timed(get_form("ssd/chunk-16").fn, chunk_size=q)
        print(f"{'chunk-' + str(q):12s} {t:9.3f} {seq_t / t:8.1f} {float((y - seq_y).abs().max()):10.2e}")
    if a.T <= 2048:
        t, y = timed(get_form("ssd/quadratic").fn)
        print(f"{'quadratic':12s} {t:9.3f} {seq_t / t:8.1f} {float((y - seq_y).abs().max()):10.2e}")


if __name__ == "__main__":
    main()
