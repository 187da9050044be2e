"""mpmath oracle for ``ssd`` (:mod:`rnnconf.spec.ssd`): the recurrence H_t = exp(Δ_t A) H_{t−1} + Δ_t x_t B_tᵀ,
y_t = H_t C_t + D x_t, one head and one step at a time, with Δ_t = softplus(dt_t + dt_bias) (the threshold
included) — and, in float64 from the exact values, the error-model ingredients of the spec: the magnitude shadow M,
the running error E, the log-decay mass G, and the chunk forms' extra terms (``form_adjust``)."""
from __future__ import annotations

import mpmath
import torch

from ..spec.nonlinear import working_precision
from ..spec.ssd import SOFTPLUS_THRESHOLD, UNDERFLOW_PER_STEP, delta_condition, heads_of_groups, softplus64
from .base import DEFAULT_DPS, OracleResult, mp_to_tensor


def _mp_softplus(z):
    return z if z > SOFTPLUS_THRESHOLD else mpmath.log1p(mpmath.exp(z))


def ssd_oracle(x, dt, A, B, C, D, dt_bias, initial_state=None, dps: int = DEFAULT_DPS) -> OracleResult:
    Bsz, T, H, P = x.shape
    G, N = B.shape[2], B.shape[3]
    R = H // G
    xs, dts, As, Bs, Cs, Ds, bs = (v.double().tolist() for v in (x, dt, A, B, C, D, dt_bias))
    h0 = initial_state.double().tolist() if initial_state is not None else None
    y = [[[None] * H for _ in range(T)] for _ in range(Bsz)]
    fin = [[None] * H for _ in range(Bsz)]
    with mpmath.workdps(dps):
        for b in range(Bsz):
            for h in range(H):
                g = h // R
                a_h, d_h, bias = mpmath.mpf(As[h]), mpmath.mpf(Ds[h]), mpmath.mpf(bs[h])
                S = [[mpmath.mpf(h0[b][h][p][n]) if h0 else mpmath.mpf(0) for n in range(N)] for p in range(P)]
                for t in range(T):
                    dl = _mp_softplus(mpmath.mpf(dts[b][t][h]) + bias)
                    dec = mpmath.exp(dl * a_h)
                    xt = [mpmath.mpf(v) for v in xs[b][t][h]]
                    Bt = [mpmath.mpf(v) for v in Bs[b][t][g]]
                    Ct = [mpmath.mpf(v) for v in Cs[b][t][g]]
                    S = [[dec * S[p][n] + dl * xt[p] * Bt[n] for n in range(N)] for p in range(P)]
                    y[b][t][h] = [mpmath.fdot(S[p], Ct) + d_h * xt[p] for p in range(P)]
                fin[b][h] = S
        yt = mp_to_tensor(y, (Bsz, T, H, P)) if T else torch.zeros(Bsz, 0, H, P, dtype=torch.float64)
        ft = mp_to_tensor(fin, (Bsz, H, P, N)) if H and P and N else torch.zeros(Bsz, H, P, N, dtype=torch.float64)
    res = OracleResult(values={"y": yt, "final_state": ft}, mag={}, logmass={}, steps={}, exact={"y": y}, dps=dps)
    _ingredients(res, x, dt, A, B, C, D, dt_bias, initial_state)
    res.aux["form_adjust"] = chunk_adjust
    return res


