"""mpmath oracles of ParaRNN's cells (:mod:`rnnconf.spec.pararnn`): the sequential cell, channel by channel (the
recurrence is channelwise), and the same Newton iteration in mpmath, so that "after k iterations" has an exact
reference.  The Jacobian the Newton oracle uses is the analytic one (pararnn-torch's formulas), checked against
mpmath's numerical derivative on every call's first step; a mismatch is an rnnconf-internal error.
"""
from __future__ import annotations

import functools
from dataclasses import replace

import mpmath
import torch

from .base import DEFAULT_DPS, OracleResult, mp_sigmoid

_S = {"paragru": 1, "paralstm": 2}


class NewtonOracleError(AssertionError):
    """The oracle's own analytic Jacobian disagrees with mpmath's derivative of its own cell."""


def cell(name: str, x, a, b, p, s):
    """One exact step of one channel: x, a, b 3-tuples of mpf (per gate), p a 2-tuple or None, s the state."""
    if name == "paragru":
        (h,) = s
        z = mp_sigmoid(x[0] + a[0] * h + b[0])
        r = mp_sigmoid(x[1] + a[1] * h + b[1])
        n = mpmath.tanh(x[2] + a[2] * (r * h) + b[2])
        return ((1 - z) * h + z * n,)
    h, c = s
    f = mp_sigmoid(x[0] + a[0] * h + p[0] * c + b[0])
    z = mpmath.tanh(x[1] + a[1] * h + b[1])
    c2 = f * c + (1 - f) * z
    o = mp_sigmoid(x[2] + a[2] * h + p[1] * c2 + b[2])
    return (o * mpmath.tanh(c2), c2)


def jacobian(name: str, x, a, b, p, s):
    """∂s_t/∂s_{t−1} of one channel, exactly (nested lists [out][in], state order (h,) or (h, c))."""
    if name == "paragru":
        (h,) = s
        z = mp_sigmoid(x[0] + a[0] * h + b[0])
        r = mp_sigmoid(x[1] + a[1] * h + b[1])
        n = mpmath.tanh(x[2] + a[2] * (r * h) + b[2])
        dz, dr, dn = z * (1 - z), r * (1 - r), 1 - n * n
        return [[(1 - z) + (n - h) * dz * a[0] + z * dn * a[2] * (r + h * dr * a[1])]]
    h, c = s
    f = mp_sigmoid(x[0] + a[0] * h + p[0] * c + b[0])
    z = mpmath.tanh(x[1] + a[1] * h + b[1])
    c2 = f * c + (1 - f) * z
    o = mp_sigmoid(x[2] + a[2] * h + p[1] * c2 + b[2])
    th = mpmath.tanh(c2)
    df, do_ = f * (1 - f), o * (1 - o)
    dc_dc = f + (c - z) * df * p[0]
    dc_dh = (c - z) * df * a[0] + (1 - f) * (1 - z * z) * a[1]
    dh_dc2 = o * (1 - th * th) + th * do_ * p[1]
    return [[th * do_ * a[2] + dh_dc2 * dc_dh, dh_dc2 * dc_dc], [dc_dh, dc_dc]]


def _check_jacobian(name, x, a, b, p, s, where):
    J = jacobian(name, x, a, b, p, s)
    S = len(s)
    for i in range(S):
        for j in range(S):
            def fi(v, i=i, j=j):
                ss = list(s)
                ss[j] = v
                return cell(name, x, a, b, p, tuple(ss))[i]
            num = mpmath.diff(fi, s[j])
            if abs(num - J[i][j]) > mpmath.mpf(10) ** (-(mpmath.mp.dps - 12)) * (1 + abs(num)):
                raise NewtonOracleError(f"analytic ∂s[{i}]/∂s[{j}] = {mpmath.nstr(J[i][j], 15)} but mpmath.diff "
                                        f"gives {mpmath.nstr(num, 15)} at {where}")


def _channels(name, inputs, initial_state):
    """Per (b, h, d): (xs per t, a, b, p, s0) as mpf tuples."""
    Wx = inputs["Wx"].double()
    a, bb = inputs["a"].double(), inputs["b"].double()
    p = inputs["p"].double() if inputs.get("p") is not None else None
    B, T, G, H, D = Wx.shape
    S = _S[name]
    Wl, al, bl = Wx.tolist(), a.tolist(), bb.tolist()
    pl = p.tolist() if p is not None else None
    s0 = initial_state.double().tolist() if initial_state is not None else None
    for bi in range(B):
        for hi in range(H):
            for d in range(D):
                xs = [tuple(mpmath.mpf(Wl[bi][t][g][hi][d]) for g in range(3)) for t in range(T)]
                ac = tuple(mpmath.mpf(al[g][hi][d]) for g in range(3))
                bc = tuple(mpmath.mpf(bl[g][hi][d]) for g in range(3))
                pc = tuple(mpmath.mpf(pl[k][hi][d]) for k in range(2)) if pl is not None else None
                st = tuple(mpmath.mpf(s0[k][bi][hi][d]) if s0 else mpmath.mpf(0) for k in range(S))
                yield (bi, hi, d), xs, ac, bc, pc, st


