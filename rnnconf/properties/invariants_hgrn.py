"""Invariant properties of ``hgrn`` (rnnconf/spec/hgrn.py), checked on a target's outputs; each is named by one of
the spec's :class:`~rnnconf.spec.base.Invariant` records, whose statement it judges."""
from __future__ import annotations

import torch
from hypothesis import strategies as st

from . import strategies as S
from ._locate import worst_index
from .context import Ctx
from .registry import Property, register


# ---- hgrn: tied gates keep the state bounded --------------------------------------------------------------------
def _tied_draw(ctx: Ctx):
    dims = ctx.draw_dims()
    ex = ctx.draw_inputs(dims)
    c = S.draw_tensor(ctx.data, "c", ctx.spec.arg("x").domain, S.shape_of(("B", "T", "D"), dims), ctx.dtype)
    lam = torch.exp(ex["inputs"]["g"])
    ex["c"] = c
    ex["inputs"]["x"] = S.round_to((1 - lam) * c, ctx.dtype)  # x_t = (1 − λ_t) c_t, then rounded
    return ex


def _tied_check(ctx: Ctx, ex):
    """|h_t| ≤ max(|h_0|, max_{s≤t} |c_s|) — up to the rounding of x (1 u relative) and the form's error bound."""
    call = ctx.call(ex["inputs"], ex["initial_state"])
    res = ctx.oracle(ex["inputs"], ex["initial_state"])
    cmax = torch.cummax(ex["c"].abs(), 1).values
    if ex["initial_state"] is not None:
        cmax = torch.maximum(cmax, ex["initial_state"].abs()[:, None])
    from ..spec.errors import unit_roundoff

    limit = cmax * (1 + unit_roundoff(ctx.dtype)) + ctx.bound(res, "o")
    over = call.outputs["o"].abs() - limit
    bad = ~(over <= 0) & (limit < torch.finfo(ctx.dtype).max)  # NaN is a violation; overflow within bound is not
    if bad.any():
        pos = worst_index(over, bad)
        from .calling import PropertyFailure

        raise PropertyFailure(f"o{list(pos)}: |h_t| = {call.outputs['o'][pos].abs().item():.9g} exceeds "
                              f"max(|h_0|, max_s |c_s|) + bound = {limit[pos].item():.9g} with tied gates "
                              f"x_t = (1 − λ_t) c_t [{call.desc}]",
                              observed=float(call.outputs['o'][pos].abs()), bound=float(limit[pos]))
    return float(((call.outputs["o"].abs() - cmax).clamp(min=0) / ctx.bound(res, "o")).max()) \
        if call.outputs["o"].numel() else 0.0


register(Property(
    "tied-gate-bound", "with tied gates x_t = (1 − λ_t)c_t, |h_t| ≤ max(|h_0|, max_{s≤t}|c_s|)",
    _tied_draw, _tied_check, invariant=True))


# ---- hgrn: a gate of exp(−1e4) = 0 forgets the past ------------------------------------------------------------
def _reset_draw(ctx: Ctx):
    ex = ctx.draw_inputs(ctx.draw_dims(bounds={"T": (2, None)}))
    T = ex["dims"]["T"]
    ex["t_reset"] = ctx.draw(st.integers(0, T - 1), "t_reset")
    floor = ctx.spec.arg("g").domain.lo
    ex["inputs"]["g"][:, ex["t_reset"]] = floor
    return ex


def _reset_check(ctx: Ctx, ex):
    """A state reset (g_t at the domain floor, exp(g_t) = 0 in every float format) makes h_t = x_t: nothing from
    before t may leak through (fla #20: a huge negative gate worked recurrently but not in the chunk kernel)."""
    t = ex["t_reset"]
    call = ctx.call(ex["inputs"], ex["initial_state"])
    ctx.expect_finite(call, ex["inputs"], ex["initial_state"])  # only o[:, t] is judged below
    x_t = ex["inputs"]["x"][:, t]
    from ..spec.errors import unit_roundoff

    bound = unit_roundoff(ctx.dtype) * ctx.spec.error_model.c_out * x_t.abs() + torch.finfo(ctx.dtype).tiny
    return ctx.expect_close(f"o[:, {t}] after a state reset at t={t} (must equal x_t)", call.outputs["o"][:, t],
                            x_t, bound, call.desc)


register(Property(
    "reset-forgets", "a log-gate at the domain floor (exp = 0) resets the state: h_t = x_t",
    _reset_draw, _reset_check, invariant=True))
