"""Torch forms of ``delta-product`` (fla's ``chunk_gated_delta_product`` signature; k, v, beta interleaved with
n_h sub-steps per token, sub-step j of token t at row t·n_h + j):

* ``sequential``: per token the gate S ← α_t S, then n_h sub-steps S ← S − β k (kᵀS − vᵀ), then o_t = S_tᵀ(s q_t).
* ``scan``: each token's affine pair (α_t A_t, B_t), A_t = H_{n_h}⋯H_1 built by applying the sub-steps to (α_t I, 0),
  then the Hillis–Steele scan with the matrix combine of :mod:`rnnconf.impls.delta` (later factor on the left).
* ``chunk-wy-C``: fla's reduction — the gated delta rule's chunkwise WY/UT form on the interleaved sequence of
  T·n_h sub-steps (gate at sub-step 0, query at sub-step n_h − 1, zeros elsewhere), every n_h-th output kept.

``use_qk_l2norm_in_kernel=True`` normalises every q row and every sub-step's k row first.
"""
from __future__ import annotations

import torch

from ..spec.delta import QK_L2NORM_EPS
from ..spec.delta_product import spread
from ..spec.errors import Traits
from ..spec.targets import Target, register_form
from ._common import l2norm_rows, varlen_by_split
from .delta import SUPPORTS, _chunk, _prep, matrix_combine


def _sequential(q, k, v, g, beta, n, scale, initial_state, output_final_state):
    cd, s, S, qh, kh, vh, bh, gh = _prep(q, k, v, beta, g, scale, initial_state)
    outs = []
    for t in range(q.shape[1]):
        S = torch.exp(gh[:, :, t])[..., None, None] * S
        for j in range(n):
            r = t * n + j
            kt, vt, bt = kh[:, :, r], vh[:, :, r], bh[:, :, r, None, None]
            kS = torch.einsum("bhk,bhkv->bhv", kt, S)
            S = S - bt * kt[..., :, None] * (kS - vt)[..., None, :]
        outs.append(torch.einsum("bhk,bhkv->bhv", qh[:, :, t], S))
    o = torch.stack(outs, 2) if outs else vh[:, :, :0]
    return o.transpose(1, 2).to(q.dtype), (S.to(q.dtype) if output_final_state else None)


def _scan(q, k, v, g, beta, n, scale, initial_state, output_final_state):
    cd, s, S0, qh, kh, vh, bh, gh = _prep(q, k, v, beta, g, scale, initial_state)
    B, H, T, K = qh.shape
    V = vh.shape[-1]
    A = torch.exp(gh)[..., None, None] * torch.eye(K, dtype=cd)  # [B, H, T, K, K]
    Bm = torch.zeros(B, H, T, K, V, dtype=cd)
    kr, vr, br = (x.reshape(B, H, T, n, *x.shape[3:]) for x in (kh, vh, bh))
    for j in range(n):  # H_j (A, B) + (0, β k vᵀ): the sub-step applied to the pair
        kj, vj, bj = kr[:, :, :, j], vr[:, :, :, j], br[:, :, :, j, None, None]
        A = A - bj * kj[..., :, None] * (kj[..., None, :] @ A)
        Bm = Bm - bj * kj[..., :, None] * ((kj[..., None, :] @ Bm) - vj[..., None, :])
    step = 1
    while step < T:
        Ap = torch.eye(K, dtype=cd).expand_as(A).clone()
        Bp = torch.zeros_like(Bm)
        Ap[:, :, step:], Bp[:, :, step:] = A[:, :, :-step], Bm[:, :, :-step]
        A, Bm = matrix_combine((Ap, Bp), (A, Bm))
        step *= 2
    S = A @ S0[:, :, None] + Bm
    o = torch.einsum("bhtk,bhtkv->bhtv", qh, S)
    ST = S[:, :, -1] if T else S0
    return o.transpose(1, 2).to(q.dtype), (ST.to(q.dtype) if output_final_state else None)


def _chunk_interleaved(C):
    core = _chunk(C)

    def run(q, k, v, g, beta, n, scale, initial_state, output_final_state):
        s = q.shape[-1] ** -0.5 if scale is None else scale
        o, ST = core(spread(q, n, n - 1), k, v, beta, spread(g, n, 0), s, initial_state, output_final_state)
        return o[:, n - 1::n], ST

    return run


def product_api(core):
    """fla's signature around ``core(q, k, v, g, beta, n, scale, h0, output_final_state)``; varlen splits by tokens
    (rows [cu·n_h, cu'·n_h) of k, v, beta)."""
    def fn(q, k, v, g, beta, num_householder, scale=None, initial_state=None, output_final_state=False,
           cu_seqlens=None, use_qk_l2norm_in_kernel=False):
        n = int(num_householder)
        if use_qk_l2norm_in_kernel:
            q, k = l2norm_rows(q, QK_L2NORM_EPS), l2norm_rows(k, QK_L2NORM_EPS)
        if k.shape[1] != q.shape[1] * n:
            raise ValueError(f"delta-product: k has {k.shape[1]} rows, expected T·num_householder = {q.shape[1] * n}")
        if cu_seqlens is None:
            return core(q, k, v, g, beta, n, scale, initial_state, output_final_state)
        B, T = q.shape[:2]
        per_token = [x.reshape(B, T, n, *x.shape[2:]) for x in (k, beta)]

        def dense(q, k, beta, g, v, initial_state, output_final_state):
            return core(q, k.flatten(1, 2), v.flatten(1, 2), g, beta.flatten(1, 2), n, scale, initial_state,
                        output_final_state)

        # v last, per token ([1, T, n, H, V]): varlen_by_split shapes an empty batch's output like it
        o, ST = varlen_by_split(dense, [q, *per_token, g, v.reshape(B, T, n, *v.shape[2:])], initial_state,
                                output_final_state, cu_seqlens)
        if o.dim() == 5:  # empty batch: shaped like v per token
            o = o[:, :, 0]
        return o, ST

    fn.__doc__ = core.__doc__
    return fn


_T = Traits(accumulate="float32", cumsum="none")
register_form(Target("delta-product", "sequential", product_api(_sequential), traits=_T, supports=SUPPORTS,
                     doc="gate, n_h Householder sub-steps, read — token by token"))
register_form(Target("delta-product", "scan", product_api(_scan), traits=_T, supports=SUPPORTS,
                     doc="Hillis–Steele scan over per-token (α_t H_{n_h}⋯H_1, B_t) with the matrix combine"))
for _C in (16, 5):
    register_form(Target("delta-product", f"chunk-wy-{_C}", product_api(_chunk_interleaved(_C)),
                         # layout_dependent: torch's matmuls pick their CPU kernel by the operands' strides
                         traits=Traits(accumulate="float32", cumsum="chunk", chunk_size=_C, layout_dependent=True),
                         supports=SUPPORTS,
                         doc=f"chunkwise WY/UT (C = {_C} sub-steps) on the interleaved sequence, as fla reduces it"))
