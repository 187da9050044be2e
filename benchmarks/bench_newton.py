"""Newton against the sequential loop for ParaGRU (rnnconf's own forms, :mod:`rnnconf.impls.pararnn`): forward
wall time at each T, as ratios measured in one run.

    python benchmarks/bench_newton.py [--T 512,4096,32768] [--B 4] [--D 64] [--dtype float32] [--device cpu]
                                      [--repeats 3] [--seed 0]

Rows: ``sequential`` (the python loop over t), ``newton k=3`` (3 iterations, as ParaRNN's released default),
``newton conv`` (until every |F_t| ≤ u·|s_t|, at most T iterations; the iterations it took are printed), and on a
CUDA device ``newton-triton`` (the same Newton with the Triton diagonal reduction, until converged).  Inputs:
Wx ~ N(0, 1), a ~ U(−0.5, 0.5) (pararnn-torch's clamp range: a contractive cell), b = 0, H = 1.  Each time is the
best of ``--repeats`` after one warm-up; ratio = sequential / form.  Also printed: max |newton − sequential| per
form (k = 3 is not converged at float32 precision where the residual is still above u).  The ParaRNN paper reports up
to 665× on a GPU (its fused CUDA kernels, not these forms); the issue's goal for a GPU is ≥ 100× at T = 4096.
"""
from __future__ import annotations

import argparse
import time

import torch


def _time(fn, repeats: int, device: str) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--T", default="512,4096,32768")
    ap.add_argument("--B", type=int, default=4)
    ap.add_argument("--D", type=int, default=64)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from rnnconf.impls import pararnn as P

    forms = {"newton k=3": dict(newton_its=3), "newton conv": {}}
    if args.device == "cuda":
        from rnnconf.kernels.pararnn import reduce_triton

        forms["newton-triton"] = dict(reduce=reduce_triton)
    dt = getattr(torch, args.dtype)
    g = torch.Generator().manual_seed(args.seed)
    print(f"ParaGRU forward, B={args.B}, H=1, D={args.D}, {args.dtype}, device={args.device}, best of "
          f"{args.repeats}")
    print("| T | sequential s | " + " | ".join(f"{k} s (ratio)" for k in forms) + " | max |Δ| per form |")
    print("|---:|---:|" + "---:|" * len(forms) + "---|")
    for T in (int(t) for t in args.T.split(",")):
        Wx = torch.randn(args.B, T, 3, 1, args.D, generator=g).to(dt).to(args.device)
        a = (torch.rand(3, 1, args.D, generator=g) - 0.5).to(dt).to(args.device)
        b = torch.zeros(3, 1, args.D, dtype=dt, device=args.device)
        with torch.no_grad():
            ref = P.para_sequential("paragru", Wx, a, b)[0]
            t_seq = _time(lambda: P.para_sequential("paragru", Wx, a, b), args.repeats, args.device)
            cells, diffs = [], []
            for name, kw in forms.items():
                out = {}
                t = _time(lambda kw=kw: out.update(h=P.para_newton("paragru", Wx, a, b, **kw)[0]), args.repeats,
                          args.device)
                cells.append(f"{t:.4g} ({t_seq / t:.1f}×)")
                diffs.append(f"{name}: {(out['h'] - ref).abs().max().item():.2g}")
        its = _iterations(P, Wx, a, b)
        print(f"| {T} | {t_seq:.4g} | " + " | ".join(cells) + f" | {'; '.join(diffs)} (conv: {its} iterations) |")


def _iterations(P, Wx, a, b) -> int:
    """Iterations the converging Newton took on these inputs (the driver's count)."""
    T = Wx.shape[1]
    s0 = Wx.new_zeros(1, *Wx.shape[:1], *Wx.shape[3:])
    pb, _ = P.para_problem("paragru", (Wx, a, b, a.new_zeros(2, *a.shape[1:]), s0))
    stats = {}
    with torch.no_grad():
        P.newton(pb, (Wx, a, b, a.new_zeros(2, *a.shape[1:]), s0), T, stats=stats)
    return stats["iterations"]


if __name__ == "__main__":
    main()
