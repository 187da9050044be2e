"""Declarative spec records (one per model op), in the spirit of PyTorch's OpInfo.

A :class:`Spec` says *what* an op computes — never *how*.  It names the canonical signature (argument names and
layouts, flash-linear-attention's where fla has the op), the input domains with their edge values, the outputs and
state, the forms that exist, the invariants that hold, and the error model from which every tolerance is derived.
Oracles, torch forms, Triton kernels and properties all read from here; nothing here imports them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from .._registry import Registry
from .domains import Domain
from .errors import ErrorModel


@dataclass(frozen=True)
class Dim:
    """A named size symbol (``B``, ``T``, ``D`` …): the range a strategy may draw and the edge values it must hit."""

    name: str
    lo: int
    hi: int
    edges: tuple[int, ...] = ()
    doc: str = ""
    boundaries: tuple[int, ...] = ()  # kernel-boundary sizes (2^k − 1, 2^k, 2^k + 1): the boundary probes' edges


def pow2_boundaries(first: int, hi: int) -> tuple[int, ...]:
    """2^k − 1, 2^k, 2^k + 1 for every power of two 2^k ≥ ``first`` with 2^k − 1 ≤ ``hi``, those ≤ ``hi``: where a
    kernel's block, tile or grid changes (BD = 64, BT = 128, one more program …)."""
    out, p = [], first
    while p - 1 <= hi:
        out += [n for n in (p - 1, p, p + 1) if 1 <= n <= hi and n not in out]
        p *= 2
    return tuple(out)


@dataclass(frozen=True)
class Arg:
    """One argument of the canonical signature.

    ``shape`` is a tuple of :class:`Dim` names, or products of them such as ``"T*N"`` (DeltaProduct's keys carry
    n_h sub-steps per token, interleaved along one axis of length T·n_h).  ``kind`` is ``"input"`` (a tensor the op
    reads every step), ``"state"`` (``initial_state``), ``"param"`` (a per-channel tensor with no time axis) or
    ``"static"`` (a Python value passed by keyword, fixed by the size of its single shape symbol: that size itself,
    e.g. ``num_householder`` = N, or with ``choices`` the choice it indexes, e.g. the Odyssey ``variant`` name).
    """

    name: str
    shape: tuple[str, ...]
    domain: Domain
    kind: str = "input"
    optional: bool = False
    differentiable: bool = True
    doc: str = ""
    choices: tuple = ()  # a static argument's values, indexed by its shape symbol's size


@dataclass(frozen=True)
class Output:
    """``dtype``: ``"input"`` (same as the float inputs) or ``"complex"`` (complex64 for inputs up to float32,
    complex128 for float64).  ``state``: the final state, present only when ``output_final_state``."""

    name: str
    shape: tuple[str, ...]
    doc: str = ""
    dtype: str = "input"
    state: bool = False


@dataclass(frozen=True)
class Invariant:
    """A mathematical fact the op satisfies: one record for its name, its statement and where it is checked.

    ``checked_by`` None (the usual case): the property registered under ``name`` judges it on every target of the
    spec, and ``name`` is that property's report row and pytest item (a family invariant lives in
    ``rnnconf/properties/invariants_<family>.py``; a generic property of that name, e.g. ``combine-associative``,
    serves as well).  Otherwise ``checked_by`` names the one check elsewhere: a generic property (``"causality-
    perturb"``), or ``"path.py::function"`` — a test of the oracle or the function of the oracle that checks the
    fact of the op itself (not of a target).  ``tolerance``: ``"exact"`` (a structural fact) or ``"bound"``
    (within the error model)."""

    name: str
    statement: str
    tolerance: str = "bound"
    checked_by: str | None = None


@dataclass(frozen=True)
class Spec:
    """The single source of truth for one op."""

    id: str
    title: str
    paper: str  # arXiv id(s)
    version: str
    math: str
    dims: Mapping[str, Dim]
    args: Sequence[Arg]
    outputs: Sequence[Output]
    forms: Sequence[str]
    invariants: Sequence[Invariant]
    error_model: ErrorModel
    signature: str
    supports_varlen: bool = True
    has_state: bool = True
    notes: str = ""
    extra: Mapping[str, object] = field(default_factory=dict)

    @property
    def inputs(self) -> list[Arg]:
        """Tensor arguments (passed positionally, in this order)."""
        return [a for a in self.args if a.kind in ("input", "param")]

    @property
    def statics(self) -> list[Arg]:
        """Integer arguments fixed by a size (passed by keyword; carried in an example's ``inputs`` dict)."""
        return [a for a in self.args if a.kind == "static"]

    def static_values(self, dims: Mapping[str, int]) -> dict:
        return {a.name: (a.choices[int(dims[a.shape[0]])] if a.choices else int(dims[a.shape[0]]))
                for a in self.statics}

    def time_factor(self, arg: Arg, inputs: Mapping[str, object]) -> int:
        """Steps per token along ``arg``'s time axis: 1 for ``"T"``, the static size N for ``"T*N"``."""
        sym = next(s for s in arg.shape if "T" in s.split("*"))
        f = 1
        for p in sym.split("*"):
            if p != "T":
                f *= int(next(inputs[a.name] for a in self.statics if a.shape[0] == p))
        return f

    @property
    def state_arg(self) -> Arg | None:
        return next((a for a in self.args if a.kind == "state"), None)

    def arg(self, name: str) -> Arg:
        for a in self.args:
            if a.name == name:
                return a
        raise KeyError(f"spec {self.id!r} has no argument {name!r}")

    def time_inputs(self) -> list[Arg]:
        """Inputs that carry the time axis ``T`` (those a causality or carry property slices)."""
        return [a for a in self.inputs if time_axis(a) is not None]


def dim_size(sym: str, dims: Mapping[str, int]) -> int:
    """Size of a shape symbol: a :class:`Dim` name or a product of them (``"T*N"``)."""
    n = 1
    for p in sym.split("*"):
        n *= dims[p]
    return n


def time_axis(arg: Arg) -> int | None:
    """Index of ``arg``'s time axis (``"T"`` or a product containing T), or None."""
    for i, s in enumerate(arg.shape):
        if "T" in s.split("*"):
            return i
    return None


_REGISTRY: Registry = Registry("spec")


def register(spec: Spec) -> Spec:
    return _REGISTRY.add(spec.id, spec)


def get_spec(spec_id: str) -> Spec:
    from . import _load_all  # noqa: F401  (imports every family module)

    return _REGISTRY.lookup(spec_id)


def all_specs() -> list[Spec]:
    from . import _load_all  # noqa: F401

    return [_REGISTRY[k] for k in sorted(_REGISTRY)]
