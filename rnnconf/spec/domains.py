"""Input domains: where an argument's values may lie, how they are typically spread, and the edge values bugs live at.

A domain is data, not a generator: :mod:`rnnconf.properties.strategies` turns it into Hypothesis strategies.
``contains`` is the precondition check used by properties that must notice inputs outside the domain.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Domain:
    """Closed interval ``[lo, hi]`` (either end may be infinite), open at an end when ``open_lo``/``open_hi``.

    ``center``/``scale``: typical values are ``center + scale * N(0, 1)`` clipped into the domain (``law="normal"``),
    or ``-scale * |N(0,1)|`` style one-sided draws (``law="halfnormal"`` toward ``lo``), or log-uniform magnitudes
    (``law="loguniform"``, for log-gates spanning fast and slow decay).  ``edges`` are exact values that draws
    plant into a random subset of elements.
    """

    name: str
    lo: float = -math.inf
    hi: float = math.inf
    open_lo: bool = False
    open_hi: bool = False
    center: float = 0.0
    scale: float = 1.0
    law: str = "normal"
    edges: tuple[float, ...] = ()
    doc: str = ""

    def contains(self, t: torch.Tensor) -> bool:
        t = t.detach().double()
        if torch.isnan(t).any():
            return False
        ok = (t > self.lo) if self.open_lo else (t >= self.lo)
        ok &= (t < self.hi) if self.open_hi else (t <= self.hi)
        return bool(ok.all())

    def describe(self) -> str:
        lb = "(" if self.open_lo else "["
        rb = ")" if self.open_hi else "]"
        return f"{self.name} ∈ {lb}{self.lo:g}, {self.hi:g}{rb}"


def real(scale: float = 1.0, edges: tuple[float, ...] = (0.0,), name: str = "real") -> Domain:
    return Domain(name, center=0.0, scale=scale, edges=edges, doc="any finite real")


def positive(scale: float = 1.0, name: str = "positive") -> Domain:
    return Domain(name, lo=0.0, open_lo=True, center=0.0, scale=scale, law="lognormal", edges=(1e-30, 1.0),
                  doc="strictly positive reals (log-space forms need them)")


def log_gate(floor: float = -1e4, name: str = "log_gate") -> Domain:
    """Log of a decay in (0, 1]: g ≤ 0.  Edges: exactly 0 (no decay), tiny, −1 and ``floor`` (a state reset)."""
    return Domain(name, lo=floor, hi=0.0, law="loguniform", center=0.0, scale=1.0,
                  edges=(0.0, -1e-7, -1.0, floor), doc="log-decay g ≤ 0 (gate exp(g) ∈ (0, 1])")


def logit(limit: float = 1e4, name: str = "logit") -> Domain:
    """Pre-sigmoid gate logits; ±``limit`` make σ exactly 0 or 1 in every float dtype."""
    return Domain(name, lo=-limit, hi=limit, center=0.0, scale=3.0, edges=(0.0, limit, -limit, 30.0, -30.0),
                  doc="gate logit z, gate σ(z) ∈ [0, 1]")


def unit_open(name: str = "unit") -> Domain:
    return Domain(name, lo=0.0, hi=1.0, open_hi=True, center=0.5, scale=0.3, law="uniform",
                  edges=(0.0, 0.5, 1.0 - 2.0**-10), doc="[0, 1)")
