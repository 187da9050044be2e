"""mpmath oracle for ``forgetting-attention``: every score s·q_iᵀk_j + D_ij exactly (``fdot``), D_ij summed
directly from the gates (never a difference of cumulative sums), each row through a stable softmax."""
from __future__ import annotations

import math
from dataclasses import replace

import mpmath
import torch

from ..spec.softmax import default_scale
from .base import DEFAULT_DPS, OracleResult, mp_to_tensor
from .softmax import attend_row, softmax_bound_terms


def attention_oracle(q, k, v, g=None, scale=None, dps: int = DEFAULT_DPS, fixed_query: bool = False,
                     rows=None):
    """Causal (forgetting) attention, [B, T, H, ·] layout; ``g=None``: plain softmax attention.  ``fixed_query``:
    q is [B, H, K] and every step reads it (Aaren).  ``rows``: evaluate only these query rows (ascending indices;
    rows are independent given the keys, row i reads keys j ≤ i): every result then has R = len(rows) rows along
    T, at cost Σ_r (rows[r] + 1) instead of T(T+1)/2 — what the boundary probes need at T = 4097."""
    B, T, H, Vd = v.shape
    K = q.shape[-1]
    rows = list(range(T)) if rows is None else [int(i) for i in rows]
    R = len(rows)
    s_f = default_scale(K) if scale is None else float(scale)
    qs, ks, vs = q.double().tolist(), k.double().tolist(), v.double().tolist()
    gs = g.double().tolist() if g is not None else None
    o = [[[None] * H for _ in range(R)] for _ in range(B)]
    P = torch.zeros(B, H, R, T, dtype=torch.float64)
    ZM = torch.zeros(B, H, R, T, dtype=torch.float64)
    DD = torch.zeros(B, H, R, T, dtype=torch.float64)
    with mpmath.workdps(dps):
        s = (1 / mpmath.sqrt(K)) if scale is None else mpmath.mpf(s_f)
        for b in range(B):
            for h in range(H):
                kr = [[mpmath.mpf(x) for x in ks[b][j][h]] for j in range(T)]
                vr = [[mpmath.mpf(x) for x in vs[b][j][h]] for j in range(T)]
                qfix = [mpmath.mpf(x) for x in qs[b][h]] if fixed_query else None
                for r, i in enumerate(rows):
                    qi = qfix if fixed_query else [mpmath.mpf(x) for x in qs[b][i][h]]
                    D = [mpmath.mpf(0)] * (i + 1)
                    if gs is not None:
                        for j in range(i - 1, -1, -1):  # D_ij = D_i,j+1 + g_{j+1}: a direct sum, no cancellation
                            D[j] = D[j + 1] + gs[b][j + 1][h]
                    z = [s * mpmath.fdot(qi, kr[j]) + D[j] for j in range(i + 1)]
                    oi, Pi, zm = attend_row(z, vr[:i + 1])
                    o[b][r][h] = oi
                    P[b, h, r, :i + 1] = torch.tensor(Pi, dtype=torch.float64)
                    ZM[b, h, r, :i + 1] = torch.tensor(zm, dtype=torch.float64)
                    if gs is not None:
                        DD[b, h, r, :i + 1] = torch.tensor([float(d) for d in D], dtype=torch.float64)
        ot = mp_to_tensor(o, (B, R, H, Vd)) if R else torch.zeros(B, 0, H, Vd, dtype=torch.float64)
    idx = torch.tensor(rows, dtype=torch.long)
    qh = (q.double()[:, None].expand(B, R, H, K) if fixed_query else q.double()[:, idx]).transpose(1, 2)
    a = s_f * qh.abs() @ k.double().transpose(1, 2).abs().transpose(-1, -2)  # [B, H, R, T]
    causal = torch.arange(T)[None, :] <= idx[:, None]  # key j ≤ row i
    eps = torch.where(causal, (K + 2) * a + 3 * ZM.abs() + 2 * DD.abs() + 4, torch.zeros_like(a))
    mag, cond = softmax_bound_terms(P, eps, v.double().transpose(1, 2))
    steps = (idx + 1).double().view(1, R, 1, 1).expand(B, R, H, Vd)
    G = None
    if g is not None:
        G = torch.cumsum(g.double().abs(), 1)[:, idx][..., None].expand(B, R, H, Vd)
    return OracleResult(values={"o": ot}, mag={"o": mag.transpose(1, 2)}, logmass={"o": G}, steps={"o": steps},
                        exact={"o": o}, dps=dps, cond={"o": cond.transpose(1, 2)}, aux={"P": P, "eps": eps})


def forgetting_attention_oracle(q, k, v, g, scale=None, initial_state=None, dps: int = DEFAULT_DPS, rows=None):
    if initial_state is not None:
        raise ValueError("forgetting-attention is state-free: no initial_state")
    return attention_oracle(q, k, v, g, scale=scale, dps=dps, rows=rows)


def acp_oracle(q, k, v, g, scale=None, initial_state=None, dps: int = DEFAULT_DPS, log_eps: float | None = None,
               u: float = 0.0, rows=None):
    """The exact FoX output, with the slack ACP's guarantee permits: 2·ε·e^{Δ_i}·max_{j≤i}|v_j| per element (Δ_i:
    the rounding budget of the form's pruning decision, :func:`acp_delta_error`, added by the property).
    ``rows``: only these query rows (see :func:`attention_oracle`); the threshold still sees the whole sequence."""
    from ..spec.forgetting_attention import ACP_LOG_EPS, acp_delta_error

    res = forgetting_attention_oracle(q, k, v, g, scale=scale, initial_state=initial_state, dps=dps, rows=rows)
    idx = torch.arange(v.shape[1]) if rows is None else torch.tensor([int(i) for i in rows], dtype=torch.long)
    le = ACP_LOG_EPS if log_eps is None else log_eps
    vmax = torch.cummax(v.double().abs(), 1).values if v.shape[1] else v.double().abs()
    res.slack = {"o": 2 * math.exp(le) * vmax[:, idx]}
    # the exponent budget of the form's decision, in units of u: (threshold part, cumsum part) per row [B, T, H, 1]
    base = acp_delta_error(q, k, g, le, 1.0, c_log_depth=False)  # [B, 1, H]: the same for every row
    cum = (acp_delta_error(q, k, g, le, 1.0) - base)[:, idx]
    res.aux["acp_exponent_units"] = (base[..., None], cum[..., None])
    res.aux["form_adjust"] = _acp_form_adjust
    return res


def acp_exponent_factor(res: OracleResult, traits, dtype) -> torch.Tensor:
    """e^Δ [B, T, H, 1]: how far a form's own rounding may move ACP's exponent-threshold decision — the oracle's
    budget in units of u, charged at the form's accumulation precision (the cumsum part only to cumsum forms)."""
    from ..spec.softmax import ATTENTION_ERROR

    base, cum = res.aux["acp_exponent_units"]
    u = ATTENTION_ERROR.accumulate_u(dtype, traits)
    return torch.exp(u * (base + (cum if traits.cumsum != "none" else 0)))


def _acp_form_adjust(res: OracleResult, traits, dtype) -> OracleResult:
    """The ACP slack 2ε·max|v|, widened by e^Δ for this form and dtype."""
    fac = acp_exponent_factor(res, traits, dtype)
    return replace(res, slack={k: v * fac for k, v in res.slack.items()})
