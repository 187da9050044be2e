"""Spec-specific invariant properties: facts of one model family, checked on a target's outputs.

Each is registered into :data:`rnnconf.properties.checks.PROPERTIES` with an ``applies`` that names its specs.
"""
from __future__ import annotations

import torch
from hypothesis import strategies as st

from . import strategies as S
from .checks import PROPERTIES, Property, only_for
from .context import Ctx


def _worst(excess: torch.Tensor, bad: torch.Tensor) -> tuple:
    """Index of the worst violation: a NaN first, else the largest excess among ``bad``."""
    nan = torch.isnan(excess) & bad
    pick = nan if nan.any() else bad & (excess == excess[bad].max())
    return tuple(int(i) for i in pick.nonzero()[0])


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
        pos = _worst(over, bad)
        from .calling import PropertyFailure

        raise PropertyFailure(f"o{list(pos)}: |h_t| = {call.outputs['o'][pos].abs().item():.9g} exceeds "
                              f"max(|h_0|, max_s |c_s|) + bound = {limit[pos].item():.9g} with tied gates "
                              f"x_t = (1 − λ_t) c_t [{call.desc}]",
                              observed=float(call.outputs['o'][pos].abs()), bound=float(limit[pos]))
    return float(((call.outputs["o"].abs() - cmax).clamp(min=0) / ctx.bound(res, "o")).max()) \
        if call.outputs["o"].numel() else 0.0


PROPERTIES["tied-gate-bound"] = Property(
    "tied-gate-bound", "with tied gates x_t = (1 − λ_t)c_t, |h_t| ≤ max(|h_0|, max_{s≤t}|c_s|)",
    _tied_draw, _tied_check, applies=only_for("hgrn"))


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
    x_t = ex["inputs"]["x"][:, t]
    from ..spec.errors import unit_roundoff

    bound = unit_roundoff(ctx.dtype) * ctx.spec.error_model.c_out * x_t.abs() + torch.finfo(ctx.dtype).tiny
    return ctx.expect_close(f"o[:, {t}] after a state reset at t={t} (must equal x_t)", call.outputs["o"][:, t],
                            x_t, bound, call.desc)


PROPERTIES["reset-forgets"] = Property(
    "reset-forgets", "a log-gate at the domain floor (exp = 0) resets the state: h_t = x_t",
    _reset_draw, _reset_check, applies=only_for("hgrn"))


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
        pos = _worst(over - b, bad)
        from .calling import PropertyFailure

        raise PropertyFailure(f"o{list(pos)} = {o[pos].item():.9g} lies outside the convex hull "
                              f"[{lo[pos].item():.9g}, {hi[pos].item():.9g}] of h_0, h̃_1..h̃_t by "
                              f"{over[pos].item():.3g} > bound {b[pos].item():.3g} [{call.desc}]",
                              observed=float(over[pos]), bound=float(b[pos]))
    return float(torch.where(judged, over.clamp(min=0) / b, torch.zeros_like(b)).max()) if o.numel() else 0.0


PROPERTIES["convex-hull"] = Property(
    "convex-hull", "gate coefficients sum to 1, so h_t ∈ [min, max] of {h_0, h̃_1..h̃_t}",
    lambda ctx: ctx.draw_inputs(ctx.draw_dims()), _hull_check, applies=only_for("mingru", "minlstm"))


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


PROPERTIES["gates-sum-to-one"] = Property(
    "gates-sum-to-one", "h̃_t ≡ h_0 is a fixed point: h_t = h_0 (the gate coefficients sum to 1)",
    _fixed_draw, _fixed_check, applies=only_for("mingru", "minlstm"))
# family invariants living in their own modules (they import PROPERTIES from checks, not from here)
from . import invariants_aaren, invariants_delta, invariants_fox  # noqa: E402,F401
