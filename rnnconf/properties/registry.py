"""The property registry: every property under one name, and which of them concern a spec.

Two kinds of property (``Property.invariant``):

* **generic** (``checks.py`` and the other generic modules) concern a spec by its structure: ``concerns(spec)``
  returns why the spec lacks what the property needs (no state, not causal, no varlen, no gradient model …) or None;
* **family invariants** (``invariants_<family>.py``) concern exactly the specs that declare an
  :class:`~rnnconf.spec.base.Invariant` of the same name.  The spec's record is the one place for the statement;
  the property registered under that name is its check (a spec never imports properties: the name is the link).

Of the properties a spec has, ``applies(spec, target)`` and ``requires`` say which ones the *target's declared
features* exclude (no ``initial_state``, no combine operator, nondeterministic): those, and only those, are
"not applicable" verdicts.  Modules are discovered: :func:`load` imports every public submodule of
``rnnconf.properties``, so a new family adds its ``invariants_<family>.py`` (a new generic property its module) and
edits no other file.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Callable

from .._registry import Registry


@dataclass(frozen=True)
class Property:
    name: str
    doc: str  # generic: the statement; family invariant: how it is judged (the statement is the spec's)
    draw: Callable
    check: Callable
    requires: frozenset = frozenset()  # target features needed
    all_dtypes: bool = False  # judged per dtype; otherwise once, in the target's primary dtype
    applies: Callable | None = None  # (spec, target) -> why the target's declarations exclude it, or None
    unjudgeable: Callable | None = None  # (spec, target) -> reason it applies but cannot be judged (a skip)
    required: bool = True
    tags: tuple = field(default_factory=tuple)
    concerns: Callable | None = None  # generic: (spec) -> why the spec's structure lacks what it needs, or None
    examples: Callable | None = None  # (profile) -> examples per run when none is asked for (None: the profile's)
    invariant: bool = False  # a family invariant: concerns the specs declaring an Invariant of this name

    def not_concerning(self, spec) -> str | None:
        """Why this property is not one of ``spec``'s at all (it is then neither run nor reported), or None."""
        if self.invariant:
            if any(inv.name == self.name and inv.checked_by is None for inv in spec.invariants):
                return None
            return f"{self.name} is not an invariant of spec {spec.id}"
        return self.concerns(spec) if self.concerns is not None else None

    def not_applicable(self, spec, target) -> str | None:
        """Why the property is not judged on this target: not one of the spec's, or excluded by the features the
        target declares (the reason says which)."""
        if why := self.not_concerning(spec):
            return why
        if self.applies is not None and (why := self.applies(spec, target)):
            return why
        missing = [f for f in self.requires if f not in target.supports]
        if missing:
            return f"spec {spec.id} has {self.name}, but the target declares no {', '.join(sorted(missing))}"
        return None

    def statement(self, spec) -> str:
        """The statement shown for ``spec``: its own Invariant record's where it has one, else the doc."""
        inv = next((i for i in spec.invariants if i.name == self.name), None)
        return inv.statement if inv is not None else self.doc


PROPERTIES: Registry = Registry("property")


def register(p: Property) -> Property:
    return PROPERTIES.add(p.name, p)


def prop(name, doc, **kw):
    """Decorator over ``() -> (draw, check)``: registers ``Property(name, doc, draw, check, **kw)``."""
    def deco(fn_pair):
        draw, check = fn_pair()
        register(Property(name, doc, draw, check, **kw))
        return fn_pair

    return deco


_LOADING = False


def load() -> None:
    """Import every public submodule of ``rnnconf.properties`` once (each registers its properties)."""
    global _LOADING
    if _LOADING:
        return
    _LOADING = True
    pkg = __name__.rpartition(".")[0]
    try:
        for m in sorted(pkgutil.iter_modules(importlib.import_module(pkg).__path__), key=lambda m: m.name):
            if not m.name.startswith("_"):
                importlib.import_module(f"{pkg}.{m.name}")
    except BaseException:
        _LOADING = False
        raise


def properties_for(spec, target=None) -> list[Property]:
    """The properties that concern ``spec``: generic ones by its structure, family ones by its Invariant records.
    (``target`` is accepted for the callers' convenience; which of these a target's features exclude is
    :meth:`Property.not_applicable`'s answer.)"""
    load()
    mine = [p for p in PROPERTIES.values() if p.not_concerning(spec) is None]
    return sorted(mine, key=lambda p: p.invariant)  # generic first, each kind in registration order
