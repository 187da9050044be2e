"""How much Adaptive Computation Pruning prunes: fraction of causal tiles and of attention FLOPs skipped under rnnconf's
ACP rule, for settings like those of Lin et al., "Adaptive Computation Pruning for the Forgetting Transformer"
(arXiv 2504.06949; the paper reports ≈70% of softmax-attention FLOPs pruned in FoX pretraining, default ln ε = −10).

    python benchmarks/bench_acp.py [--T 1024,2048,4096,8192,16384] [--tile 64x64] [--heads 16] [--d 128]
                                   [--log-eps -10] [--seed 0] [--json out.json] [--check [--check-T 256]]

THE RULE (rnnconf's, not re-derived here).  δ = −(2U + ln N) + ln ε comes from
:func:`rnnconf.impls.forgetting_attention.acp_threshold`; a key tile strictly left of the diagonal is pruned iff its
top-right corner decay bias D_{i₀, j_last} = c_{i₀} − c_{j_last} is below δ, with c = cumsum(g) in the working dtype —
the rule of the ``tiled-BMxBN`` ACP torch form (``_tiled`` in that module); tiles crossing the diagonal are never
pruned.  A decision needs only c and U, never the attention itself, so T = 16384 runs in seconds on a CPU.  ``--check``
ties this to the implementation: on a short sequence (``--check-T``; tiles ``--tile`` and 16×16) it runs the
``tiled_acp`` torch form on the same inputs and asserts (1) its pruned-tile mask equals the one computed here, (2) the
exact (float64, dense) attention weight each query puts on pruned tiles is < ε, (3) |o_ACP − o_exact| ≤ 2ε·max|v| +
twice the unpruned form's own error.

SYNTHETIC INPUTS (all drawn from ``--seed``; B = 1).
* Forget gates, per head h = 0..H−1: a nominal decay length τ_h = 10^(4·h/(H−1)) tokens (log-spaced 1 … 10⁴), the
  per-head logit bias b_h = logit(exp(−1/τ_h)) (so log f = −1/τ_h at zero noise), and per-token logit noise:
  g_t = log σ(b_h + 0.5·ξ_t), ξ_t ~ N(0, 1) (``--gate-noise``).  Heads are grouped by τ into classes
  fast (τ ≤ 10), medium (10 < τ ≤ 1000) and slow (τ > 1000).
* Queries and keys have QK-RMSNorm magnitudes: q_t = w_q ⊙ x̂_t with x̂_t = x_t / rms(x_t), x_t ~ N(0, I_d) (so
  ‖x̂_t‖ = √d exactly) and per-head RMSNorm gains w ~ 1 + 0.2·N(0, 1) per channel (``--gain-spread``); same for k.
* Two bounds U on |s·qᵢᵀkⱼ| (s = 1/√d), each turned into δ by ``acp_threshold``:
  - ``auto``: U = s·maxᵢ‖qᵢ‖·maxⱼ‖kⱼ‖ (Cauchy–Schwarz on the actual q, k; what the torch forms and kernel use);
  - ``qknorm``: U = √d·max|w_q|·max|w_k| (the paper's bound from the RMSNorm gains alone: ‖w ⊙ x̂‖ ≤ √d·max|w|),
    obtained by calling ``acp_threshold`` on the worst-case RMSNorm outputs (every channel = max|w|).
  qknorm ≥ auto, so it prunes a subset of auto's tiles.

WHAT IS COUNTED, per head and summed per class.  ``tiles``: pruned tiles / tiles a causal flash kernel visits (every
tile with j₀ ≤ i_last, the diagonal ones included).  ``FLOPs``: pruned tile elements / causal elements T(T+1)/2 —
the share of the QK and PV matmul work (2·d + 2·d FLOPs per causal element) that ACP skips.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time

import torch

from rnnconf.impls.forgetting_attention import acp_threshold, tiled, tiled_acp
from rnnconf.spec.softmax import default_scale

CLASSES = (("fast", 0.0, 10.0), ("medium", 10.0, 1000.0), ("slow", 1000.0, math.inf))


# ---- inputs ---------------------------------------------------------------------------------------------------------
_TAUS: list[float] | None = None  # --taus overrides the log-spaced default


def decay_lengths(H: int) -> list[float]:
    if _TAUS is not None:
        return list(_TAUS)
    return [10.0 ** (4.0 * h / (H - 1)) if H > 1 else 1.0 for h in range(H)]


def head_class(tau: float) -> str:
    return next(name for name, lo, hi in CLASSES if lo < tau <= hi)


def make_gates(T: int, taus, noise: float, gen, dtype) -> torch.Tensor:
    """g [1, T, H]: log σ(b_h + noise·ξ), b_h = logit(exp(−1/τ_h))."""
    f0 = torch.tensor([math.exp(-1.0 / t) for t in taus], dtype=torch.float64)
    b = torch.log(f0) - torch.log1p(-f0)
    xi = torch.randn(1, T, len(taus), generator=gen, dtype=torch.float64)
    return torch.nn.functional.logsigmoid(b + noise * xi).to(dtype)


def make_gains(H: int, d: int, spread: float, gen) -> torch.Tensor:
    return 1.0 + spread * torch.randn(H, d, generator=gen, dtype=torch.float64)


def rmsnorm_outputs(T: int, gains: torch.Tensor, gen, dtype) -> torch.Tensor:
    """[1, T, H, d]: w_h ⊙ x / rms(x), x ~ N(0, I)."""
    H, d = gains.shape
    x = torch.randn(1, T, H, d, generator=gen, dtype=torch.float64)
    x = x / x.pow(2).mean(-1, keepdim=True).sqrt()
    return (x * gains).to(dtype)


# ---- the pruning rule -----------------------------------------------------------------------------------------------
def thresholds(q, k, gq, gk, log_eps: float, dtype) -> dict:
    """δ [1, H] for each U, both through rnnconf's ``acp_threshold`` (q, k: [1, T, H, d])."""
    T, d = q.shape[1], q.shape[-1]
    s = default_scale(d)
    qh, kh = q.to(dtype).transpose(1, 2), k.to(dtype).transpose(1, 2)
    out = {"auto": acp_threshold(qh, kh, s, T, log_eps)}
    # worst-case RMSNorm outputs: every channel at max|w| (norm √d·max|w|), one per head
    wq = gq.abs().amax(-1)[None, :, None, None].expand(1, gq.shape[0], 1, d).to(dtype)
    wk = gk.abs().amax(-1)[None, :, None, None].expand(1, gk.shape[0], 1, d).to(dtype)
    out["qknorm"] = acp_threshold(wq, wk, s, T, log_eps)
    return out


