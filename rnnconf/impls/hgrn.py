"""Torch forms of ``hgrn`` (h_t = exp(g_t) h_{t−1} + x_t): sequential, parallel scan, chunkwise.

All take fla's signature ``fn(x, g, initial_state=None, output_final_state=False, cu_seqlens=None)``.
"""
from __future__ import annotations

import math

import torch

from ..spec.diagonal import combine
from ..spec.errors import Traits
from ..spec.targets import Target, register_form
from ._common import compute_dtype, hillis_steele, varlen_by_split


def _prep(x, g, initial_state):
    cd = compute_dtype(x.dtype)
    B, T, D = x.shape
    h0 = initial_state.to(cd) if initial_state is not None else x.new_zeros(B, D, dtype=cd)
    return x.to(cd), g.to(cd), h0


def _sequential(x, g, initial_state=None, output_final_state=False):
    xc, gc, h = _prep(x, g, initial_state)
    outs = []
    for t in range(x.shape[1]):
        h = torch.exp(gc[:, t]) * h + xc[:, t]
        outs.append(h)
    o = torch.stack(outs, 1) if outs else xc[:, :0]
    return o.to(x.dtype), (h.to(x.dtype) if output_final_state else None)


def _scan(x, g, initial_state=None, output_final_state=False):
    """Hillis–Steele inclusive scan of (a, b) pairs with the diagonal combine; h_0 folds into b_1."""
    xc, gc, h0 = _prep(x, g, initial_state)
    h, hT = hillis_steele(torch.exp(gc), xc, h0)
    return h.to(x.dtype), (hT.to(x.dtype) if output_final_state else None)


def _chunk(chunk_size):
    def run(x, g, initial_state=None, output_final_state=False):
        """Within a chunk, with G = cumsum(g) from the chunk start:
        h_i = exp(G_i) h_prev + Σ_{j≤i} exp(G_i − G_j) x_j  (masked before exp, so no inf·0)."""
        xc, gc, h = _prep(x, g, initial_state)
        T = x.shape[1]
        outs = []
        for s in range(0, T, chunk_size):
            xs, gs = xc[:, s:s + chunk_size], gc[:, s:s + chunk_size]
            C = xs.shape[1]
            G = torch.cumsum(gs, 1)  # [B, C, D]
            diff = G[:, :, None, :] - G[:, None, :, :]  # [B, i, j, D]
            mask = torch.ones(C, C, dtype=torch.bool, device=x.device).tril()[None, :, :, None]
            L = torch.exp(torch.where(mask, diff, torch.full_like(diff, -math.inf)))
            # select, don't multiply by a zero mask: 0 · NaN from a later x_j must not reach h_i (causality)
            contrib = torch.where(mask, L * xs[:, None], torch.zeros((), dtype=xs.dtype))
            o = contrib.sum(2) + torch.exp(G) * h[:, None]
            outs.append(o)
            h = o[:, -1]
        o = torch.cat(outs, 1) if outs else xc[:, :0]
        return o.to(x.dtype), (h.to(x.dtype) if output_final_state else None)

    return run


def _with_varlen(dense):
    def fn(x, g, initial_state=None, output_final_state=False, cu_seqlens=None):
        if cu_seqlens is None:
            return dense(x, g, initial_state=initial_state, output_final_state=output_final_state)
        return varlen_by_split(dense, [x, g], initial_state, output_final_state, cu_seqlens)

    fn.__doc__ = dense.__doc__
    return fn


sequential = _with_varlen(_sequential)
scan = _with_varlen(_scan)
chunk16 = _with_varlen(_chunk(16))
chunk7 = _with_varlen(_chunk(7))

register_form(Target("hgrn", "sequential", sequential, traits=Traits(accumulate="float32", cumsum="none"),
                     doc="python loop over t"))
register_form(Target("hgrn", "scan", scan, traits=Traits(accumulate="float32", cumsum="none"), combine=combine,
                     doc="Hillis–Steele scan over (exp g, x) pairs"))
register_form(Target("hgrn", "chunk16", chunk16, traits=Traits(accumulate="float32", cumsum="chunk", chunk_size=16),
                     doc="chunkwise, C = 16"))
register_form(Target("hgrn", "chunk7", chunk7, traits=Traits(accumulate="float32", cumsum="chunk", chunk_size=7),
                     doc="chunkwise, C = 7 (prime, so most T are not multiples)"))
