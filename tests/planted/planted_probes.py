"""Planted bugs past a kernel boundary or a layout assumption (issue 13): torch-level mutants of built-in forms that
are right below a block size, a time index width, a grid limit, and on contiguous inputs — invisible to the ci
profile's ordinary draws (T ≤ 70, D ≤ 40), caught by the boundary probes and the strided-inputs property.

``probe_bugs(add)`` registers them into the catalogue of :mod:`planted_bugs`.  Every mutant differs from a copy of
the correct form in the lines marked ``# BUG``.
"""
from __future__ import annotations

import torch
from planted_bugs import _hgrn_api
from planted_fox import _dense

from rnnconf.impls._common import compute_dtype
from rnnconf.registry import get_form


def _hgrn_sequential(bug):
    """hgrn/sequential: h_t = exp(g_t) h_{t−1} + x_t, one step at a time, with one of the bugs below."""
    def run(x, g, initial_state=None, output_final_state=False):
        cd = compute_dtype(x.dtype)
        B, T, D = x.shape
        xc, gc = x.to(cd), g.to(cd)
        h = initial_state.to(cd) if initial_state is not None else x.new_zeros(B, D, dtype=cd)
        if bug == "block-64" and D > 64:
            gc = gc.clone()
            gc[..., 64:] = gc[..., :D - 64].clone()  # BUG: channel block 1 (d ≥ 64) reads block 0's gate offsets
        outs = []
        for t in range(T):
            if bug == "reset-256" and t == 256:
                h = torch.zeros_like(h)  # BUG: an 8-bit time index wraps: the carried state restarts at t = 256
            h = torch.exp(gc[:, t]) * h + xc[:, t]
            outs.append(h)
        if bug == "tail-oob" and T % 64:
            # BUG: the last, partial 64-step tile is loaded without a mask — steps T … ⌈T/64⌉·64 − 1 read the flat
            # memory past this row (the next batch row's first steps; zeros past the end of the buffer) — and the
            # final state is stored after the whole tile; the outputs of those steps are masked, the state is not
            pad = 64 - T % 64
            flat_x, flat_g = xc.reshape(-1, D), gc.reshape(-1, D)
            for b in range(B):
                for s in range(pad):
                    row = (b + 1) * T + s
                    if row < flat_x.shape[0]:
                        h = h.clone()
                        h[b] = torch.exp(flat_g[row]) * h[b] + flat_x[row]
        o = torch.stack(outs, 1) if outs else xc[:, :0]
        return o.to(x.dtype), (h.to(x.dtype) if output_final_state else None)

    return run


def _contiguous_strides(shape) -> tuple:
    st, acc = [], 1
    for n in reversed(shape):
        st.append(acc)
        acc *= max(n, 1)
    return tuple(reversed(st))


def _raw_storage():
    base = get_form("hgrn/sequential").fn

    def raw(t):  # BUG: reads the tensor's storage as if it were contiguous (data pointer + row-major offsets)
        return torch.as_strided(t, t.shape, _contiguous_strides(t.shape), t.storage_offset())

    def fn(x, g, initial_state=None, output_final_state=False, cu_seqlens=None):
        return base(raw(x), raw(g), initial_state=initial_state, output_final_state=output_final_state,
                    cu_seqlens=cu_seqlens)

    return fn


def probe_bugs(add) -> None:
    fox = "forgetting-attention"
    add("block-64-index", "hgrn/sequential", "planted-block-64", _hgrn_api(_hgrn_sequential("block-64")),
        {"boundary-probes"},
        "channels d ≥ 64 (the second 64-wide channel block) use the gate of channel d − 64",
        "issue 13: channel-block index bug past D = 64; #7 fla #1142 (wrong only past a block size)")
    add("state-reset-256", "hgrn/sequential", "planted-state-reset-256", _hgrn_api(_hgrn_sequential("reset-256")),
        {"boundary-probes"}, "the carried state is reset to 0 at t = 256 (a time index that wraps at 8 bits)",
        "issue 13: state reset at t = 256")
    add("gate-dropped-512", f"{fox}/dense", "planted-gate-dropped-512", _dense("gate-512"), {"boundary-probes"},
        "the forget gate of keys past 512 is dropped (g_l = 0 for l ≥ 512)",
        "issue 13: a decay dropped for keys past 512")
    add("raw-storage-contiguous", "hgrn/sequential", "planted-raw-storage", _raw_storage(), {"strided-inputs"},
        "reads x and g through their storage as if contiguous (as_strided with row-major strides)",
        "issue 13; #2 fla #547 (an old layout kept after a refactor); OpInfo test_noncontiguous_samples")
    add("tail-oob-64", "hgrn/sequential", "planted-tail-oob-64", _hgrn_api(_hgrn_sequential("tail-oob")),
        {"boundary-probes"},
        "T % 64 ≠ 0: the last partial 64-step tile reads past the row (next batch row / zeros) into the final state",
        "issue 13; #7 fla #1142 (out-of-bounds read when T is not a multiple of 64)")
    add("grid-overflow-65535", f"{fox}/dense", "planted-grid-overflow", _dense("grid-65535"), {"boundary-probes"},
        "one program per score on one grid axis, clamped at 65535 programs: scores past it stay zero (modelled)",
        "issue 13: grid-dimension overflow past 65535 programs (B·H·T² > 65535 at T = 257 with B = 2)")
