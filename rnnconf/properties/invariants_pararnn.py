"""Convergence properties of Newton-type targets (rnnconf/spec/pararnn.py's ``newton-*`` invariants).  They apply to
any target that declares ``extras["newton"]``: the keyword of its iteration count (``its_kw``), of its damping
(``omega_kw``), the count it runs when none is given (``iterations``: None claims convergence) and, for
``newton-reduction``, its reduction ``reduce(A, r) -> δ``.  Every check is against the mpmath oracle (the
sequential cell, its Newton iteration, or the sequential linear solve), within the spec's Newton bound.
"""
from __future__ import annotations

import math

import mpmath
import torch
from hypothesis import strategies as st

from ..spec.errors import unit_roundoff
from ..spec.pararnn import jacobian64, step64
from . import strategies as S
from .calling import PropertyFailure
from .context import Ctx
from .registry import Property, register


def _newton(target) -> dict | None:
    return target.extras.get("newton") if target.extras else None


def _applies(spec, target):
    return None if _newton(target) else (f"{target.id} is not a Newton-type target (it declares no "
                                         "extras['newton'] with its iteration count)")


def _kw(ctx: Ctx, its=None, omega=None) -> dict:
    n = _newton(ctx.target)
    kw = {}
    if its is not None:
        kw[n["its_kw"]] = its
    if omega is not None and n.get("omega_kw"):
        kw[n["omega_kw"]] = omega
    return kw


def _u_acc(ctx: Ctx) -> float:
    return ctx.spec.error_model.accumulate_u(ctx.dtype, ctx.target.traits)


def _update_charge(ctx: Ctx, res, j: int, inputs: dict, s0) -> torch.Tensor:
    """The rounding of iteration j's update where δ is not at the rounding level (units: absolute, on h
    [B, T, H, D]): (⌈log₂ T⌉ + 2)·Ξ_t + |s⁽ʲ⁻¹⁾_t| with Ξ_t = |A_t|Ξ_{t−1} + |r⁽ʲ⁻¹⁾_t| (the reduction's and the
    subtraction's roundings of the exact residual r = f(shift(S⁽ʲ⁻¹⁾)) − S⁽ʲ⁻¹⁾), propagated by the exact Jacobian.
    Zero where iterate j − 1 is already exact (its residual is 0)."""
    if j == 0:
        return torch.zeros_like(res.values["h"])
    exact = res.aux["states"]
    T = exact.shape[0]
    if j >= T:  # iterates T − 1 and on are the sequential solution (finite termination, checked on the oracle)
        old = new = exact
    else:
        its, _ = res.aux["newton"](j)
        old, new = its[j - 1], its[j]  # [T, S, B, H, D]
    Wx, a, b = (inputs[k].double() for k in ("Wx", "a", "b"))
    p = inputs["p"].double() if inputs.get("p") is not None else None
    prev_exact = [s0.double() if s0 is not None else torch.zeros_like(exact[0])] + [exact[t] for t in range(T - 1)]
    prev_old = [prev_exact[0]] + [old[t] for t in range(T - 1)]
    cell = ctx.spec.id
    levels = math.ceil(math.log2(T)) + 2 if T > 1 else 2
    Xi = torch.zeros_like(exact[0])
    out = []
    for t in range(T):
        f = torch.stack(step64(cell, Wx[:, t], a, b, p, tuple(prev_old[t].unbind(0))))
        r = (f - old[t]).abs()
        J = jacobian64(cell, Wx[:, t], a, b, p, tuple(prev_exact[t].unbind(0))).abs()
        Xi = torch.einsum("bhdij,jbhd->ibhd", J, Xi) + r
        out.append(levels * Xi[0] + old[t][0].abs() + new[t][0].abs())
    return _u_acc(ctx) * torch.stack(out, 1)


def _draw_cell(ctx: Ctx, bounds=None, expanding=False):
    ex = ctx.draw_inputs(ctx.draw_dims(bounds=bounds))
    if expanding:  # large recurrent weights: |∂s_t/∂s_{t−1}| > 1 is reachable, Newton needs more than 3 steps
        g = ctx.draw(st.sampled_from([2.0, 3.0, -3.0]), "expanding.a")
        ex["inputs"]["a"] = S.round_to(ex["inputs"]["a"].sign().where(ex["inputs"]["a"] != 0,
                                                                       torch.ones_like(ex["inputs"]["a"])) * abs(g)
                                       + 0.1 * ex["inputs"]["a"], ctx.dtype)
    return ex


