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

from .base import Dim, pow2_boundaries

# Sizes shared by the [B, T, D] diagonal families.  Ranges are the spec's; profiles cap them (ci: T ≤ 70), and edges
# past a cap are simply not drawn there — on a GPU profile T crosses 128-step chunks.  The op has no length or width
# limit (nor do fla's hgrn kernels): T and D reach past 4096 and 512 so that the boundary probes' 4097 and 513 are in
# range.  ``boundaries``: the boundary probes (rnnconf.properties.probes) take one dim at a time to these.
SEQUENCE_DIMS = {
    "B": Dim("B", 1, 8, edges=(1,), doc="batch", boundaries=pow2_boundaries(4, 8)),
    "T": Dim("T", 1, 8192, edges=(1, 2, 17, 31, 64, 65, 127, 128, 129, 257, 1021), doc="sequence length",
             boundaries=pow2_boundaries(16, 4097)),
    "D": Dim("D", 1, 1024, edges=(1, 16, 33, 129), doc="channels", boundaries=pow2_boundaries(16, 513)),
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


def _adjoint_shadows(a, b, h0, do, dht):
    """(m, m_{t−1}, Λ, a_1Λ_1): the forward magnitude shadow, it shifted by one step (m_0 = |h_0|), the adjoint run on
    absolute values Λ_t = |do_t| + |a_{t+1}| Λ_{t+1} (Λ_T = |do_T| + |dht|), and |a_1| Λ_1 (|dht| when T = 0)."""
    B, T, D = a.shape
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
    return mag, m_prev, Lam, lam


def underflow_cofactors(coeffs: Callable, inputs: dict[str, torch.Tensor], h0: torch.Tensor | None,
                        do: torch.Tensor, dht: torch.Tensor | None) -> torch.Tensor:
    """Λ_t (1 + m_{t−1} + Σ_v |v_t|) [B, T, D] (float64), v over the *value* inputs (those a_t does not depend on,
    h̃ / x): what multiplies a gate partial in a gradient summand.

    Why: ∂L/∂θ_t = λ_t (∂a_t/∂θ · h_{t−1} + ∂b_t/∂θ) with b_t = gate_t · v_t, so each summand is a gate partial
    (∂a/∂θ, ∂gate/∂θ, or the gate itself; all ≤ 1) times λ_t and h_{t−1} or v_t.  A gate partial below the dtype's
    smallest normal number has absolute, not relative, accuracy: ≤ tiny per rounding (flush-to-zero included), while
    its cofactor may be as large as finfo.max — e.g. σ(z)σ(−z) = 2.6e-52 is 0 in float32 at z = −118.8, but times
    h_{t−1} = 1.3e21 it is a representable 3.4e-31 — so the floor of such a summand is tiny · |cofactor|, not tiny
    (the ``+ 1`` covers ∂b/∂v = gate, whose cofactor is λ_t alone)."""
    leaf = {k: v.detach().double() for k, v in inputs.items()}
    a, b = coeffs(**leaf)
    _, m_prev, Lam, _ = _adjoint_shadows(a, b, h0, do, dht)
    probe = {k: v.clone().requires_grad_(True) for k, v in leaf.items()}
    da = torch.autograd.grad(coeffs(**probe)[0].sum(), list(probe.values()), allow_unused=True)
    vals = sum((v.abs() for (k, v), g in zip(leaf.items(), da) if g is None and v.shape == a.shape),
               torch.zeros_like(a))
    return Lam * (1 + m_prev + vals)


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
    mag, m_prev, Lam, lam = _adjoint_shadows(a, b, h0, do, dht)
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
