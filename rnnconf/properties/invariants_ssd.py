"""Invariants of ``ssd`` (:mod:`rnnconf.spec.ssd`): chunk-size independence, padding steps as identities, and a
segsum that survives log-decays whose cumulative sums overflow.  Every check is against the mpmath oracle within the
spec's bound.
"""
from __future__ import annotations

from dataclasses import replace

import torch
from hypothesis import strategies as st

from . import strategies as S
from .context import Ctx
from .registry import Property, register

PAD_DT = -1e4  # softplus(−1e4 + dt_bias) is exactly 0 in every dtype: a padding step


def _chunk_kw(target) -> str | None:
    return target.extras.get("chunk_kw") if target.extras else None


def _at_chunk(ctx: Ctx, q: int) -> Ctx:
    """``ctx`` judging as if the target's declared chunk size were ``q`` (its bound at that chunk size)."""
    tr = ctx.target.traits.with_(chunk_size=q, cumsum=ctx.target.traits.cumsum if ctx.target.traits.cumsum != "none"
                                 else "chunk")
    return replace(ctx, target=replace(ctx.target, traits=tr))


# ---- ssd-chunk-size ---------------------------------------------------------------------------------------------
def _cs_draw(ctx: Ctx):
    ex = ctx.draw_inputs(ctx.draw_dims(bounds={"T": (1, 40)}))
    T = ex["dims"]["T"]
    pool = sorted({q for q in (1, 2, 3, 4, 7, 8, 16, T - 1, T, T + 1) if q >= 1})
    ex["chunks"] = ctx.draw(st.lists(st.sampled_from(pool), min_size=2, max_size=4, unique=True), "chunk sizes")
    return ex


def _cs_check(ctx: Ctx, ex):
    res = ctx.oracle(ex["inputs"], ex["initial_state"])
    kw = _chunk_kw(ctx.target)
    worst = 0.0
    for q in ex["chunks"]:
        call = ctx.call(ex["inputs"], ex["initial_state"], extra_kwargs={kw: q})
        judge = _at_chunk(ctx, q)
        for name in call.outputs:
            worst = max(worst, ctx.expect_close(f"{name} (chunk_size={q})", call.outputs[name], res.values[name],
                                                judge.bound(res, name), call.desc))
    return worst


register(Property("ssd-chunk-size", "each drawn chunk size (1, 2, primes, T − 1, T, T + 1, powers of two) against "
                  "the oracle, within the bound at that chunk size", _cs_draw, _cs_check, invariant=True,
                  applies=lambda s, t: None if _chunk_kw(t) else f"{t.id} takes no chunk size per call "
                  "(it declares no extras['chunk_kw'])"))


# ---- ssd-padding-identity ---------------------------------------------------------------------------------------
def _pad_draw(ctx: Ctx):
    ex = ctx.draw_inputs(ctx.draw_dims(bounds={"T": (1, 30)}))
    T = ex["dims"]["T"]
    ex["at"] = ctx.draw(st.integers(0, T), "padding position τ")
    ex["k"] = ctx.draw(st.sampled_from([1, 2, 5, 16]), "padding steps")
    ex["pad_seed"] = ctx.draw(st.integers(0, 2**31 - 1), "padding.seed")
    return ex


def _pad_check(ctx: Ctx, ex):
    spec, inp, tau, k = ctx.spec, ex["inputs"], ex["at"], ex["k"]
    g = torch.Generator().manual_seed(ex["pad_seed"])
    padded = {}
    for a in spec.inputs:
        v = inp[a.name]
        if "T" not in a.shape:
            padded[a.name] = v
            continue
        shape = list(v.shape)
        shape[1] = k
        fill = torch.full(shape, PAD_DT, dtype=torch.float64) if a.name == "dt" else \
            S.round_to(torch.randn(shape, generator=g, dtype=torch.float64), ctx.dtype)
        padded[a.name] = torch.cat([v[:, :tau], fill, v[:, tau:]], 1)
    res = ctx.oracle(inp, ex["initial_state"])  # the unpadded call: what padding must not change
    res_p = ctx.oracle(padded, ex["initial_state"])  # the bound of the padded evaluation
    call = ctx.call(padded, ex["initial_state"])
    keep = [t for t in range(padded["x"].shape[1]) if not tau <= t < tau + k]
    worst = ctx.expect_close("y at the unpadded steps", call.outputs["y"][:, keep], res.values["y"],
                             ctx.bound(res_p, "y")[:, keep], f"{call.desc} with {k} padding steps at τ={tau}")
    # the padding steps read the unchanged state H_τ: the padded oracle's own value there
    worst = max(worst, ctx.expect_close("y at the padding steps", call.outputs["y"][:, tau:tau + k],
                                        res_p.values["y"][:, tau:tau + k], ctx.bound(res_p, "y")[:, tau:tau + k],
                                        call.desc))
    if "final_state" in call.outputs:
        worst = max(worst, ctx.expect_close("final_state after padding", call.outputs["final_state"],
                                            res.values["final_state"], ctx.bound(res_p, "final_state"),
                                            call.desc))
    return worst


register(Property("ssd-padding-identity", "k padding steps (dt = −1e4) inserted at τ: outputs elsewhere and the "
                  "final state equal the unpadded oracle's", _pad_draw, _pad_check, invariant=True))


# ---- ssd-segsum-stable ------------------------------------------------------------------------------------------
SEG_DT, SEG_A = 30.0, -1e36  # ΔA = −3e37 per step: a float32 cumulative sum overflows to −inf in 12 steps


def _seg_draw(ctx: Ctx):
    ex = ctx.draw_inputs(ctx.draw_dims(bounds={"T": (13, 40)}))
    H = ex["inputs"]["A"].shape[0]
    ex["heads"] = ctx.draw(st.lists(st.integers(0, H - 1), min_size=1, max_size=H, unique=True), "decaying heads")
    return ex


def _seg_check(ctx: Ctx, ex):
    inp = dict(ex["inputs"])
    hs = torch.tensor(ex["heads"])
    A = inp["A"].clone()
    A[hs] = S.round_to(torch.tensor(SEG_A, dtype=torch.float64), ctx.dtype)
    dt = inp["dt"].clone()
    dt[:, :, hs] = SEG_DT
    inp.update(A=A, dt=dt)
    res = ctx.oracle(inp, ex["initial_state"])
    call = ctx.call(inp, ex["initial_state"])
    worst = 0.0
    for name in call.outputs:
        worst = max(worst, ctx.expect_close(f"{name} (log-decay −3e37 per step on heads {ex['heads']})",
                                            call.outputs[name], res.values[name], ctx.bound(res, name), call.desc))
    return worst


register(Property("ssd-segsum-stable", "heads with ΔA = −3e37 per step (their float32 cumulative sums reach −inf): "
                  "finite and within the bound against the oracle", _seg_draw, _seg_check, invariant=True))
