"""Importing this module registers every built-in spec (one module per model family)."""
from . import (
    hgrn,  # noqa: F401
    hgrn_layer,  # noqa: F401
    mingru,  # noqa: F401
)
from . import forgetting_attention  # noqa: F401,E402
