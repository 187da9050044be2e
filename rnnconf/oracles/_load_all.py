"""Registers every built-in oracle."""
from . import register_oracle
from .hgrn import hgrn_oracle

register_oracle("hgrn", hgrn_oracle)
