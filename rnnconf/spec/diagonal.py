"""Shared math for diagonal (elementwise) linear recurrences  h_t = a_t ⊙ h_{t−1} + b_t.

HGRN, minGRU and minLSTM are all of this form with (a_t, b_t) computed elementwise from the inputs at step t.  A spec
of this family declares two torch functions ``coeffs(**step_inputs) -> (a, b)`` and ``log_a(**step_inputs)`` and gets:

* the magnitude shadow   m_t = |a_t| m_{t−1} + |b_t|            (what the error bound scales with),
* the log-gate mass      G_t = Σ_{s≤t} |log a_s|,
* gradient magnitudes    from the adjoint recurrence  λ_t = do_t + a_{t+1} λ_{t+1}  run on absolute values:
  for an input θ at step t,  |∂L/∂θ_t| ≤ Λ_t (|∂a_t/∂θ_t| m_{t−1} + |∂b_t/∂θ_t|).

The associative combine of (a, b) pairs, earlier pair first:  (a₁, b₁) ∘ (a₂, b₂) = (a₁a₂, a₂b₁ + b₂).
"""
from __future__ import annotations

from typing import Callable

import torch

from .base import Dim

# Sizes shared by the [B, T, D] diagonal families.  Ranges are the spec's; profiles cap them (ci: T ≤ 70), and edges
# past a cap are simply not drawn there — on a GPU profile T crosses 128-step chunks.
SEQUENCE_DIMS = {
    "B": Dim("B", 1, 8, edges=(1,), doc="batch"),
    "T": Dim("T", 1, 4096, edges=(1, 2, 17, 31, 64, 65, 127, 128, 129, 257, 1021), doc="sequence length"),
    "D": Dim("D", 1, 512, edges=(1, 16, 33, 129), doc="channels"),
}


def combine(p1, p2):
    """(a₁, b₁) ∘ (a₂, b₂) = (a₁a₂, a₂b₁ + b₂): apply step 1, then step 2."""
    a1, b1 = p1
    a2, b2 = p2
    return a1 * a2, a2 * b1 + b2


def shadows(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None, log_a: torch.Tensor):
    """Magnitude shadow m [.., T, D] (and m_T), log-mass G [.., T, D], for a, b of shape [B, T, D] (float64)."""
    B, T, D = a.shape
    m = torch.zeros(B, D, dtype=torch.float64) if h0 is None else h0.double().abs()
    ms = []
    for t in range(T):
        m = a[:, t].abs() * m + b[:, t].abs()
        ms.append(m)
    mag = torch.stack(ms, 1) if T else a.new_zeros(B, 0, D)
    G = torch.cumsum(log_a.abs(), 1)
    return mag, G


def grad_magnitudes(coeffs: Callable, inputs: dict[str, torch.Tensor], h0: torch.Tensor | None,
                    do: torch.Tensor, dht: torch.Tensor | None, log_a: Callable | None = None,
                    cumsum: bool = False) -> dict[str, torch.Tensor]:
    """Magnitudes bounding every summand of each input's gradient (float64), keys = input names + 'initial_state'.

    ``cumsum``: the form differentiates through cumulative log-gate sums (chunkwise / log-space forms).  Those
    compute  ∂L/∂log a_t = Σ_{k≥t} (do_k h_k − b_k Λ_k)  — a difference of two sums that cancel when decay is strong
    — so the summands' magnitude  Σ_{k≥t} (|do_k| m_k + |b_k| Λ_k)  enters, times |∂ log a/∂θ|, for each θ."""
    leaf = {k: v.detach().double().clone().requires_grad_(True) for k, v in inputs.items()}
    a, b = coeffs(**leaf)
    B, T, D = a.shape
    # elementwise partials: a and b depend only on the inputs at the same (b, t, d)
    da = torch.autograd.grad(a.sum(), list(leaf.values()), allow_unused=True, retain_graph=True)
    db = torch.autograd.grad(b.sum(), list(leaf.values()), allow_unused=True)
    a, b = a.detach(), b.detach()
    mag, _ = shadows(a, b, h0, torch.zeros_like(a))
    m_prev = torch.cat([(h0.double().abs() if h0 is not None else a.new_zeros(B, D))[:, None], mag[:, :-1]], 1) \
        if T else mag
    lam = torch.zeros(B, D, dtype=torch.float64) if dht is None else dht.double().abs()
    lams = [None] * T
    for t in reversed(range(T)):
        lam = do[:, t].double().abs() + lam
        lams[t] = lam
        lam = a[:, t].abs() * lam
    Lam = torch.stack(lams, 1) if T else a.new_zeros(B, 0, D)
    dla = [None] * len(leaf)
    if cumsum and log_a is not None and T:
        leaf2 = {k: v.detach().clone().requires_grad_(True) for k, v in leaf.items()}
        dla = torch.autograd.grad(log_a(**leaf2).sum(), list(leaf2.values()), allow_unused=True)
        per_k = do.double().abs() * mag + b.abs() * Lam
        if dht is not None:
            per_k[:, -1] += dht.double().abs() * mag[:, -1]
        rev = torch.flip(torch.cumsum(torch.flip(per_k, [1]), 1), [1])  # Σ_{k ≥ t}
    out = {}
    for (name, _), pa, pb, pl in zip(leaf.items(), da, db, dla):
        pa = torch.zeros_like(a) if pa is None else pa.abs()
        pb = torch.zeros_like(a) if pb is None else pb.abs()
        out[name] = Lam * (pa * m_prev + pb)
        if pl is not None:
            out[name] = out[name] + pl.abs() * rev
    out["initial_state"] = lam  # a_1 · Λ_1 (or dht when T = 0)
    return out
