"""Target records: one implementation of a spec (a built-in torch form, a Triton kernel, or a third party's function).

Like an OpInfo entry, a target declares what it supports (initial/final state, varlen, gradients, dtypes), how it
evaluates (error-model :class:`~rnnconf.spec.errors.Traits`), where its domain is narrower than the spec's, and which
(property, dtype) pairs are skipped and why.  Properties read these declarations; nothing is silently assumed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch

from .._registry import Registry
from .domains import Domain
from .errors import ANY_TRAITS, Traits

FEATURES = ("initial_state", "final_state", "varlen", "grad")
QK_L2NORM = "qk_l2norm"  # optional, declared explicitly: the delta family's ``use_qk_l2norm_in_kernel=True`` mode
STATELESS = frozenset({"varlen", "grad"})  # what a state-free op (attention) can support
FLOAT_DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)


@dataclass(frozen=True)
class Skip:
    prop: str  # property name, "*" (every property) or "backward" (every property that needs gradients)
    reason: str
    dtype: torch.dtype | None = None  # None: every dtype


@dataclass(frozen=True)
class DimRule:
    """The sizes a target takes along one dim where narrower than the spec's (e.g. FlashRNN's power-of-2 head dim).
    Drawn sizes are fitted to it (:meth:`fit`); a boundary probe at a size it does not take is left out, and said."""
    doc: str
    accepts: Callable[[int], bool]

    def fit(self, n: int, lo: int = 1, hi: int | None = None) -> int:
        """The largest accepted size in [lo, n], else the smallest accepted one above n (up to ``hi``)."""
        for m in range(n, lo - 1, -1):
            if self.accepts(m):
                return m
        for m in range(n + 1, (hi or 4 * n + 8) + 1):
            if self.accepts(m):
                return m
        raise ValueError(f"no size in [{lo}, {hi}] is {self.doc}")


POW2 = DimRule("a power of 2", lambda n: n > 0 and n & (n - 1) == 0)


@dataclass(frozen=True)
class Target:
    spec_id: str
    name: str
    fn: Callable
    kind: str = "torch"  # "torch" | "triton" | "external"
    traits: Traits = ANY_TRAITS
    dtypes: tuple[torch.dtype, ...] = FLOAT_DTYPES
    supports: frozenset[str] = frozenset(FEATURES)
    deterministic: bool = True
    domain_overrides: Mapping[str, Domain] = field(default_factory=dict)
    skips: tuple[Skip, ...] = ()
    combine: Callable | None = None
    device: str = "cpu"
    doc: str = ""
    extras: Mapping[str, object] = field(default_factory=dict)  # spec-specific hooks (e.g. ACP's unpruned twin)
    dim_rules: Mapping[str, DimRule] = field(default_factory=dict)  # dims where the target takes fewer sizes

    @property
    def id(self) -> str:
        """``spec/name``; a name that is itself a path (a ``path/to/file.py:fn`` target) is shown as given."""
        return self.name if "/" in self.name else f"{self.spec_id}/{self.name}"

    def skip_reason(self, prop: str, dtype: torch.dtype | None = None, needs_grad: bool = False) -> str | None:
        for s in self.skips:
            if (s.prop in (prop, "*") or (needs_grad and s.prop == "backward")) \
                    and (s.dtype is None or dtype is None or s.dtype == dtype):
                return s.reason
        return None


_FORMS: Registry = Registry("built-in form")


def register_form(target: Target) -> Target:
    return _FORMS.add(target.id, target)
