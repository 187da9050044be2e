"""Invariant properties of the nonlinear cells (rnnconf/spec/nonlinear.py), each named by one of the specs'
:class:`~rnnconf.spec.base.Invariant` records whose statement it judges.  The gate-range and sLSTM stabiliser facts
are checked by the oracle itself (``checked_by``); these judge a target's outputs."""
from __future__ import annotations

import torch
from hypothesis import strategies as st

from ..spec.errors import unit_roundoff
from ..spec.nonlinear import VARIANTS
from ._locate import worst_index
from .calling import PropertyFailure
from .context import Ctx
from .registry import Property, register

_NOT_BOUNDED = ("NOAF",)  # h = o·c with no output squashing: |h| is not bounded


def _variant_dims(ctx: Ctx, allowed, label="variant", bounds=None):
    fixed = {}
    if "VAR" in ctx.spec.dims:
        fixed["VAR"] = VARIANTS.index(ctx.draw(st.sampled_from(allowed), label))
    return ctx.draw_dims(fixed=fixed, bounds=bounds)


# ---- |h_t| ≤ 1 ---------------------------------------------------------------------------------------------------
def _bounded_draw(ctx: Ctx):
    ex = ctx.draw_inputs(_variant_dims(ctx, [v for v in VARIANTS if v not in _NOT_BOUNDED]))
    if ex["initial_state"] is not None and ctx.spec.id == "gru":  # GRU keeps |h| ≤ 1 only from such an h_0
        ex["initial_state"] = ex["initial_state"].clamp(-1, 1)
    return ex


def _bounded_check(ctx: Ctx, ex):
    call = ctx.call(ex["inputs"], ex["initial_state"])
    res = ctx.oracle(ex["inputs"], ex["initial_state"])
    h = call.outputs["h"]
    if not h.numel():
        return 0.0
    b = ctx.bound(res, "h")
    limit = 1 + unit_roundoff(ctx.dtype) + b  # 1 itself is representable: a rounded ±1 is allowed
    over = h.abs() - limit
    bad = ~(over <= 0)  # NaN is a violation too
    if bad.any():
        pos = worst_index(over, bad)
        raise PropertyFailure(f"h{list(pos)} = {h[pos].item():.9g}: |h| exceeds 1 by {(h[pos].abs() - 1).item():.3g} "
                              f"> bound {b[pos].item():.3g} (the cell guarantees |h| < 1) [{call.desc}]",
                              observed=float(h[pos].abs() - 1), bound=float(b[pos]))
    ctx.measured = True
    return float(((h.abs() - 1).clamp(min=0) / b).max())


register(Property("nonlinear-h-bounded", "|h_t| ≤ 1 within the bound wherever the cell guarantees |h_t| < 1",
                  _bounded_draw, _bounded_check, invariant=True))


# ---- block-diagonal R: heads are independent runs ---------------------------------------------------------------
def _head(spec, inputs: dict, state, k: int):
    """The inputs of head k alone (H = 1)."""
    out = {}
    for a in spec.args:
        if a.name not in inputs:
            continue
        v = inputs[a.name]
        out[a.name] = v.narrow(a.shape.index("H"), k, 1) if (torch.is_tensor(v) and "H" in a.shape) else v
    return out, (state.narrow(2, k, 1) if state is not None else None)


def _block_draw(ctx: Ctx):
    return ctx.draw_inputs(_variant_dims(ctx, list(VARIANTS), bounds={"H": (2, None)}))


def _block_check(ctx: Ctx, ex):
    """Each head's output of the H-head call against the single-head call of that head: both lie within the bound
    of the exact value, so they differ by at most twice it."""
    call = ctx.call(ex["inputs"], ex["initial_state"])
    res = ctx.oracle(ex["inputs"], ex["initial_state"])
    worst = 0.0
    for k in range(ex["dims"]["H"]):
        inp, s0 = _head(ctx.spec, ex["inputs"], ex["initial_state"], k)
        one = ctx.call(inp, s0)
        for name, ax in (("h", 2), ("final_state", 2)):
            if name not in call.outputs:
                continue
            b = 2 * ctx.bound(res, name).narrow(ax, k, 1)
            worst = max(worst, ctx.expect_close(f"{name}[head {k}] of the {ex['dims']['H']}-head call vs head {k} "
                                                f"alone", call.outputs[name].narrow(ax, k, 1), one.outputs[name], b,
                                                f"{call.desc} vs {one.desc}", against_oracle=False))
    return worst


register(Property("nonlinear-block-diagonal", "the H-head call equals H single-head calls, head by head, within "
                  "twice the bound", _block_draw, _block_check, invariant=True))


