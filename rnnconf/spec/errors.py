"""Error models: where every tolerance in rnnconf comes from.

For a recurrence evaluated in a floating-point format with unit roundoff ``u`` the classical forward-error analysis
(Higham, *Accuracy and Stability of Numerical Algorithms*, §3) bounds the error of output element ``t`` by

    |ĥ_t − h_t| ≤ u_acc · (c_step·(t+1) + c_log·depth(t)·G_t) · m_t  +  u_out · c_out · m_t  +  floor

where
  * ``m_t`` is the *magnitude shadow*: the same computation run on absolute values (every summand made non-negative),
    which the oracle computes alongside the value.  It turns the bound into a condition-aware one: cancellation
    makes |h_t| ≪ m_t and the bound grows accordingly.
  * ``c_step`` counts the roundings per recurrence step (a product, an add, an ``exp``), propagated by decays ≤ 1.
  * ``G_t`` is the cumulative log-gate mass Σ_{s≤t} |g_s|.  Forms that take differences of cumulative sums of
    log-gates (chunkwise forms, log-space scans) lose ``u·depth·G_t`` in the exponent, i.e. a relative error of that
    size; ``depth(t)`` is the summation depth of that cumulative sum (0 when the form never forms one).
  * ``u_acc`` is the roundoff of the precision the form accumulates in, ``u_out`` the output dtype's.
  * ``floor`` covers gradual underflow: ``(t+1)·c_step·tiny(dtype)``.
  * ``cond``: an additive condition term computed by the oracle where the magnitude shadow alone cannot express the
    error (softmax attention: Σ_j P_ij ε_ij |v_j| + ε̄_i m_i, with ε_ij the roundoffs committed on score ij, see
    :mod:`rnnconf.spec.softmax`); charged u_acc·cond.
  * forms that hold values as logarithms (``Traits.log_values``, Heinsen's log-space scan) round each log, i.e.
    each contribution carries a relative error u·(|log| of its factors): they are charged u·c_log·E_t with E_t the
    oracle's log-value shadow E_t = a_t E_{t−1} + |b_t|·ℓ_t (+ |h_t|·|log|h_t|| for the final exp).

Which terms apply depends on how a form evaluates: that is declared on the form as :class:`Traits`.  A target whose
traits are unknown (a third-party kernel) is judged under :data:`ANY_TRAITS`, the most permissive derived model.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

_U = {
    torch.float64: 2.0**-53,
    torch.float32: 2.0**-24,
    torch.float16: 2.0**-11,
    torch.bfloat16: 2.0**-8,
}
_TF32_U = 2.0**-11  # tf32 keeps 10 explicit mantissa bits


def unit_roundoff(dtype: torch.dtype | str) -> float:
    if isinstance(dtype, str):
        if dtype == "tf32":
            return _TF32_U
        dtype = getattr(torch, dtype)
    return _U[dtype]


def tiny(dtype: torch.dtype) -> float:
    return float(torch.finfo(dtype).tiny)


@dataclass(frozen=True)
class Traits:
    """How a form evaluates, as far as its error is concerned.

    ``accumulate``: the least precision the form accumulates in, e.g. ``"float32"`` for a kernel that upcasts half
    inputs (``None``: the input dtype).  ``cumsum``: ``"none"`` (never
    forms a cumulative sum of log-gates), ``"chunk"`` (within chunks of ``chunk_size``), ``"full"`` (over the whole
    sequence, e.g. a log-space scan).  ``matmul``: ``"ieee"`` or ``"tf32"`` for ``tl.dot``.
    """

    accumulate: str | None = None
    cumsum: str = "full"
    chunk_size: int | None = None
    matmul: str = "ieee"
    log_values: bool = False  # holds values as logarithms (log-space scans): charged u·c_log·(log-value shadow)

    def with_(self, **kw) -> "Traits":
        return replace(self, **kw)

    def describe(self) -> str:
        parts = [f"accumulate={self.accumulate or 'input dtype'}", f"cumsum={self.cumsum}"]
        if self.chunk_size:
            parts.append(f"chunk={self.chunk_size}")
        if self.matmul != "ieee":
            parts.append(f"matmul={self.matmul}")
        if self.log_values:
            parts.append("log-values")
        return ", ".join(parts)


SEQUENTIAL_TRAITS = Traits(cumsum="none")
ANY_TRAITS = Traits(accumulate=None, cumsum="full")


@dataclass(frozen=True)
class ErrorModel:
    """Coefficients of the bound above, stated per spec (see the spec module for their derivation)."""

    c_step: float
    c_log: float
    c_out: float = 1.0
    doc: str = ""

    def accumulate_u(self, dtype: torch.dtype, traits: Traits) -> float:
        u = unit_roundoff(dtype)
        if traits.accumulate is not None:  # "accumulates in at least this precision"
            u = min(u, unit_roundoff(traits.accumulate))
        if traits.matmul == "tf32":
            u = max(u, _TF32_U)
        return u

    def depth(self, steps: torch.Tensor, traits: Traits) -> torch.Tensor:
        if traits.cumsum == "none":
            return torch.zeros_like(steps)
        if traits.cumsum == "chunk" and traits.chunk_size:
            return steps.clamp(max=traits.chunk_size)
        return steps

    def bound(self, steps: torch.Tensor, mag: torch.Tensor, logmass: torch.Tensor | None, dtype: torch.dtype,
              traits: Traits, logvalue: torch.Tensor | None = None,
              cond: torch.Tensor | None = None) -> torch.Tensor:
        """Per-element bound.  ``steps``: accumulation length of each element (t+1, broadcastable), ``mag``: magnitude
        shadow, ``logmass``: cumulative |log-gate| mass G (or ``None`` for ops without log-gates), ``logvalue``: the
        log-value shadow E_t (charged only to ``traits.log_values`` forms).  float64."""
        u_acc = self.accumulate_u(dtype, traits)
        u_out = unit_roundoff(dtype)
        steps = steps.double()
        coef = self.c_step * steps
        if logmass is not None and self.c_log:
            coef = coef + self.c_log * self.depth(steps, traits) * logmass
        # (1 + u_out): the final rounding to the output dtype also scales the accumulated error
        b = u_acc * coef * mag * (1 + u_out) + u_out * self.c_out * mag
        if traits.log_values and logvalue is not None:
            b = b + u_acc * self.c_log * logvalue * (1 + u_out)
        if cond is not None:
            b = b + u_acc * cond * (1 + u_out)
        return b + steps * self.c_step * tiny(dtype)