def sequential(name: str, inputs: dict, initial_state, dps: int = DEFAULT_DPS) -> torch.Tensor:
    """Every state after every step: [T, S, B, H, D] (float64, rounded from mpmath)."""
    B, T, _, H, D = inputs["Wx"].shape
    out = torch.zeros(T, _S[name], B, H, D, dtype=torch.float64)
    with mpmath.workdps(dps):
        for (bi, hi, d), xs, ac, bc, pc, st in _channels(name, inputs, initial_state):
            for t in range(T):
                if t == 0:
                    _check_jacobian(name, xs[0], ac, bc, pc, st, f"b={bi}, h={hi}, d={d}, t=0")
                st = cell(name, xs[t], ac, bc, pc, st)
                out[t, :, bi, hi, d] = torch.tensor([float(v) for v in st], dtype=torch.float64)
    return out


def newton_iterates(name: str, inputs: dict, initial_state, iterations: int, omega=1.0,
                    dps: int = DEFAULT_DPS) -> tuple[list[torch.Tensor], list[float]]:
    """The Newton iteration of the spec in mpmath: ([S⁽⁰⁾ … S⁽ᵏ⁾] each [T, S, B, H, D], [max|F(S⁽ʲ⁾)|]).  Initial
    guess f(0, x_t) (f(s_0, x_1) at t = 1), δ_t = A_t δ_{t−1} − F_t, S ← S + ωδ."""
    B, T, _, H, D = inputs["Wx"].shape
    S = _S[name]
    its = [torch.zeros(T, S, B, H, D, dtype=torch.float64) for _ in range(iterations + 1)]
    res = [mpmath.mpf(0)] * (iterations + 1)
    with mpmath.workdps(dps):
        w = mpmath.mpf(omega)
        for (bi, hi, d), xs, ac, bc, pc, s0 in _channels(name, inputs, initial_state):
            zero = tuple(mpmath.mpf(0) for _ in range(S))
            H_ = [cell(name, xs[t], ac, bc, pc, s0 if t == 0 else zero) for t in range(T)]
            for j in range(iterations + 1):
                prev = [s0] + H_[:-1]
                pred = [cell(name, xs[t], ac, bc, pc, prev[t]) for t in range(T)]
                r = [[pred[t][k] - H_[t][k] for k in range(S)] for t in range(T)]  # −F_t
                res[j] = max([res[j]] + [abs(v) for row in r for v in row])
                for t in range(T):
                    its[j][t, :, bi, hi, d] = torch.tensor([float(v) for v in H_[t]], dtype=torch.float64)
                if j == iterations:
                    break
                delta = [mpmath.mpf(0)] * S
                new = []
                for t in range(T):
                    A = jacobian(name, xs[t], ac, bc, pc, prev[t])
                    delta = [sum(A[i][k] * delta[k] for k in range(S)) + r[t][i] for i in range(S)]
                    new.append(tuple(H_[t][i] + w * delta[i] for i in range(S)))
                H_ = new
    return its, [float(v) for v in res]


def _cached_newton(name, inputs, initial_state, dps):
    """``newton(k, omega=1.0)``: the iterates up to k, computed once for the largest k asked so far (per ω)."""
    cache: dict = {}

    def newton(k: int, omega=1.0):
        got = cache.get(omega)
        if got is None or len(got[0]) <= k:
            got = newton_iterates(name, inputs, initial_state, k, omega, dps=dps)
            cache[omega] = got
        return got[0][:k + 1], got[1][:k + 1]

    return newton


def residual(name: str, inputs: dict, initial_state, states: torch.Tensor, dps: int = DEFAULT_DPS) -> float:
    """max_t |F_t| = |s_t − f(s_{t−1}, x_t)| of the given trajectory ``states`` [T, S, B, H, D], in mpmath (the
    float values exactly as given; non-finite values give inf)."""
    if not torch.isfinite(states).all():
        return float("inf")
    worst = mpmath.mpf(0)
    sl = states.double().tolist()
    with mpmath.workdps(dps):
        for (bi, hi, d), xs, ac, bc, pc, s0 in _channels(name, inputs, initial_state):
            prev = s0
            for t in range(len(xs)):
                cur = tuple(mpmath.mpf(sl[t][k][bi][hi][d]) for k in range(len(s0)))
                f = cell(name, xs[t], ac, bc, pc, prev)
                worst = max([worst] + [abs(cur[k] - f[k]) for k in range(len(s0))])
                prev = cur
    return float(worst)


