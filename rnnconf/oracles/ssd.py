"""mpmath oracle for ``ssd`` (:mod:`rnnconf.spec.ssd`): the recurrence H_t = exp(Δ_t A) H_{t−1} + Δ_t x_t B_tᵀ,
y_t = H_t C_t + D x_t, one head and one step at a time, with Δ_t = softplus(dt_t + dt_bias) (the threshold
included) — and, in float64 from the exact values, the error-model ingredients of the spec: the magnitude shadow M,
the running error E, the log-decay mass G, and the chunk forms' extra terms (``form_adjust``)."""
from __future__ import annotations

import mpmath
import torch

from ..spec.ssd import SOFTPLUS_THRESHOLD, delta_condition, heads_of_groups, softplus64
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
    my, cy = [], []
    for t in range(T):
        bt = (dl[:, t, :, None, None] * x[:, t].abs()[..., None] * Bh[:, t].abs()[:, :, None, :])
        at = a[:, t, :, None, None]
        E = at * E + (2 + dA[:, t, :, None, None] * (cD[:, t, :, None, None] + 1)) * at * M \
            + (cD[:, t, :, None, None] + 3) * bt
        M = at * M + bt
        m = torch.einsum("bhpn,bhn->bhp", M, Ch[:, t].abs()) + (D.abs()[:, None] * x[:, t].abs())
        my.append(m)
        cy.append(torch.einsum("bhpn,bhn->bhp", E, Ch[:, t].abs()) + (N + 2) * m)
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


def chunk_adjust(res: OracleResult, traits, dtype=None) -> OracleResult:
    """The ingredients for a form with ``traits``: a chunk form (chunk size C, C' = min(C, T)) adds
    (2C' + 10 + 5(t + 1)/C')·m_y on y_t and (C' + 5 + 5(T + 1)/C')·M_T on the final state (spec: ERROR MODEL)."""
    T = res.aux.get("T", 0)
    if not traits.chunk_size or not T:
        return res
    Cp = min(traits.chunk_size, T)
    t1 = res.steps["y"]
    out = OracleResult(values=res.values, mag=res.mag, logmass=res.logmass, steps=res.steps, exact=res.exact,
                       dps=res.dps, carry=res.carry, aux=res.aux)
    out.cond = {"y": res.cond["y"] + (2 * Cp + 10 + 5 * t1 / Cp) * res.mag["y"],
                "final_state": res.cond["final_state"] + (Cp + 5 + 5 * (T + 1) / Cp) * res.mag["final_state"]}
    return out