def _judge_prefix(ctx: Ctx, ex, res, j: int, upto: int, label: str) -> float:
    call = ctx.call(ex["inputs"], ex["initial_state"], extra_kwargs=_kw(ctx, its=j, omega=1.0))
    b = ctx.bound(res, "h") + _update_charge(ctx, res, j, ex["inputs"], ex["initial_state"])
    n = min(upto, call.outputs["h"].shape[1])
    return ctx.expect_close(f"h ({label}, steps 1…{n})", call.outputs["h"][:, :n], res.values["h"][:, :n],
                            b[:, :n], call.desc)


# ---- newton-prefix ---------------------------------------------------------------------------------------------
def _prefix_draw(ctx: Ctx):
    ex = _draw_cell(ctx, bounds={"T": (2, None)})
    ex["k"] = ctx.draw(st.integers(0, min(ex["dims"]["T"] - 1, 4)), "k")
    return ex


def _prefix_check(ctx: Ctx, ex):
    res = ctx.oracle(ex["inputs"], ex["initial_state"])
    k = ex["k"]
    w = _judge_prefix(ctx, ex, res, k, k + 1, f"{k} iterations")
    return max(w, _judge_prefix(ctx, ex, res, k + 1, k + 2, f"{k + 1} iterations: the prefix stays"))


register(Property("newton-prefix", "k Newton iterations (ω = 1) match the sequential oracle at s_1 … s_{k+1}, and "
                  "k + 1 iterations keep that prefix (and add s_{k+2})", _prefix_draw, _prefix_check,
                  invariant=True, applies=_applies))


# ---- newton-termination: T iterations are exact ---------------------------------------------------------------
def _term_check(ctx: Ctx, ex):
    res = ctx.oracle(ex["inputs"], ex["initial_state"])
    T = ex["dims"]["T"]
    return _judge_prefix(ctx, ex, res, T, T, f"T = {T} iterations")


register(Property("newton-termination", "T iterations match the sequential oracle at every step",
                  lambda ctx: _draw_cell(ctx, bounds={"T": (None, 24)}), _term_check, invariant=True, applies=_applies))


# ---- newton-affine: one iteration solves an affine cell -------------------------------------------------------
def _affine_draw(ctx: Ctx):
    ex = _draw_cell(ctx)
    for name, gates in (ctx.spec.extra.get("affine_zero") or {}).items():
        v = ex["inputs"][name].clone()
        v[list(gates)] = 0
        ex["inputs"][name] = v
    return ex


def _affine_check(ctx: Ctx, ex):
    if not ctx.spec.extra.get("affine_zero"):
        raise RuntimeError(f"spec {ctx.spec.id} declares newton-affine without an affine instance")
    res = ctx.oracle(ex["inputs"], ex["initial_state"])
    return _judge_prefix(ctx, ex, res, 1, ex["dims"]["T"], "1 iteration of an affine cell")


register(Property("newton-affine", "one iteration solves a cell affine in its state, at every step",
                  _affine_draw, _affine_check, invariant=True, applies=_applies))


# ---- newton-damped: the same fixed point for ω < 1 ------------------------------------------------------------
DAMPED_EXTRA = 30  # iterations beyond T: (1 − ω)^30 < 2^-59 for the ω drawn


def _damped_draw(ctx: Ctx):
    ex = _draw_cell(ctx, bounds={"T": (None, 16)})
    ex["omega"] = ctx.draw(st.sampled_from([0.75, 0.9]), "omega")
    return ex


def _damped_check(ctx: Ctx, ex):
    """Near its fixed point the damped map contracts errors by 1 − ω per iteration while each iteration adds at most
    ω times a converged Newton step's rounding: the steady error is within the Newton bound / ω."""
    res = ctx.oracle(ex["inputs"], ex["initial_state"])
    T, w = ex["dims"]["T"], ex["omega"]
    call = ctx.call(ex["inputs"], ex["initial_state"], extra_kwargs=_kw(ctx, its=T + DAMPED_EXTRA, omega=w))
    b = ctx.bound(res, "h") / w
    return ctx.expect_close(f"h (ω = {w}, {T + DAMPED_EXTRA} iterations)", call.outputs["h"], res.values["h"], b,
                            call.desc)


register(Property("newton-damped", "the damped iteration (ω < 1) run to convergence matches the sequential oracle",
                  _damped_draw, _damped_check, invariant=True, applies=_applies))


# ---- newton-converged: a target claiming convergence, on expanding cells; the residual when it is not --------
def _converged_draw(ctx: Ctx):
    return _draw_cell(ctx, bounds={"T": (8, 48)}, expanding=True)


