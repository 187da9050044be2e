"""rnnconf — property-based conformance of recurrent sequence-model kernels against high-precision oracles."""
__version__ = "0.1.0"

from .declare import declare  # noqa: E402,F401  (stdlib only: importing rnnconf stays light)
