"""Torch forms of each spec (sequential, parallel scan, chunkwise, …); importing registers them."""
from . import hgrn  # noqa: F401
