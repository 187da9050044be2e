"""mpmath oracle for ``aaren`` (arXiv 2405.13956): two independent paths to the same o_t.

* the attention path — :func:`rnnconf.oracles.forgetting_attention.attention_oracle` with g = None and the fixed
  query: every row a stable softmax over exact scores.  It supplies the values, the magnitude shadow and the
  softmax error model's ``cond`` (per-score ε_ij from the exact weights) that properties judge against;
* the RNN path — :func:`rnn_path`: the many-to-one (m, u, w) left fold of the spec, in mpmath.  It supplies the exact
  prefix counts u_k (``aux["u"]``, with ``aux["m"]`` and the scores ``aux["s"]``) and, in ``aux["rnn_o"]``, its own
  o_t, which tests/oracles/test_aaren_oracle.py compares with the attention path.
"""
from __future__ import annotations

import mpmath
import torch

from ..spec.softmax import default_scale
from .base import DEFAULT_DPS, OracleResult, mp_to_tensor
from .forgetting_attention import attention_oracle


def mp_identity(V: int) -> tuple:
    return (mpmath.ninf, mpmath.mpf(0), [mpmath.mpf(0)] * V)


def mp_combine(p1, p2):
    """The spec's combine in mpmath (at the caller's precision); summaries (m, u, w list), m = −∞ for the identity.
    A −∞ side contributes 0 (its e^{m−M} is never formed as e^{−∞−(−∞)})."""
    (m1, u1, w1), (m2, u2, w2) = p1, p2
    m = max(m1, m2)
    if m == mpmath.ninf:
        return mp_identity(len(w1))
    r1 = mpmath.exp(m1 - m) if m1 != mpmath.ninf else mpmath.mpf(0)
    r2 = mpmath.exp(m2 - m) if m2 != mpmath.ninf else mpmath.mpf(0)
    return m, u1 * r1 + u2 * r2, [a * r1 + b * r2 for a, b in zip(w1, w2)]


def rnn_path(scores: list, values: list) -> list:
    """Prefix summaries (m_k, u_k, w_k), k = 1..T, of leaves (s_j, 1, v_j) by the left fold
    m_k = max(m_{k−1}, s_k), u_k = u_{k−1}e^{m_{k−1}−m_k} + e^{s_k−m_k}, w_k likewise (mpf in, mpf out)."""
    V = len(values[0]) if values else 0
    acc = mp_identity(V)
    out = []
    for s, v in zip(scores, values):
        acc = mp_combine(acc, (s, mpmath.mpf(1), list(v)))
        out.append(acc)
    return out


def aaren_rnn(q, k, v, scale=None, dps: int = DEFAULT_DPS) -> dict:
    """The RNN path on [B, H, K] / [B, T, H, ·] tensors: exact o, u, m and scores as nested mpf lists
    (o [B][T][H][V], u/m/s [B][H][T])."""
    B, T, H, Vd = v.shape
    K = q.shape[-1]
    qs, ks, vs = q.double().tolist(), k.double().tolist(), v.double().tolist()
    o = [[[None] * H for _ in range(T)] for _ in range(B)]
    U, M, S = ([[None] * H for _ in range(B)] for _ in range(3))
    with mpmath.workdps(dps):
        sc = (1 / mpmath.sqrt(K)) if scale is None else mpmath.mpf(float(scale))
        for b in range(B):
            for h in range(H):
                qv = [mpmath.mpf(x) for x in qs[b][h]]
                s = [sc * mpmath.fdot(qv, [mpmath.mpf(x) for x in ks[b][j][h]]) for j in range(T)]
                summ = rnn_path(s, [[mpmath.mpf(x) for x in vs[b][j][h]] for j in range(T)])
                for t, (_, u_t, w_t) in enumerate(summ):
                    o[b][t][h] = [w / u_t for w in w_t]
                U[b][h], M[b][h], S[b][h] = [p[1] for p in summ], [p[0] for p in summ], s
    return {"o": o, "u": U, "m": M, "s": S}


def aaren_oracle(q, k, v, scale=None, initial_state=None, dps: int = DEFAULT_DPS, rows=None) -> OracleResult:
    """Values, magnitude and cond from the attention path; ``aux``: the RNN path's exact u/m/s ([B, H, T] float64,
    and their mpf lists under ``*_exact``) and its o (``rnn_o``, mpf lists).  ``rows``: the attention path on these
    output rows only, no RNN path (see :func:`attention_oracle`)."""
    if initial_state is not None:
        raise ValueError("aaren is state-free: no initial_state")
    if q.dim() != 3 or k.dim() != 4 or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"aaren: q must be [B, H, K] and k [B, T, H, K]; got {tuple(q.shape)}, {tuple(k.shape)}")
    if rows is not None:
        return attention_oracle(q, k, v, None, scale=scale, dps=dps, fixed_query=True, rows=rows)
    res = attention_oracle(q, k, v, None, scale=scale, dps=dps, fixed_query=True)
    rnn = aaren_rnn(q, k, v, scale=scale, dps=dps)
    B, T, H, _ = v.shape
    for name in ("u", "m", "s"):
        res.aux[name] = mp_to_tensor(rnn[name], (B, H, T)) if T else torch.zeros(B, H, 0, dtype=torch.float64)
        res.aux[f"{name}_exact"] = rnn[name]
    res.aux["rnn_o"] = rnn["o"]
    res.aux["scale"] = default_scale(q.shape[-1]) if scale is None else float(scale)
    return res