def _converged_check(ctx: Ctx, ex):
    res = ctx.oracle(ex["inputs"], ex["initial_state"])
    call = ctx.call(ex["inputs"], ex["initial_state"])
    try:
        return ctx.expect_close("h", call.outputs["h"], res.values["h"], ctx.bound(res, "h"), call.desc)
    except PropertyFailure as e:
        its = _newton(ctx.target).get("iterations")
        h = call.outputs["h"]
        if h.shape[0] and ctx.spec.extra["states"] == ("h",):
            states = h.permute(1, 0, 2, 3)[:, None]
            resid = res.aux["residual"](states)
            said = f"max|F| = {resid:.3g} of the returned states"
        else:
            said = "its residual needs the full state per step, which the outputs do not give"
        raise PropertyFailure(f"{e} — not converged ({'a fixed ' + str(its) if its else 'no fixed'} iteration "
                              f"count): {said}", observed=e.observed, bound=e.bound, numeric=e.numeric,
                              profile_t=e.profile_t) from None


register(Property("newton-converged", "a Newton target matches the sequential oracle on expanding cells; a "
                  "failure states the residual of what it returned", _converged_draw, _converged_check,
                  invariant=True, applies=_applies))


# ---- newton-reduction: the parallel reduction against the sequential solve in mpmath -------------------------
STRUCTURES = ("diagonal", "2x2", "dense")  # what a reduction takes unless the target declares fewer ("structures")


def _red_draw(ctx: Ctx):
    T = ctx.draw(st.sampled_from([1, 2, 3, 5, 8, 17, 31, 64]), "T")
    kind = ctx.draw(st.sampled_from(list(_newton(ctx.target).get("structures", STRUCTURES))), "structure")
    K = {"diagonal": 1, "2x2": 2}.get(kind) or ctx.draw(st.integers(3, 5), "K")
    B, M = ctx.draw(st.integers(1, 2), "B"), ctx.draw(st.integers(1, 3), "M")
    seed = ctx.draw(st.integers(0, 2**31 - 1), "seed")
    g = torch.Generator().manual_seed(seed)
    scale = ctx.draw(st.sampled_from([0.5, 1.0, 1.5]), "A.scale")
    shape = (B, T, M) if kind == "diagonal" else (B, T, M, K, K)
    A = (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1) * scale / (1 if kind == "diagonal" else K ** .5)
    if kind == "diagonal":
        A = A[..., None]
    r = torch.randn((B, T, M, K), generator=g, dtype=torch.float64)
    return {"A": S.round_to(A, ctx.dtype), "r": S.round_to(r, ctx.dtype), "kind": kind, "K": K}


def _red_check(ctx: Ctx, ex):
    A, r, K = ex["A"], ex["r"], ex["K"]
    diag = ex["kind"] == "diagonal"
    reduce = _newton(ctx.target)["reduce"]
    got = reduce(A.to(ctx.dtype), r.to(ctx.dtype)).double()
    B, T, M, _ = r.shape
    want = torch.zeros_like(r)
    mag = torch.zeros_like(r)
    with mpmath.workdps(40):
        for b in range(B):
            for m in range(M):
                d = [mpmath.mpf(0)] * K
                w = torch.zeros(K, dtype=torch.float64)
                for t in range(T):
                    At = [[mpmath.mpf(float(A[b, t, m, 0]))]] if diag else [
                        [mpmath.mpf(float(A[b, t, m, i, j])) for j in range(K)] for i in range(K)]
                    d = [mpmath.fsum(At[i][j] * d[j] for j in range(K)) + mpmath.mpf(float(r[b, t, m, i]))
                         for i in range(K)]
                    absA = A[b, t, m].abs() if diag else A[b, t, m].abs()
                    w = (absA * w if diag else absA @ w) + r[b, t, m].abs()
                    want[b, t, m] = torch.tensor([float(v) for v in d], dtype=torch.float64)
                    mag[b, t, m] = w
    L = math.ceil(math.log2(T)) if T > 1 else 0
    u = unit_roundoff(ctx.dtype)
    bound = 2 * (L + 1) * (K + 1) * u * mag * (1 + u) + u * want.abs()
    desc = f"reduce(A={ex['kind']} {list(A.shape)}, r={list(r.shape)}) of {ctx.target.id}"
    return ctx.expect_close("δ", got, want, bound, desc, source="mpmath sequential solve")


register(Property("newton-reduction", "the target's parallel reduction equals the sequential solve in mpmath "
                  "(diagonal, 2×2, dense)", _red_draw, _red_check, invariant=True,
                  applies=lambda s, t: _applies(s, t) or (None if _newton(t).get("reduce") else
                                                          f"{t.id} declares no reduction to check")))
