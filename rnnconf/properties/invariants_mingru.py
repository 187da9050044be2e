"""Invariant properties of ``mingru`` and ``minlstm`` (rnnconf/spec/mingru.py), checked on a target's outputs; each
is named by one of the specs' :class:`~rnnconf.spec.base.Invariant` records, whose statement it judges."""
from __future__ import annotations

import torch

from ._locate import worst_index
from .context import Ctx
from .registry import Property, register


# ---- minGRU / minLSTM: convex combinations ------------------------------------------------------------------------
def _hull_check(ctx: Ctx, ex):
    """f′ + i′ = 1 ⇒ h_t lies in [min, max] of {h_0, h̃_1..h̃_t} elementwise (within the error bound)."""
    call = ctx.call(ex["inputs"], ex["initial_state"])
    res = ctx.oracle(ex["inputs"], ex["initial_state"])
    ht = ex["inputs"]["h_tilde"]
    lo = torch.cummin(ht, 1).values
    hi = torch.cummax(ht, 1).values
    h0 = ex["initial_state"] if ex["initial_state"] is not None else torch.zeros_like(ht[:, 0])
    lo = torch.minimum(lo, h0[:, None])
    hi = torch.maximum(hi, h0[:, None])
    b = ctx.bound(res, "o")
    o = call.outputs["o"]
    over = torch.maximum(o - hi, lo - o)
    # a hull edge within its bound of the largest finite number may be crossed into ±inf by rounding: not judged
    fmax = torch.finfo(ctx.dtype).max
    judged = (hi + b < fmax) & (lo - b > -fmax)
    bad = ~(over <= b) & judged  # NaN is a violation too
    if bad.any():
        pos = worst_index(over - b, bad)
        from .calling import PropertyFailure

        raise PropertyFailure(f"o{list(pos)} = {o[pos].item():.9g} lies outside the convex hull "
                              f"[{lo[pos].item():.9g}, {hi[pos].item():.9g}] of h_0, h̃_1..h̃_t by "
                              f"{over[pos].item():.3g} > bound {b[pos].item():.3g} [{call.desc}]",
                              observed=float(over[pos]), bound=float(b[pos]))
    return float(torch.where(judged, over.clamp(min=0) / b, torch.zeros_like(b)).max()) if o.numel() else 0.0


register(Property(
    "convex-hull", "gate coefficients sum to 1, so h_t ∈ [min, max] of {h_0, h̃_1..h̃_t}",
    lambda ctx: ctx.draw_inputs(ctx.draw_dims()), _hull_check, invariant=True))


def _fixed_draw(ctx: Ctx):
    ex = ctx.draw_inputs(ctx.draw_dims(), with_state=True)
    B, T, D = ex["dims"]["B"], ex["dims"]["T"], ex["dims"]["D"]
    ex["inputs"]["h_tilde"] = ex["initial_state"][:, None].expand(B, T, D).clone()
    return ex


def _fixed_check(ctx: Ctx, ex):
    """h̃_t ≡ h_0 ⇒ h_t = h_0 for every t: the observable form of f′ + i′ = 1 (a gate pair that does not sum
    to one drifts)."""
    call = ctx.call(ex["inputs"], ex["initial_state"])
    res = ctx.oracle(ex["inputs"], ex["initial_state"])
    expect = ex["initial_state"][:, None].expand_as(call.outputs["o"])
    return ctx.expect_close("o with h̃ ≡ h_0 (must stay h_0)", call.outputs["o"], expect, ctx.bound(res, "o"),
                            call.desc)


register(Property(
    "gates-sum-to-one", "h̃_t ≡ h_0 is a fixed point: h_t = h_0 (the gate coefficients sum to 1)",
    _fixed_draw, _fixed_check, invariant=True))
