"""Small deliberately broken hgrn kernels for the CLI tests (``tests/cli/broken_kernels.py:<name>``).

Each takes the spec's canonical signature and is broken in exactly one way, the way a newcomer's first kernel is.
"""
import torch
from impls import hgrn as _hgrn  # this directory is on sys.path when rnnconf imports the file


def wrong_signature(x, gates, h0, final):
    """The most likely first mistake: positional parameters named and ordered otherwise, none optional."""
    return _hgrn(x, gates, h0, final)


def segfaults(x, g, initial_state=None, output_final_state=False, cu_seqlens=None):
    """Dies with SIGSEGV on every call (as a kernel reading a bad pointer would)."""
    import os
    import signal

    os.kill(os.getpid(), signal.SIGSEGV)


def hangs(x, g, initial_state=None, output_final_state=False, cu_seqlens=None):
    """Correct on the smallest example (T = 1), hangs on anything longer: the smoke call passes, a property hangs."""
    if x.shape[1] > 1:
        import time

        time.sleep(1000)
    return _hgrn(x, g, initial_state, output_final_state, cu_seqlens)


def forward_only(x, g, initial_state=None, output_final_state=False, cu_seqlens=None):
    """Correct values, but computed outside autograd: the outputs carry no gradient history."""
    with torch.no_grad():
        o, h = _hgrn(x, g, initial_state, output_final_state, cu_seqlens)
    return o, h


def all_nan_hgrn(x, g, initial_state=None, output_final_state=False, cu_seqlens=None):
    """Right shapes and dtypes, every value NaN (as an output buffer the kernel never writes): must pass nothing.
    The NaNs are computed from the inputs, so the outputs carry autograd history (gradients are NaN too)."""
    B, T, D = x.shape
    o = x * float("nan") + g * 0
    hT = None
    if output_final_state:
        n = B if cu_seqlens is None else len(cu_seqlens) - 1
        hT = x.new_full((n, D), float("nan")) + 0 * x.sum()
    return o, hT
