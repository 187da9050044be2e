"""mpmath oracles of the nonlinear cells (:mod:`rnnconf.spec.nonlinear`): each cell stepped in sequence, per batch
element and head, every gate pre-activation an exact dot product (``mpmath.fdot``), the sLSTM stabiliser computed
exactly.  The error ingredients come from the spec's running error analysis on this exact trajectory.

Every call also checks the cells' own facts on the exact values: gates in [0, 1] (:func:`check_gates`); for sLSTM
the unstabilised recurrence's h, max(i′, f′) = 1 after the first step and m_t ≥ m_{t−1} + log σ(f̃_t)
(:func:`check_slstm`).  A violation is a defect of the oracle or the spec (an rnnconf-internal error).
"""
from __future__ import annotations

import functools
from dataclasses import replace

import mpmath
import torch

from .base import DEFAULT_DPS, OracleResult, mp_sigmoid

_S = {"lstm": 2, "gru": 1, "elman": 1, "slstm": 4, "lstm-odyssey": 5}


class CellInvariantViolation(AssertionError):
    """An exact fact of a cell failed on the oracle's own values."""


def _pre(Wx, R, bias, g, hprev):
    """Gate g's pre-activation vector: Wx[g] + b[g] + R[g]·h (exact dots)."""
    return [Wx[g][i] + bias[g][i] + mpmath.fdot(R[g][i], hprev) for i in range(len(hprev))]


def _logsig(x):
    return -mpmath.log1p(mpmath.exp(-x)) if x > -30 else x - mpmath.log1p(mpmath.exp(x))


def check_gates(gates, where: str) -> None:
    """Every sigmoid gate value in [0, 1] (open in exact arithmetic; 30 digits round σ(±70) and beyond to 0 or 1)."""
    for name, vec in gates:
        for i, g in enumerate(vec):
            if not (0 <= g <= 1):
                raise CellInvariantViolation(f"gate {name}[{i}] = {mpmath.nstr(g, 12)} outside [0, 1] at {where}")


def check_slstm(steps, where: str) -> None:
    """``steps``: per step (first, ip, fp, m_prev, m, logsig_f) vectors.  After the first step max(i′, f′) = 1,
    and m_t ≥ m_{t−1} + log σ(f̃_t) always (m_t is a max containing that term, or ĩ on a first step — then the
    fact is about a fresh start and not asserted)."""
    tol = mpmath.mpf(10) ** (-(mpmath.mp.dps - 5))
    for t, (first, ip, fp, mp_, m, lsf) in enumerate(steps):
        for i in range(len(ip)):
            if first[i]:
                continue
            if abs(max(ip[i], fp[i]) - 1) > tol:
                raise CellInvariantViolation(f"sLSTM max(i′, f′) = {mpmath.nstr(max(ip[i], fp[i]), 15)} ≠ 1 at "
                                             f"{where}, t={t}, d={i}")
            if m[i] < mp_[i] + lsf[i] - tol * (1 + abs(m[i])):
                raise CellInvariantViolation(f"sLSTM m_t < m_(t−1) + log σ(f̃) at {where}, t={t}, d={i}")


