"""A third-party module that imports triton (so rnnconf treats its function as kind "triton") but computes in torch."""
import triton  # noqa: F401
from impls import hgrn as _hgrn  # noqa: E402  (this directory is on sys.path when rnnconf imports the file)


def hgrn(x, g, initial_state=None, output_final_state=False, cu_seqlens=None):
    return _hgrn(x, g, initial_state, output_final_state, cu_seqlens)
