"""Helpers shared by the torch forms: compute dtype, varlen by splitting, and packing outputs."""
from __future__ import annotations

from typing import Callable

import torch

from ..spec.diagonal import combine


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Half inputs accumulate in float32 (as fla's kernels do); float32/float64 in themselves."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def l2norm_rows(x: torch.Tensor, eps: float) -> torch.Tensor:
    """x / √(Σx² + ε) along the last axis, computed in the compute dtype and returned in x's dtype (as fla's
    ``l2norm_fwd`` stores it)."""
    xc = x.to(compute_dtype(x.dtype))
    return (xc * torch.rsqrt((xc * xc).sum(-1, keepdim=True) + eps)).to(x.dtype)


def varlen_by_split(dense: Callable, seq_inputs: list[torch.Tensor], initial_state, output_final_state, cu_seqlens):
    """Evaluate a dense ``[B, T, ...]`` form on packed sequences (B = 1) one sequence at a time.

    ``dense(*inputs, initial_state, output_final_state=True)`` must return (o, final_state); the last input is
    shaped like the output along its leading axes (it shapes the output of an empty batch)."""
    if seq_inputs[0].shape[0] != 1:
        raise ValueError(f"varlen needs batch size 1, got {seq_inputs[0].shape[0]}")
    offs = [int(v) for v in cu_seqlens.tolist()]
    outs, finals = [], []
    for n in range(len(offs) - 1):
        lo, hi = offs[n], offs[n + 1]
        h0 = initial_state[n:n + 1] if initial_state is not None else None
        o, hT = dense(*[x[:, lo:hi] for x in seq_inputs], initial_state=h0, output_final_state=True)
        outs.append(o)
        finals.append(hT)
    o = torch.cat(outs, 1) if outs else seq_inputs[-1][:, :0].clone()
    return o, (torch.cat(finals, 0) if output_final_state else None)


def varlen_stateless(fn: Callable, seq_inputs: list[torch.Tensor], cu_seqlens, *shared, **kw) -> torch.Tensor:
    """A state-free op on packed sequences (B = 1): ``fn(*[x[:, lo:hi] for x in seq_inputs], *shared, **kw)`` per
    sequence, concatenated along T (an empty batch gives an empty output shaped like the last input)."""
    if any(x.shape[0] != 1 for x in seq_inputs):
        raise ValueError(f"varlen needs batch size 1, got {seq_inputs[0].shape[0]}")
    offs = [int(v) for v in cu_seqlens.tolist()]
    outs = [fn(*[x[:, lo:hi] for x in seq_inputs], *shared, **kw) for lo, hi in zip(offs[:-1], offs[1:])]
    return torch.cat(outs, 1) if outs else seq_inputs[-1][:, :0].clone()


def hillis_steele(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor):
    """Inclusive Hillis–Steele scan of (a, b) pairs [B, T, D] with the diagonal combine, h_0 folded into b_1.
    Returns (h [B, T, D], h_T); works for real and complex pairs."""
    T = a.shape[1]
    b = b.clone()
    if T:
        b[:, 0] = b[:, 0] + a[:, 0] * h0
    step = 1
    while step < T:
        a_prev, b_prev = torch.ones_like(a), torch.zeros_like(b)
        a_prev[:, step:], b_prev[:, step:] = a[:, :-step], b[:, :-step]
        a, b = combine((a_prev, b_prev), (a, b))
        step *= 2
    return b, (b[:, -1] if T else h0)
