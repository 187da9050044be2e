"""A pure-torch hgrn in a file that imports triton: calling it launches no Triton kernel, so rnnconf judges it as a
plain ("external") function — what a file imports does not make its functions Triton targets."""
import triton  # noqa: F401
from impls import hgrn as _hgrn  # noqa: E402  (this directory is on sys.path when rnnconf imports the file)


def hgrn(x, g, initial_state=None, output_final_state=False, cu_seqlens=None):
    return _hgrn(x, g, initial_state, output_final_state, cu_seqlens)