def para_oracle(name: str, Wx, a, b, p=None, initial_state=None, dps: int = DEFAULT_DPS) -> OracleResult:
    from ..spec.pararnn import running_bounds

    inputs = {"Wx": Wx, "a": a, "b": b, "p": p}
    B, T, G, H, D = Wx.shape
    S = _S[name]
    states = sequential(name, inputs, initial_state, dps)
    exact = [states[t] for t in range(T)]
    fin = states[-1] if T else (initial_state.double() if initial_state is not None
                                else torch.zeros(S, B, H, D, dtype=torch.float64))
    hs = states[:, 0].permute(1, 0, 2, 3) if T else torch.zeros(B, 0, H, D, dtype=torch.float64)
    E, C = running_bounds(name, inputs, initial_state, exact)
    zero = torch.zeros(S, B, H, D, dtype=torch.float64)
    stack = (lambda L, k: torch.stack([e[k] for e in L], 1)) if T else (
        lambda L, k: torch.zeros(B, 0, H, D, dtype=torch.float64))
    ops = 3 * 4 + 12  # roundings on one step's chain (the underflow floor's count)
    steps_h = ops * torch.arange(1, T + 1, dtype=torch.float64).view(1, T, 1, 1).expand(B, T, H, D)
    res = OracleResult(values={"h": hs, "final_state": fin}, mag={"h": hs.abs(), "final_state": fin.abs()},
                       logmass={"h": None, "final_state": None},
                       steps={"h": steps_h, "final_state": torch.full((S, B, H, D), float(ops * max(T, 1)))},
                       dps=dps)
    res.cond = {"h": stack(E, 0), "final_state": E[-1] if T else zero}
    res.carry = {"h": stack(C, 0), "final_state": C[-1] if T else zero}
    res.aux["states"] = states
    res.aux["form_adjust"] = functools.partial(_adjust, name, inputs, initial_state, exact, C, {})
    res.aux["newton"] = _cached_newton(name, inputs, initial_state, dps)
    res.aux["residual"] = functools.partial(residual, name, inputs, initial_state, dps=dps)
    return res


def newton_extra(C: list, M: list):
    """The Newton form's update roundings and what its stopping rule leaves (spec's ERROR MODEL), units of u_acc."""
    from ..spec.pararnn import NEWTON_STOP, NEWTON_UPDATE_ROUNDINGS

    return [NEWTON_UPDATE_ROUNDINGS * c + NEWTON_STOP * m for c, m in zip(C, M)]


def _adjust(name, inputs, initial_state, exact, C, cache, res: OracleResult, traits, dtype):
    """The bound for the precision this form evaluates ``dtype`` in (beyond first order in each step's own
    rounding), plus a Newton form's update roundings."""
    from ..spec.nonlinear import working_precision
    from ..spec.pararnn import running_bounds

    key = (working_precision(dtype, traits), getattr(traits, "solve", "sequential"))
    if key not in cache:
        T = len(exact)
        E, _, M = running_bounds(name, inputs, initial_state, exact, u=key[0][0], fmax=key[0][1], with_max=True)
        inf = float("inf")
        if key[1] == "newton":
            E = [e + x for e, x in zip(E, newton_extra(C, M))]
            if T:
                from ..spec.pararnn import newton_overflow

                over = newton_overflow(name, inputs, initial_state, T, key[0][1])  # [B, T, H, D]
                E = [torch.where(over[:, t][None], torch.full_like(e, inf), e) for t, e in enumerate(E)]
        if T:
            cond = {"h": torch.nan_to_num(torch.stack([e[0] for e in E], 1), nan=inf),
                    "final_state": torch.nan_to_num(E[-1], nan=inf)}
        else:
            cond = res.cond
        cache[key] = replace(res, cond=cond)
    return cache[key]


def _bind(name):
    if name == "paralstm":
        def fn(Wx, a, b, p, initial_state=None, dps: int = DEFAULT_DPS):
            return para_oracle(name, Wx, a, b, p, initial_state, dps)
    else:
        def fn(Wx, a, b, initial_state=None, dps: int = DEFAULT_DPS):
            return para_oracle(name, Wx, a, b, None, initial_state, dps)
    return fn


paragru_oracle, paralstm_oracle = _bind("paragru"), _bind("paralstm")