def _step(cell, Wx, R, bias, st, extra, log):
    """One exact step; ``log`` collects (name, gates) for check_gates and sLSTM facts."""
    D = len(st[0])
    if cell == "lstm":
        h, c = st
        i, f, z, o = ([mp_sigmoid(v) for v in _pre(Wx, R, bias, g, h)] if g != 2 else
                      [mpmath.tanh(v) for v in _pre(Wx, R, bias, g, h)] for g in range(4))
        log.append((("i", i), ("f", f), ("o", o)))
        c = [f[k] * c[k] + i[k] * z[k] for k in range(D)]
        return [o[k] * mpmath.tanh(c[k]) for k in range(D)], c
    if cell == "elman":
        (h,) = st
        return ([mpmath.tanh(v) for v in _pre(Wx, R, bias, 0, h)],)
    if cell == "gru":
        (h,) = st
        r = [mp_sigmoid(v) for v in _pre(Wx, R, bias, 0, h)]
        z = [mp_sigmoid(v) for v in _pre(Wx, R, bias, 1, h)]
        log.append((("r", r), ("z", z)))
        rec = [bias[2][k] + mpmath.fdot(R[2][k], h) for k in range(D)]
        n = [mpmath.tanh(Wx[2][k] + r[k] * rec[k]) for k in range(D)]
        return ([(1 - z[k]) * n[k] + z[k] * h[k] for k in range(D)],)
    if cell == "slstm":
        h, c, n, m = st
        it, ft, zt, ot = (_pre(Wx, R, bias, g, h) for g in range(4))
        lsf = [_logsig(v) for v in ft]
        first = [n[k] == 0 for k in range(D)]
        m_new = [it[k] if first[k] else max(lsf[k] + m[k], it[k]) for k in range(D)]
        ip = [mpmath.exp(it[k] - m_new[k]) for k in range(D)]
        fp = [mpmath.exp(lsf[k] + m[k] - m_new[k]) for k in range(D)]
        o = [mp_sigmoid(v) for v in ot]
        log.append((("o", o),))
        extra.setdefault("_slstm", []).append((first, ip, fp, m, m_new, lsf))
        c = [fp[k] * c[k] + ip[k] * mpmath.tanh(zt[k]) for k in range(D)]
        n = [max(fp[k] * n[k] + ip[k], 1) for k in range(D)]
        return [o[k] * c[k] / n[k] for k in range(D)], c, n, m_new
    if cell == "lstm-odyssey":
        return _odyssey(Wx, R, bias, st, extra, log)
    raise KeyError(cell)


def _odyssey(Wx, R, bias, st, extra, log):
    var, p, Rg = extra["variant"], extra["p"], extra["Rg"]
    h, c, gi, gf, go = st
    D = len(h)
    peep = var != "NP"
    prev = (gi, gf, go)

    def gate_pre(g, a, cc):
        v = _pre(Wx, R, bias, g, h)
        if peep:
            v = [v[k] + p[a][k] * cc[k] for k in range(D)]
        if var == "FGR":
            v = [v[k] + sum(mpmath.fdot(Rg[a][a2][k], prev[a2]) for a2 in range(3)) for k in range(D)]
        return v

    zt = _pre(Wx, R, bias, 2, h)
    z = zt if var == "NIAF" else [mpmath.tanh(v) for v in zt]
    i = [mpmath.mpf(1)] * D if var == "NIG" else [mp_sigmoid(v) for v in gate_pre(0, 0, c)]
    if var == "CIFG":
        f = [1 - v for v in i]
    else:
        f = [mpmath.mpf(1)] * D if var == "NFG" else [mp_sigmoid(v) for v in gate_pre(1, 1, c)]
    c_new = [z[k] * i[k] + c[k] * f[k] for k in range(D)]
    o = [mpmath.mpf(1)] * D if var == "NOG" else [mp_sigmoid(v) for v in gate_pre(3, 2, c_new)]
    log.append((("i", i), ("f", f), ("o", o)))
    hc = c_new if var == "NOAF" else [mpmath.tanh(v) for v in c_new]
    return [o[k] * hc[k] for k in range(D)], c_new, i, f, o


