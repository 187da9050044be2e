"""One place that loads every built-in spec, oracle, torch form and Triton kernel, and looks them up by id.

Layers below (spec, oracles, impls, kernels) only register themselves; properties, reports and the CLI ask here.
"""
from __future__ import annotations

from .spec import all_specs, get_spec  # noqa: F401
from .spec.targets import _FORMS, Target


def _load() -> None:
    import rnnconf.impls  # noqa: F401
    import rnnconf.kernels  # noqa: F401


def builtin_forms(spec_id: str | None = None) -> list[Target]:
    _load()
    return [t for k, t in sorted(_FORMS.items()) if spec_id is None or t.spec_id == spec_id]


def get_form(target_id: str) -> Target:
    _load()
    return _FORMS.lookup(target_id)
