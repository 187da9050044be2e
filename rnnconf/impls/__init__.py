"""Torch forms of each spec (sequential, parallel scan, chunkwise, …); importing registers them."""
from . import (
    hgrn,  # noqa: F401
    hgrn_layer,  # noqa: F401
    mingru,  # noqa: F401
)
from . import forgetting_attention  # noqa: F401,E402
