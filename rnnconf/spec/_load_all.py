"""Importing this module registers every built-in spec (one module per model family)."""
from . import hgrn  # noqa: F401
from . import hgrn_layer  # noqa: F401
from . import mingru  # noqa: F401
