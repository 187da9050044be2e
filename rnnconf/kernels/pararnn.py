"""Triton kernel for ParaRNN's diagonal reduction (:mod:`rnnconf.spec.pararnn`), used inside Newton: each iteration
solves δ_t = A_t δ_{t−1} + r_t (δ_0 = 0) for every channel with ``tl.associative_scan`` over (A, r) pairs, the
combine (a₁, b₁) ∘ (a₂, b₂) = (a₁a₂, a₂b₁ + b₂) (:func:`rnnconf.kernels.hgrn.combine`).

One program per (batch row, block of channels) walks the sequence in tiles of BT = min(next_power_of_2(T), 1024)
steps: inside a tile the scan gives the prefix products P_t and the local solution; across tiles the carried δ enters
as δ_t += P_t·δ_carry.  Padding rows are the identity (1, 0).  The arithmetic is in the inputs' dtype (the Newton form
passes float32 for half inputs, float64 for float64).  The form ``paragru/newton-triton`` is the torch Newton form of
:mod:`rnnconf.impls.pararnn` with this reduction in its forward and in its adjoint backward (the reversed sequence);
its cell and Jacobian evaluation stay in torch.  Under ``TRITON_INTERPRET=1`` it runs on the CPU.
"""
from __future__ import annotations

import inspect

import torch
import triton
import triton.language as tl

from ..impls.pararnn import NEWTON, para_newton
from ..spec.errors import Traits
from ..spec.targets import Target, register_form
from .hgrn import combine

MAX_BT = 1024
BM = 16


@triton.jit(do_not_specialize=["T"])
def _diag_reduce_kernel(A, R, O, T, M, BT: tl.constexpr, BM: tl.constexpr):
    i_m, i_b = tl.program_id(0), tl.program_id(1)
    m = i_m * BM + tl.arange(0, BM)
    mm = m < M
    rows = tl.arange(0, BT)
    base = i_b.to(tl.int64) * T * M
    carry = tl.zeros([BM], dtype=A.dtype.element_ty)
    for t0 in range(0, T, BT):
        t = t0 + rows
        msk = (t[:, None] < T) & mm[None, :]
        off = base + t[:, None].to(tl.int64) * M + m[None, :]
        a = tl.load(A + off, mask=msk, other=1.0)
        r = tl.load(R + off, mask=msk, other=0.0)
        a = tl.where(msk, a, 1.0)
        r = tl.where(msk, r, 0.0)
        P, d = tl.associative_scan((a, r), 0, combine)
        d = d + P * carry[None, :]
        tl.store(O + off, d, mask=msk)
        carry = tl.sum(tl.where(rows[:, None] == BT - 1, d, 0.0), 0)


def reduce_triton(A: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """δ for diagonal ``A``, ``r`` [B, T, M, 1] (the Newton driver's layout); other structures are not this kernel's
    (a ValueError)."""
    if A.dim() != r.dim() or r.shape[-1] != 1:
        raise ValueError(f"reduce_triton takes a diagonal A [B, T, M, 1]; got A {list(A.shape)}, r {list(r.shape)}")
    B, T, M, _ = r.shape
    out = torch.empty_like(r)
    if T == 0 or B == 0 or M == 0:
        return out
    a, rr = A.reshape(B, T, M).contiguous(), r.reshape(B, T, M).contiguous()
    bt = min(triton.next_power_of_2(T), MAX_BT)
    _diag_reduce_kernel[(triton.cdiv(M, BM), B)](a, rr, out, T, M, BT=bt, BM=BM)
    return out


def paragru_newton_triton(Wx, a, b, initial_state=None, output_final_state=False, newton_its=None, omega=1.0):
    """ParaGRU by Newton, each iteration's reduction (and the adjoint's) in Triton."""
    return para_newton("paragru", Wx, a, b, None, initial_state, output_final_state, newton_its, omega,
                       reduce=reduce_triton)


paragru_newton_triton.__signature__ = inspect.signature(NEWTON["paragru"])

register_form(Target(
    "paragru", "newton-triton", paragru_newton_triton, kind="triton",
    traits=Traits(accumulate="float32", cumsum="none", solve="newton", adaptive=True),
    extras={"newton": {"its_kw": "newton_its", "omega_kw": "omega", "iterations": None, "reduce": reduce_triton,
                       "structures": ("diagonal",)}},
    doc="Newton as paragru/newton, its diagonal reduction a Triton tl.associative_scan (tiles of ≤ 1024 steps, "
        "carry across tiles), forward and adjoint"))
