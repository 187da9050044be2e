"""High-precision sequential oracles (mpmath), one per spec, looked up by spec id."""
from __future__ import annotations

from .base import DEFAULT_DPS, OracleResult  # noqa: F401

_ORACLES = {}


def register_oracle(spec_id: str, fn) -> None:
    _ORACLES[spec_id] = fn


def get_oracle(spec_id: str):
    from . import _load_all  # noqa: F401

    return _ORACLES[spec_id]
