"""Third-party style hgrn implementations the CLI tests point rnnconf at (``tests/cli/impls.py:<name>``).

Each follows the spec's canonical signature ``fn(x, g, initial_state=None, output_final_state=False,
cu_seqlens=None) -> (o, final_state)`` (or a subset of it) and misbehaves in exactly one way.
"""
import torch


def hgrn(x, g, initial_state=None, output_final_state=False, cu_seqlens=None):
    """A plain, correct loop: h_t = exp(g_t) h_{t-1} + x_t, accumulated in float32 (float64 for float64)."""
    if cu_seqlens is not None:
        outs, finals = [], []
        for n in range(len(cu_seqlens) - 1):
            lo, hi = int(cu_seqlens[n]), int(cu_seqlens[n + 1])
            h0 = initial_state[n:n + 1] if initial_state is not None else None
            o, h = hgrn(x[:, lo:hi], g[:, lo:hi], h0, True)
            outs.append(o)
            finals.append(h)
        return torch.cat(outs, 1), (torch.cat(finals, 0) if output_final_state else None)
    B, T, D = x.shape
    cd = torch.float64 if x.dtype == torch.float64 else torch.float32
    h = initial_state.to(cd) if initial_state is not None else x.new_zeros(B, D, dtype=cd)
    xs, gs = x.to(cd), g.to(cd)
    outs = []
    for t in range(T):
        h = torch.exp(gs[:, t]) * h + xs[:, t]
        outs.append(h)
    o = torch.stack(outs, 1) if T else x.new_zeros(B, 0, D, dtype=cd)
    return o.to(x.dtype), (h.to(x.dtype) if output_final_state else None)


def minimal(x, g):
    """Only (x, g) -> o: rnnconf adapts it to the canonical signature and marks state/varlen not applicable."""
    return hgrn(x, g)[0]


def broken(x, g, initial_state=None, output_final_state=False):
    """1 % too large everywhere: fails the oracle on any nonzero output."""
    o, h = hgrn(x, g, initial_state, output_final_state)
    return o * 1.01, h


def raises(x, g, initial_state=None, output_final_state=False):
    raise RuntimeError("kernel launch failed")


def hangs(x, g, initial_state=None, output_final_state=False):
    import time

    time.sleep(1000)


def wrong_shape(x, g, initial_state=None, output_final_state=False):
    o, h = hgrn(x, g, initial_state, output_final_state)
    return o.reshape(-1), h


def nan_out(x, g, initial_state=None, output_final_state=False):
    o, h = hgrn(x, g, initial_state, output_final_state)
    o = o.clone()
    o[:, -1] = float("nan")
    return o, h


def _correct_unless_poisoned(x, g, initial_state, output_final_state, crash):
    if not bool(torch.isfinite(x).all()):  # causality-nan puts NaN/Inf into later inputs
        crash()
    return hgrn(x, g, initial_state, output_final_state)


def _abort():
    import os

    os.abort()


def _segfault():
    import ctypes

    ctypes.string_at(0)


def _hang_in_c():
    import signal
    import time

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})  # like C code that never returns to Python
    time.sleep(1000)


def aborts_on_nan(x, g, initial_state=None, output_final_state=False):
    return _correct_unless_poisoned(x, g, initial_state, output_final_state, _abort)


def segfaults_on_nan(x, g, initial_state=None, output_final_state=False):
    return _correct_unless_poisoned(x, g, initial_state, output_final_state, _segfault)


def hangs_in_c_on_nan(x, g, initial_state=None, output_final_state=False):
    return _correct_unless_poisoned(x, g, initial_state, output_final_state, _hang_in_c)


def exits(x, g, initial_state=None, output_final_state=False):
    import sys

    sys.exit(3)