def _unstabilised(Wx_bh, R_h, b_h, st0, T):
    """sLSTM's h without the stabiliser (c′ = σ(f̃)c′ + e^{ĩ}tanh z̃, n′ = σ(f̃)n′ + e^{ĩ}, h = σ(õ)c′/n′), started
    from c′_0 = e^{m_0}c_0, n′_0 = e^{m_0}n_0; None where the clamp could act (a drawn n_0 ∈ (0, 1))."""
    h, c, n, m = st0
    if any(0 < v < 1 for v in n):
        return None
    D = len(h)
    cp = [mpmath.exp(m[k]) * c[k] for k in range(D)]  # also on a first step (n_0 = 0): f′ = e^{log σ + m_0 − ĩ}
    np_ = [mpmath.exp(m[k]) * n[k] for k in range(D)]
    out = []
    for t in range(T):
        it, ft, zt, ot = (_pre(Wx_bh[t], R_h, b_h, g, h) for g in range(4))
        fs = [mp_sigmoid(v) for v in ft]
        ei = [mpmath.exp(v) for v in it]
        cp = [fs[k] * cp[k] + ei[k] * mpmath.tanh(zt[k]) for k in range(D)]
        np_ = [fs[k] * np_[k] + ei[k] for k in range(D)]
        h = [mp_sigmoid(ot[k]) * cp[k] / np_[k] for k in range(D)]
        out.append(h)
    return out


def nonlinear_oracle(cell: str, Wx, R, b, p=None, Rg=None, variant=None, initial_state=None,
                     dps: int = DEFAULT_DPS) -> OracleResult:
    from ..spec.nonlinear import running_errors

    B, T, G, H, D = Wx.shape
    S = _S[cell]
    Wl, Rl, bl = Wx.double().tolist(), R.double().tolist(), b.double().tolist()
    s0 = initial_state.double().tolist() if initial_state is not None else None
    pl = p.double().tolist() if p is not None else None
    Rgl = Rg.double().tolist() if Rg is not None else None
    hs = torch.zeros(B, T, H, D, dtype=torch.float64)
    states = torch.zeros(T, S, B, H, D, dtype=torch.float64)
    fin = torch.zeros(S, B, H, D, dtype=torch.float64)
    with mpmath.workdps(dps):
        for bi in range(B):
            for hi in range(H):
                R_h = [[[mpmath.mpf(x) for x in row] for row in Rl[g][hi]] for g in range(G)]
                b_h = [[mpmath.mpf(x) for x in bl[g][hi]] for g in range(G)]
                st = tuple([mpmath.mpf(s0[k][bi][hi][d]) if s0 else mpmath.mpf(0) for d in range(D)]
                           for k in range(S))
                st_init = st
                extra = {}
                if cell == "lstm-odyssey":
                    extra = {"variant": variant,
                             "p": [[mpmath.mpf(x) for x in pl[a][hi]] for a in range(3)],
                             "Rg": [[[[mpmath.mpf(x) for x in row] for row in Rgl[a][a2][hi]] for a2 in range(3)]
                                    for a in range(3)]}
                log = []
                Wbh = []
                for t in range(T):
                    Wt = [[mpmath.mpf(x) for x in Wl[bi][t][g][hi]] for g in range(G)]
                    Wbh.append(Wt)
                    st = _step(cell, Wt, R_h, b_h, st, extra, log)
                    for k in range(S):
                        states[t, k, bi, hi] = torch.tensor([float(v) for v in st[k]], dtype=torch.float64)
                    hs[bi, t, hi] = states[t, 0, bi, hi]
                for k in range(S):
                    fin[k, bi, hi] = torch.tensor([float(v) for v in st[k]], dtype=torch.float64)
                where = f"b={bi}, h={hi}"
                for t, entry in enumerate(log):
                    check_gates(entry, f"{where}, t={t}")
                if cell == "slstm":
                    check_slstm(extra.get("_slstm", []), where)
                    un = _unstabilised(Wbh, R_h, b_h, st_init, T)
                    if un is not None:
                        _compare_unstabilised(un, hs[bi, :, hi], where)
    inputs = {"Wx": Wx, "R": R, "b": b}
    if cell == "lstm-odyssey":
        inputs.update(p=p, Rg=Rg, variant=variant)
    exact_states = [states[t] for t in range(T)]
    E, ops = running_errors(cell, inputs, initial_state, exact_states, mode="ops")
    C, _ = running_errors(cell, inputs, initial_state, exact_states, mode="store")
    zero = torch.zeros(S, B, H, D, dtype=torch.float64)
    Eh = torch.stack([e[0] for e in E], 1) if T else torch.zeros(B, 0, H, D, dtype=torch.float64)
    Ch = torch.stack([e[0] for e in C], 1) if T else torch.zeros(B, 0, H, D, dtype=torch.float64)
    steps_h = ops * torch.arange(1, T + 1, dtype=torch.float64).view(1, T, 1, 1).expand(B, T, H, D)
    res = OracleResult(values={"h": hs, "final_state": fin},
                       mag={"h": hs.abs(), "final_state": fin.abs()}, logmass={"h": None, "final_state": None},
                       steps={"h": steps_h, "final_state": torch.full((S, B, H, D), float(ops * max(T, 1)))},
                       dps=dps)
    if cell == "slstm":  # h in gauge-invariant coordinates, tight (the spec's slstm_linearised)
        from ..spec.nonlinear import slstm_linearised

        Eh, Ch = slstm_linearised(inputs, initial_state, exact_states)
    res.cond = {"h": Eh, "final_state": E[-1] if T else zero}
    res.carry = {"h": Ch, "final_state": C[-1] if T else zero}
    res.aux["form_adjust"] = functools.partial(_precision_adjust, cell, inputs, initial_state, exact_states, {})
    return res