# ---- sLSTM: n_t ≥ 1 ----------------------------------------------------------------------------------------------
def _normaliser_check(ctx: Ctx, ex):
    if "final_state" not in ctx.target.supports or ex["dims"]["T"] == 0:
        return 0.0
    call = ctx.call(ex["inputs"], ex["initial_state"], output_final_state=True)
    n = call.outputs["final_state"][2]
    bad = ~(n >= 1)
    if bad.any():
        pos = worst_index(-n, bad)
        raise PropertyFailure(f"final_state n{list(pos)} = {n[pos].item():.9g} < 1 after {ex['dims']['T']} steps "
                              f"(n_t = max(f′n + i′, 1) ≥ 1 exactly) [{call.desc}]", observed=float(1 - n[pos]),
                              bound=0.0)
    return 0.0


register(Property("slstm-normaliser", "n_t ≥ 1 after every step (the final state's n, bitwise)",
                  lambda ctx: ctx.draw_inputs(ctx.draw_dims()), _normaliser_check, invariant=True,
                  requires=frozenset({"final_state"})))


# ---- Odyssey: every variant is vanilla with a component clamped ------------------------------------------------
_REDUCTIONS = ("NP=lstm", "p=0=lstm", "NIG", "NFG", "NOG", "CIFG", "FGR(Rg=0)")
_SLOT = {"NIG": (0, 0), "NFG": (1, 1), "NOG": (3, 2)}  # (gate slot in Wx/R/b, peephole index)


def _reduction_draw(ctx: Ctx):
    red = ctx.draw(st.sampled_from(_REDUCTIONS), "reduction")
    variant = {"NP=lstm": "NP", "p=0=lstm": "vanilla", "FGR(Rg=0)": "FGR"}.get(red, red)
    ex = ctx.draw_inputs(ctx.draw_dims(fixed={"VAR": VARIANTS.index(variant)}))
    ex["reduction"] = red
    if red == "p=0=lstm":
        ex["inputs"]["p"] = torch.zeros_like(ex["inputs"]["p"])
    if red == "FGR(Rg=0)":
        ex["inputs"]["Rg"] = torch.zeros_like(ex["inputs"]["Rg"])
    return ex


def _reduction_check(ctx: Ctx, ex):
    """The target runs the variant; the expected values come from the other spec's oracle (``lstm``, or vanilla
    with the clamp applied to its inputs); the bound is the target's own computation's (its own oracle's)."""
    from ..oracles import DEFAULT_DPS, get_oracle

    red, inp, s0 = ex["reduction"], dict(ex["inputs"]), ex["initial_state"]
    call = ctx.call(inp, s0)
    own = ctx.oracle(inp, s0)
    if red in ("NP=lstm", "p=0=lstm"):
        other = get_oracle("lstm")(inp["Wx"], inp["R"], inp["b"], initial_state=None if s0 is None else s0[:2],
                                   dps=DEFAULT_DPS)
        source, slots = "mpmath lstm oracle", 2
    else:
        Wx, R, b, p = inp["Wx"].clone(), inp["R"].clone(), inp["b"].clone(), inp["p"].clone()
        if red in _SLOT:  # the gate's pre-activation at +1e4 (σ = 1 to 30 digits), nothing else reaching it
            g, k = _SLOT[red]
            Wx[:, :, g], R[g], b[g], p[k] = 1e4, 0, 0, 0
        elif red == "CIFG":  # f̃ := −ĩ, so σ(f̃) = 1 − σ(ĩ)
            Wx[:, :, 1], R[1], b[1], p[1] = -Wx[:, :, 0], -R[0], -b[0], -p[0]
        other = get_oracle("lstm-odyssey")(Wx, R, b, p, inp["Rg"], "vanilla", initial_state=s0, dps=DEFAULT_DPS)
        source, slots = f"mpmath vanilla oracle with {red}'s clamp", 2
    worst = ctx.expect_close(f"h of {red}", call.outputs["h"], other.values["h"], ctx.bound(own, "h"), call.desc,
                             source=source)
    if "final_state" in call.outputs:
        worst = max(worst, ctx.expect_close(f"final_state[:{slots}] of {red}", call.outputs["final_state"][:slots],
                                            other.values["final_state"][:slots],
                                            ctx.bound(own, "final_state")[:slots], call.desc, source=source))
    return worst


register(Property("odyssey-reductions", "each Odyssey variant equals vanilla with its component clamped (NP and "
                  "p = 0 against the lstm oracle), judged against the other spec's oracle",
                  _reduction_draw, _reduction_check, invariant=True))