def _ingredients(res: OracleResult, x, dt, A, B, C, D, dt_bias, h0) -> None:
    """M, E (module docstring of the spec), and mag/cond/steps/logmass/carry for the sequential form."""
    x, dt, A, D, bias = (v.double() for v in (x, dt, A, D, dt_bias))
    Bsz, T, H, P = x.shape
    R = H // B.shape[2]
    Bh, Ch = heads_of_groups(B.double(), R), heads_of_groups(C.double(), R)
    N = Bh.shape[-1]
    z = dt + bias
    dl = softplus64(z)  # float64 is exact enough for error-model ingredients
    cD = delta_condition(z)
    dA = dl * A.abs()
    a = torch.exp(-dA)
    M = h0.double().abs() if h0 is not None else torch.zeros(Bsz, H, P, N, dtype=torch.float64)
    E = torch.zeros_like(M)
    my, cy, uy, smag = [], [], [], []
    q = (lambda v: v.abs().clamp(min=1.0))  # noqa: E731  (a factor's cofactor weight, spec: underflow floor)
    W = torch.zeros_like(M)
    run = M.amax((-2, -1))
    for t in range(T):
        W = W + UNDERFLOW_PER_STEP * (q(dl[:, t])[..., None, None] * q(x[:, t])[..., None]
                                      * q(Bh[:, t])[:, :, None, :] + M.clamp(min=1.0))
        bt = (dl[:, t, :, None, None] * x[:, t].abs()[..., None] * Bh[:, t].abs()[:, :, None, :])
        at = a[:, t, :, None, None]
        E = at * E + (2 + dA[:, t, :, None, None] * (cD[:, t, :, None, None] + 1)) * at * M \
            + (cD[:, t, :, None, None] + 3) * bt
        run = torch.maximum(run, M.amax((-2, -1)))  # the largest state magnitude so far (h0 included)
        M = at * M + bt
        run = torch.maximum(run, M.amax((-2, -1)))
        # [B, H]: what a stored state, an input term, or a read C·H of an undecayed earlier state must hold
        smag.append(torch.maximum(torch.maximum(M, bt).amax((-2, -1)), Ch[:, t].abs().sum(-1) * run))
        m = torch.einsum("bhpn,bhn->bhp", M, Ch[:, t].abs()) + (D.abs()[:, None] * x[:, t].abs())
        my.append(m)
        cy.append(torch.einsum("bhpn,bhn->bhp", E, Ch[:, t].abs()) + (N + 2) * m)
        uy.append(torch.einsum("bhpn,bhn->bhp", W + 2, q(Ch[:, t])) + (N + 4) * (q(D)[:, None] * q(x[:, t]) + 1))
    st = (lambda xs, shape: torch.stack(xs, 1) if T else torch.zeros(shape, dtype=torch.float64))  # noqa: E731
    m_y, c_y = st(my, (Bsz, 0, H, P)), st(cy, (Bsz, 0, H, P))
    Gc = torch.cumsum(dA, 1)  # [B, T, H]
    res.mag = {"y": m_y, "final_state": M}
    res.cond = {"y": c_y, "final_state": E}
    res.carry = {"y": m_y, "final_state": M}
    steps = torch.arange(1, T + 1, dtype=torch.float64).view(1, T, 1, 1).expand(Bsz, T, H, P)
    res.steps = {"y": steps, "final_state": torch.full((Bsz, H, P, N), float(max(T, 1)), dtype=torch.float64)}
    res.logmass = {"y": Gc[..., None].expand(Bsz, T, H, P),
                   "final_state": (Gc[:, -1] if T else torch.zeros(Bsz, H, dtype=torch.float64))[..., None, None]
                   .expand(Bsz, H, P, N)}
    res.aux["T"] = T
    res.aux["underflow"] = {"y": st(uy, (Bsz, 0, H, P)), "final_state": W + 2}
    res.aux["state_mag"] = torch.cummax(st(smag, (Bsz, 0, H)), 1).values if T else st(smag, (Bsz, 0, H))


def chunk_adjust(res: OracleResult, traits, dtype=None) -> OracleResult:
    """The ingredients for a form with ``traits``: a chunk form (chunk size C, C' = min(C, T)) adds
    (2C' + 10 + 5(t + 1)/C')·m_y on y_t and (C' + 5 + 5(T + 1)/C')·M_T on the final state (spec: ERROR MODEL); in a
    working precision whose range a state's or an input term's magnitude leaves, what reads it is not judged."""
    T = res.aux.get("T", 0)
    over = None
    if dtype is not None and T:  # a state or input term beyond the working precision's range: not judged after it
        fmax = working_precision(dtype, traits)[1]
        over = res.aux["state_mag"] >= fmax  # [B, T, H], monotone in t
    if (not traits.chunk_size or not T) and (over is None or not bool(over.any())):
        return res
    out = OracleResult(values=res.values, mag=res.mag, logmass=res.logmass, steps=res.steps, exact=res.exact,
                       dps=res.dps, carry=res.carry, aux=res.aux)
    cy, cf = res.cond["y"], res.cond["final_state"]
    if traits.chunk_size:
        Cp = min(traits.chunk_size, T)
        cy = cy + (2 * Cp + 10 + 5 * res.steps["y"] / Cp) * res.mag["y"]
        cf = cf + (Cp + 5 + 5 * (T + 1) / Cp) * res.mag["final_state"]
    if over is not None and bool(over.any()):
        # a chunk form forms every chunk state (the final one too) before reading any: its whole call
        whole = over[:, -1:].expand_as(over) if traits.chunk_size else over
        cy = torch.where(whole[..., None], float("inf"), cy)
        cf = torch.where(over[:, -1, :, None, None], float("inf"), cf)
    out.cond = {"y": cy, "final_state": cf}
    return out