_LINEAR_REGIME = 2.0 ** -10  # sLSTM: the first-order φ bound is kept while no activation input moves more


def _precision_adjust(cell, inputs, initial_state, exact_states, cache, res: OracleResult, traits, dtype):
    """The bound beyond first order for the precision this form evaluates ``dtype`` in (the spec's
    ``working_precision``): a half-precision form whose pre-activations move out of an activation's linear regime,
    or whose values overflow, is charged what that does (:mod:`rnnconf.spec.running_error`).  sLSTM's h keeps its
    first-order bound in invariant coordinates while every activation input moves by at most 2⁻¹⁰, and takes the
    (c, n, m) analysis otherwise.  A NaN error (an overflowing value) becomes an infinite bound: not judged."""
    from ..spec.nonlinear import running_errors, working_precision

    key = working_precision(dtype, traits)
    if key not in cache:
        T = len(exact_states)
        seen = [0.0]
        E, _ = running_errors(cell, inputs, initial_state, exact_states, mode="ops", u=key[0], fmax=key[1],
                              seen=seen)
        inf = float("inf")
        Eh = torch.stack([e[0] for e in E], 1) if T else res.cond["h"]
        if cell == "slstm" and seen[0] <= _LINEAR_REGIME:
            Eh = res.cond["h"]
        cond = {"h": torch.nan_to_num(Eh, nan=inf),
                "final_state": torch.nan_to_num(E[-1], nan=inf) if T else res.cond["final_state"]}
        cache[key] = replace(res, cond=cond)
    return cache[key]


def _compare_unstabilised(un, h_stab: torch.Tensor, where: str) -> None:
    for t, h in enumerate(un):
        for k, v in enumerate(h):
            if not mpmath.isfinite(v):
                continue
            ref = float(h_stab[t, k])
            if abs(float(v) - ref) > 1e-20 + 1e-12 * abs(ref):
                raise CellInvariantViolation(f"sLSTM unstabilised h = {float(v)!r} ≠ stabilised {ref!r} at {where}, "
                                             f"t={t}, d={k}")


def _bind(cell):
    if cell == "lstm-odyssey":
        def fn(Wx, R, b, p, Rg, variant="vanilla", initial_state=None, dps: int = DEFAULT_DPS):
            return nonlinear_oracle(cell, Wx, R, b, p, Rg, variant, initial_state, dps)
    else:
        def fn(Wx, R, b, initial_state=None, dps: int = DEFAULT_DPS):
            return nonlinear_oracle(cell, Wx, R, b, initial_state=initial_state, dps=dps)
    return fn


lstm_oracle, gru_oracle, elman_oracle, slstm_oracle, odyssey_oracle = (
    _bind(c) for c in ("lstm", "gru", "elman", "slstm", "lstm-odyssey"))