def cumsum_like_the_form(g: torch.Tensor, dtype) -> torch.Tensor:
    """c [1, H, T], exactly as ``_tiled`` forms it: ``torch.cumsum(g.to(cd).transpose(1, 2), -1)``."""
    return torch.cumsum(g.to(dtype).transpose(1, 2), -1)


def pruned_tiles(c: torch.Tensor, delta: torch.Tensor, bm: int, bn: int) -> torch.Tensor:
    """bool [1, H, nQ, nK]: tile (qb, kb) pruned iff it lies strictly left of the diagonal (j_last < i₀) and
    c[i₀] − c[j_last] < δ — the top-right-corner rule of the tiled ACP form."""
    T = c.shape[-1]
    nQ, nK = -(-T // bm), -(-T // bn)
    i0 = torch.arange(nQ) * bm
    jlast = torch.clamp((torch.arange(nK) + 1) * bn, max=T) - 1
    corner = c[..., i0][..., :, None] - c[..., jlast][..., None, :]  # [1, H, nQ, nK]
    left = (jlast[None, :] < i0[:, None])
    return left & (corner < delta[..., None, None])


def tile_counts(T: int, bm: int, bn: int):
    """Per tile: its number of (query, key) elements, and whether a causal kernel visits it."""
    nQ, nK = -(-T // bm), -(-T // bn)
    rows = torch.clamp(torch.arange(1, nQ + 1) * bm, max=T) - torch.arange(nQ) * bm
    cols = torch.clamp(torch.arange(1, nK + 1) * bn, max=T) - torch.arange(nK) * bn
    visited = (torch.arange(nK)[None, :] * bn) <= (torch.clamp(torch.arange(1, nQ + 1) * bm, max=T) - 1)[:, None]
    return rows[:, None] * cols[None, :], visited


# ---- the benchmark --------------------------------------------------------------------------------------------------
def run_T(T: int, args, dtype) -> dict:
    gen = torch.Generator().manual_seed(args.seed + T)
    taus = decay_lengths(args.heads)
    g = make_gates(T, taus, args.gate_noise, gen, dtype)
    gq, gk = make_gains(args.heads, args.d, args.gain_spread, gen), make_gains(args.heads, args.d, args.gain_spread,
                                                                                gen)
    q, k = rmsnorm_outputs(T, gq, gen, dtype), rmsnorm_outputs(T, gk, gen, dtype)
    deltas = thresholds(q, k, gq, gk, args.log_eps, dtype)
    c = cumsum_like_the_form(g, dtype)
    elems, visited = tile_counts(T, args.bm, args.bn)
    causal_elems = T * (T + 1) // 2
    s = default_scale(args.d)
    U = {"auto": (s * q.double().norm(dim=-1).amax(1) * k.double().norm(dim=-1).amax(1))[0],
         "qknorm": math.sqrt(args.d) * gq.abs().amax(-1) * gk.abs().amax(-1)}
    res = {"T": T, "causal_elements": causal_elems, "visited_tiles": int(visited.sum()), "per_head": [], "by_u": {}}
    for kind, delta in deltas.items():
        mask = pruned_tiles(c, delta, args.bm, args.bn)[0]  # [H, nQ, nK]
        assert not (mask & ~visited).any()
        heads = []
        for h in range(args.heads):
            heads.append({"head": h, "tau": taus[h], "class": head_class(taus[h]), "U": float(U[kind][h]),
                          "delta": float(delta[0, h]), "pruned_tiles": int(mask[h].sum()),
                          "pruned_elements": int((elems * mask[h]).sum())})
        summary = {}
        for name in [n for n, _, _ in CLASSES] + ["all"]:
            hs = [x for x in heads if name in ("all", x["class"])]
            if not hs:
                continue
            summary[name] = {
                "heads": len(hs),
                "tiles_pruned": sum(x["pruned_tiles"] for x in hs) / (len(hs) * res["visited_tiles"]),
                "flops_saved": sum(x["pruned_elements"] for x in hs) / (len(hs) * causal_elems),
            }
        res["by_u"][kind] = {"summary": summary, "heads": heads,
                             "U_range": [float(U[kind].min()), float(U[kind].max())],
                             "delta_range": [float(delta.min()), float(delta.max())]}
    return res


def print_table(results: list, args) -> None:
    names = [n for n, _, _ in CLASSES] + ["all"]
    taus = decay_lengths(args.heads)
    counts = {n: sum(head_class(t) == n for t in taus) for n, _, _ in CLASSES}
    spacing = "τ from --taus" if _TAUS is not None else "τ log-spaced 1…1e4"
    print(f"ACP pruning under rnnconf's rule: H={args.heads} heads ({spacing}: "
          + ", ".join(f"{n} {counts[n]}" for n, _, _ in CLASSES) + f"), d_head={args.d}, tile {args.bm}×{args.bn}, "
          f"ln ε={args.log_eps:g}, gate noise {args.gate_noise:g} (logit), RMSNorm gain spread {args.gain_spread:g}, "
          f"c=cumsum(g) in {args.dtype}, seed {args.seed}")
    print("tiles = pruned / visited causal tiles;  FLOPs = pruned elements / causal elements (QK and PV matmuls)\n")
    head = f"{'T':>6} {'U':>7} {'U range':>13} {'δ range':>15} │" + "".join(f" {n + ' tiles':>12} {n + ' FLOPs':>12} │"
                                                                             for n in names) + f" {'time':>6}"
    print(head)
    print("─" * len(head))
    for r in results:
        for kind in ("auto", "qknorm"):
            b = r["by_u"][kind]
            row = (f"{r['T']:>6} {kind:>7} {b['U_range'][0]:>6.1f}…{b['U_range'][1]:<6.1f} "
                   f"{b['delta_range'][0]:>7.1f}…{b['delta_range'][1]:<7.1f} │")
            for n in names:
                sm = b["summary"].get(n)
                row += (f" {100 * sm['tiles_pruned']:>11.1f}% {100 * sm['flops_saved']:>11.1f}% │" if sm
                        else f" {'—':>12} {'—':>12} │")
            print(row + f" {r['seconds']:>5.2f}s" if kind == "auto" else row)
    print()


def print_heads(results: list, args) -> None:
    r = results[-1]
    print(f"per head at T={r['T']} (FLOPs saved, auto U / qknorm U):")
    for a, b in zip(r["by_u"]["auto"]["heads"], r["by_u"]["qknorm"]["heads"]):
        print(f"  head {a['head']:>2}  τ={a['tau']:>8.1f} ({a['class']:>6})  "
              f"U={a['U']:5.1f}/{b['U']:5.1f}  δ={a['delta']:6.1f}/{b['delta']:6.1f}  "
              f"FLOPs saved {100 * a['pruned_elements'] / r['causal_elements']:5.1f}% / "
              f"{100 * b['pruned_elements'] / r['causal_elements']:5.1f}%")
    print()


# ---- --check: the rule against the implementation -------------------------------------------------------------------
def check(args, dtype) -> bool:
    """The configured tile and 16×16 (more, smaller tiles: more pruning decisions at a short T)."""
    ok = True
    for bm, bn in dict.fromkeys([(args.bm, args.bn), (16, 16)]):
        ok &= check_tile(args, dtype, bm, bn)
    return ok


def check_tile(args, dtype, bm: int, bn: int) -> bool:
    T = args.check_T
    gen = torch.Generator().manual_seed(args.seed)
    taus = decay_lengths(args.heads)
    g = make_gates(T, taus, args.gate_noise, gen, dtype)
    gq, gk = make_gains(args.heads, args.d, args.gain_spread, gen), make_gains(args.heads, args.d, args.gain_spread,
                                                                                gen)
    q, k = rmsnorm_outputs(T, gq, gen, dtype), rmsnorm_outputs(T, gk, gen, dtype)
    v = torch.randn(1, T, args.heads, args.d, generator=gen, dtype=torch.float64).to(dtype)
    eps = math.exp(args.log_eps)
    t0 = time.perf_counter()
    o_acp, info = tiled_acp(bm, bn)(q, k, v, g, log_eps=args.log_eps, return_pruning=True)
    o_full = tiled(bm, bn)(q, k, v, g)
    deltas = thresholds(q, k, gq, gk, args.log_eps, dtype)
    c = cumsum_like_the_form(g, dtype)
    mine = {kind: pruned_tiles(c, d, bm, bn) for kind, d in deltas.items()}

    # reference weights in float64 (D = c_i − c_j of a float64 cumsum: ~1e-14 off at this T, far below ε)
    s = default_scale(args.d)
    qh, kh, vh = (x.double().transpose(1, 2) for x in (q, k, v))
    gh = g.double().transpose(1, 2)  # [1, H, T]
    ci = torch.cumsum(gh, -1)
    D = ci[..., :, None] - ci[..., None, :]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    z = torch.where(causal, s * qh @ kh.transpose(-1, -2) + D, torch.tensor(-math.inf, dtype=torch.float64))
    P = torch.softmax(z, -1)
    o_exact = (P @ vh).transpose(1, 2)
    vmax = float(v.double().abs().max())

    ok = True
    same = torch.equal(info["pruned"], mine["auto"])
    ok &= same
    print(f"--check at T={T}, tile {bm}×{bn}, ln ε={args.log_eps:g}, {args.heads} heads, d={args.d} "
          f"({time.perf_counter() - t0:.1f} s)")
    print(f"  tiled_acp pruned-tile mask == this script's (auto U): {same}  "
          f"({int(info['pruned'].sum())} of {int(tile_counts(T, bm, bn)[1].sum()) * args.heads} "
          f"visited tiles pruned)")
    sub = bool((mine["qknorm"] & ~mine["auto"]).sum() == 0)
    ok &= sub
    print(f"  qknorm-U pruned tiles ⊆ auto-U pruned tiles: {sub}  ({int(mine['qknorm'].sum())} pruned)")
    for kind, mask in mine.items():
        el = mask[0].repeat_interleave(bm, -2)[..., :T, :].repeat_interleave(bn, -1)[..., :T]
        mass = (P[0] * el).sum(-1)  # [H, T]
        worst = float(mass.max())
        good = worst < eps
        ok &= good
        print(f"  {kind:>6} U: max over queries of the exact weight on pruned tiles = {worst:.3e}  < ε = {eps:.3e}: "
              f"{good}")
    err_acp = float((o_acp.double() - o_exact).abs().max())
    err_full = float((o_full.double() - o_exact).abs().max())
    allowed = 2 * eps * vmax + 2 * err_full + 1e-12
    good = err_acp <= allowed
    ok &= good
    print(f"  |o_ACP − o_exact| = {err_acp:.3e}  (unpruned tiled form: {err_full:.3e}; allowed 2ε·max|v| + "
          f"2·unpruned = {allowed:.3e}): {good}")
    print(f"  check {'PASSED' if ok else 'FAILED'}\n")
    return ok


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", default="1024,2048,4096,8192,16384", help="sequence lengths (comma-separated)")
    ap.add_argument("--tile", default="64x64", help="query×key tile, e.g. 64x64 or 128x64")
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--taus", help="explicit per-head decay lengths (comma-separated; sets --heads)")
    ap.add_argument("--d", type=int, default=128, help="head dimension")
    ap.add_argument("--log-eps", type=float, default=-10.0)
    ap.add_argument("--gate-noise", type=float, default=0.5, help="std of the per-token logit noise of f")
    ap.add_argument("--gain-spread", type=float, default=0.2, help="std of the RMSNorm gains around 1")
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                    help="working dtype of q, k, g and of c = cumsum(g) (the forms compute in float32 for float32)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", metavar="PATH", help="write the results as JSON")
    ap.add_argument("--per-head", action="store_true", help="also print each head at the longest T")
    ap.add_argument("--check", action="store_true", help="verify the rule against the tiled_acp torch form first")
    ap.add_argument("--check-T", type=int, default=256)
    args = ap.parse_args(argv)
    args.bm, args.bn = (int(x) for x in args.tile.lower().split("x"))
    global _TAUS
    if args.taus:
        _TAUS = [float(x) for x in args.taus.split(",") if x]
        args.heads = len(_TAUS)
    dtype = getattr(torch, args.dtype)
    Ts = [int(x) for x in args.T.split(",") if x]

    ok = check(args, dtype) if args.check else True
    results = []
    for T in Ts:
        t0 = time.perf_counter()
        r = run_T(T, args, dtype)
        r["seconds"] = time.perf_counter() - t0
        results.append(r)
    print_table(results, args)
    if args.per_head:
        print_heads(results, args)
    if args.json:
        meta = {k: v for k, v in vars(args).items() if k not in ("json",)}
        with open(args.json, "w") as f:
            json.dump({"settings": meta, "decay_lengths": decay_lengths(args.heads), "results": results,
                       "check_passed": ok if args.check else None}, f, indent=1)
        print(f"wrote {args.json}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
