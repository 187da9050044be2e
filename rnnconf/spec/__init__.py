"""Spec layer: one declarative record per model op — the single source of truth."""
from .base import Arg, Dim, Invariant, Output, Spec, all_specs, get_spec, register  # noqa: F401
from .domains import Domain  # noqa: F401
from .errors import ANY_TRAITS, SEQUENTIAL_TRAITS, ErrorModel, Traits, unit_roundoff  # noqa: F401
