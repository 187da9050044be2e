"""Causal softmax attention rows in mpmath, and the error-model ingredients of :mod:`rnnconf.spec.softmax`."""
from __future__ import annotations

import mpmath
import torch


def attend_row(z: list, values: list) -> tuple:
    """Exact row: scores ``z`` (mpf, one per key j ≤ i), value rows ``values`` (mpf lists).

    Returns (o as an mpf list, P as floats, z − max z as floats).  exp(z − max z) never overflows; a row of one key
    has P = 1 exactly."""
    m = max(z)
    e = [mpmath.exp(zj - m) for zj in z]
    ell = mpmath.fsum(e)
    P = [ej / ell for ej in e]
    Vd = len(values[0]) if values else 0
    o = [mpmath.fdot(P, [vr[c] for vr in values]) for c in range(Vd)]
    return o, [float(p) for p in P], [float(zj - m) for zj in z]


def softmax_bound_terms(P: torch.Tensor, eps: torch.Tensor, v: torch.Tensor) -> tuple:
    """mag = P|v| and cond = (P∘ε)|v| + ε̄·mag with ε̄ = rowsum(P∘ε), for P, ε [.., T, T] and v [.., T, V]."""
    mag = P @ v.abs()
    Pe = P * eps
    cond = Pe @ v.abs() + Pe.sum(-1, keepdim=True) * mag
    return mag, cond
