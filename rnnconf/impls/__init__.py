"""Torch forms of each spec (sequential, parallel scan, chunkwise, …); importing registers them."""
from . import hgrn  # noqa: F401
from . import hgrn_layer  # noqa: F401
from . import mingru  # noqa: F401
