"""Torch forms of each spec (sequential, parallel scan, chunkwise, …); importing registers them."""
from . import (
    hgrn,  # noqa: F401
    hgrn_layer,  # noqa: F401
    mingru,  # noqa: F401
)
