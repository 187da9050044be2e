"""Hypothesis strategies derived from specs: sizes from :class:`~rnnconf.spec.Dim`, values from
:class:`~rnnconf.spec.Domain`, with the edges bugs live at planted on purpose.

Tensors are not drawn element by element (too slow for [B, T, D]); each argument draws a *recipe* — spread, edge
fraction, which edges, a seed — and a seeded torch generator realises it.  Every draw is labelled, so a falsifying
example reads "T=17, g.spread=100.0, g.edge_fraction=0.5 …".  Values are rounded to the dtype under test before the
oracle sees them: the oracle judges exactly what the target received.
"""
from __future__ import annotations

import math

import torch
from hypothesis import strategies as st

from ..spec.base import Dim, Spec, dim_size
from ..spec.domains import Domain
from .profiles import Profile

SPREADS = (1.0, 0.1, 10.0, 100.0, 1e-3)
EDGE_FRACTIONS = (0.0, 0.1, 0.5, 1.0)


def dim_value(data, dim: Dim, profile: Profile, lo: int | None = None, hi: int | None = None,
              family: str | None = None) -> int:
    lo = dim.lo if lo is None else lo
    hi = profile.cap(dim.name, dim.hi if hi is None else hi, family)
    edges = [e for e in dim.edges if lo <= e <= hi]
    strat = st.integers(lo, hi)
    if edges:
        strat = st.one_of(st.sampled_from(edges), strat)
    return data.draw(strat, label=dim.name)


def draw_dims(data, spec: Spec, profile: Profile, fixed: dict | None = None, bounds: dict | None = None) -> dict:
    fixed = dict(fixed or {})
    bounds = bounds or {}
    out = {}
    for name, dim in spec.dims.items():
        if name in fixed:
            out[name] = fixed[name]
        else:
            lo, hi = bounds.get(name, (None, None))
            out[name] = dim_value(data, dim, profile, lo, hi, spec.extra.get("family"))
    return out


def _clip(v: torch.Tensor, d: Domain) -> torch.Tensor:
    lo, hi = d.lo, d.hi
    if d.open_lo and math.isfinite(lo):
        lo = math.nextafter(lo, math.inf) if lo != 0 else 1e-30
    if d.open_hi and math.isfinite(hi):
        hi = hi - max(abs(hi), 1.0) * 2.0**-10
    if math.isfinite(lo):
        v = v.clamp(min=lo)
    if math.isfinite(hi):
        v = v.clamp(max=hi)
    return v


def realize(d: Domain, shape, seed: int, spread: float, edge_fraction: float, edges: tuple) -> torch.Tensor:
    """Float64 values in ``d`` from a recipe; deterministic in its arguments."""
    gen = torch.Generator().manual_seed(seed)
    n = tuple(shape)
    if d.law == "loguniform":  # magnitudes log-uniform in [1e-4, spread], sign toward the open side
        logmag = torch.empty(n, dtype=torch.float64).uniform_(math.log(1e-4), math.log(max(spread, 2e-4)),
                                                                generator=gen)
        v = -torch.exp(logmag) if d.hi <= 0 else torch.exp(logmag)
    elif d.law == "lognormal":
        v = torch.exp(torch.randn(n, generator=gen, dtype=torch.float64) * min(spread, 30.0))
    elif d.law == "uniform":
        v = torch.rand(n, generator=gen, dtype=torch.float64) * (d.hi - d.lo) + d.lo
    else:
        v = d.center + d.scale * spread * torch.randn(n, generator=gen, dtype=torch.float64)
    if edge_fraction > 0 and edges:
        pick = torch.randint(len(edges), n, generator=gen)
        ev = torch.tensor(edges, dtype=torch.float64)[pick]
        mask = torch.rand(n, generator=gen, dtype=torch.float64) < edge_fraction
        v = torch.where(mask, ev, v)
    return _clip(v, d)


def domain_edges(d: Domain) -> tuple:
    return tuple(e for e in d.edges if d.contains(torch.tensor([e], dtype=torch.float64)))


def draw_tensor(data, name: str, d: Domain, shape, dtype: torch.dtype) -> torch.Tensor:
    """Draw one argument: a recipe (labelled ``name.*``) realised and rounded to ``dtype``, returned as float64."""
    spread = data.draw(st.sampled_from(SPREADS), label=f"{name}.spread")
    edges = domain_edges(d)
    frac = data.draw(st.sampled_from(EDGE_FRACTIONS), label=f"{name}.edge_fraction") if edges else 0.0
    if frac and len(edges) > 1:
        chosen = data.draw(st.lists(st.sampled_from(edges), min_size=1, max_size=len(edges), unique=True),
                           label=f"{name}.edges")
    else:
        chosen = edges
    seed = data.draw(st.integers(0, 2**31 - 1), label=f"{name}.seed")
    v = realize(d, shape, seed, spread, frac, tuple(chosen))
    return round_to(v, dtype, d)


def round_to(v: torch.Tensor, dtype: torch.dtype, d: Domain | None = None) -> torch.Tensor:
    """Round float64 values to ``dtype`` (saturating to its finite range) and back, staying inside ``d``."""
    if dtype == torch.float64:
        return v.clone()
    fmax = torch.finfo(dtype).max
    r = v.clamp(-fmax, fmax).to(dtype).to(torch.float64)
    if d is not None and not d.contains(r):  # rounding may cross an open end (γ → 1, 1e-30 → 0): step back inside
        r = torch.where((r >= d.hi) if d.open_hi else (r > d.hi), torch.tensor(d.hi).to(dtype).double()
                        - float(torch.finfo(dtype).eps) * max(abs(d.hi), 1.0), r)
        lo_in = torch.tensor(d.lo).to(dtype).double() + float(torch.finfo(dtype).tiny) * max(abs(d.lo), 1.0)
        r = torch.where((r <= d.lo) if d.open_lo else (r < d.lo), lo_in, r)
    return r


def shape_of(arg_shape, dims: dict) -> tuple:
    return tuple(dim_size(s, dims) for s in arg_shape)


def draw_lengths(data, profile: Profile, cap: int) -> list[int]:
    """Sequence lengths for a varlen batch, with 0 and 1 among the values a draw favours."""
    length = st.one_of(st.sampled_from([0, 1]), st.integers(0, cap))
    return data.draw(st.lists(length, min_size=1, max_size=4), label="seqlens")


def unit_rows(v: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Rows scaled to unit L2 norm (a zero row becomes e₀), then rounded to ``dtype`` (‖·‖ = 1 up to that rounding)."""
    if v.numel() == 0:
        return v
    n = v.norm(dim=-1, keepdim=True)
    e0 = torch.zeros_like(v)
    e0[..., 0] = 1.0
    return round_to(torch.where(n > 0, v / n.clamp(min=1e-300), e0), dtype)
