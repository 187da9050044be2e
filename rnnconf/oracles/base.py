"""Oracle plumbing: mpmath contexts, tensor ↔ mpf conversion, and the result record.

Oracles are sequential, straightforward and slow on purpose.  They evaluate the spec's math in mpmath at
``dps`` decimal digits (default 30; mpmath uses gmpy2 automatically when it is installed) on the *exact* values the
target received (inputs already rounded to the target's dtype), so input rounding is never charged to the target.
Alongside each value they return its magnitude shadow and log-gate mass (see :mod:`rnnconf.spec.errors`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import mpmath
import torch

DEFAULT_DPS = int(os.environ.get("RNNCONF_ORACLE_DPS", "30"))


@dataclass
class OracleResult:
    """``values``: float64 tensors (rounded from mpmath) keyed by output name; ``mag``/``logmass``/``steps``: the
    matching error-model ingredients; ``exact``: the mpmath values themselves, for properties that need them."""

    values: dict[str, torch.Tensor]
    mag: dict[str, torch.Tensor]
    logmass: dict[str, torch.Tensor | None]
    steps: dict[str, torch.Tensor]
    exact: dict[str, object] = field(default_factory=dict)
    dps: int = DEFAULT_DPS
    logvalue: dict[str, torch.Tensor] = field(default_factory=dict)  # log-value shadow (see spec.errors)
    cond: dict[str, torch.Tensor] = field(default_factory=dict)  # additive condition term (see spec.errors)
    slack: dict[str, torch.Tensor] = field(default_factory=dict)  # deviation the spec itself permits (ACP's ε)
    aux: dict[str, object] = field(default_factory=dict)  # spec-specific extras (e.g. exact attention weights)
    # error of one rounding of the carried state after each step, per unit of the storage dtype's u (charged by
    # state carry's extra rounding; a recurrence whose Jacobian amplifies it needs more than one step's c_step)
    carry: dict[str, torch.Tensor] = field(default_factory=dict)


def to_mp(t: torch.Tensor):
    """Nested lists of mpf from a tensor (exact: every float64 is an mpf)."""
    return [to_mp(r) for r in t] if t.dim() else mpmath.mpf(float(t))


def mp_to_tensor(x, shape, complex_: bool = False) -> torch.Tensor:
    """Nested lists of mpf (or mpc with ``complex_``) rounded to a float64 (complex128) tensor of ``shape``."""
    flat = []
    conv = complex if complex_ else float

    def walk(v):
        if isinstance(v, list):
            for w in v:
                walk(w)
        else:
            flat.append(conv(v))

    walk(x)
    return torch.tensor(flat, dtype=torch.complex128 if complex_ else torch.float64).reshape(shape)


def mp_sigmoid(z):
    return 1 / (1 + mpmath.exp(-z))


def mp_softplus(z):
    return mpmath.log1p(mpmath.exp(z)) if z < 30 else z + mpmath.log1p(mpmath.exp(-z))
