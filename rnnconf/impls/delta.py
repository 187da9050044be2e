"""Torch forms of ``delta-rule`` and ``gated-delta-rule`` (fla's signatures; state S ∈ ℝ^{K×V}, o_t = S_tᵀ(s q_t)):

* ``sequential``: the recurrence S_t = α_t(S_{t−1} − β_t k_t (k_tᵀS_{t−1})) + β_t k_t v_tᵀ step by step.
* ``scan``: Hillis–Steele scan over affine pairs (A_t, B_t) = (α_t(I − β_t k_t k_tᵀ), β_t k_t v_tᵀ) with the
  matrix combine (A₁, B₁) ∘ (A₂, B₂) = (A₂A₁, A₂B₁ + B₂) — the later factor on the left.
* ``chunk-wy-C``: the chunkwise WY/UT form (Yang et al. 2406.06484 §3; gated: 2412.06464), per chunk of C steps with
  G the within-chunk cumulative log-gate sum and Γ_ij = exp(G_i − G_j) (i ≥ j):
  A = strict_tril(diag(β) KKᵀ ⊙ Γ);  U = (I + A)⁻¹ diag(β) V;  W = (I + A)⁻¹ diag(β e^G) K  (forward substitution);
  V_new = U − W S;  O = (e^G ⊙ Q) S + (tril(QKᵀ) ⊙ Γ) V_new;  S ← e^{G_C} S + (e^{G_C − G} ⊙ K)ᵀ V_new.
  Any C; T need not be a multiple.  Products with a triangular mask select rather than multiply by zero.

``use_qk_l2norm_in_kernel=True`` normalises q and k rows first (x/√(Σx² + ε), :func:`._common.l2norm_rows`).
"""
from __future__ import annotations

import math

import torch

from ..spec.delta import QK_L2NORM_EPS
from ..spec.errors import Traits
from ..spec.targets import FEATURES, QK_L2NORM, Target, register_form
from ._common import compute_dtype, l2norm_rows, varlen_by_split

SUPPORTS = frozenset(FEATURES) | {QK_L2NORM}


def _prep(q, k, v, beta, g, scale, initial_state):
    cd = compute_dtype(q.dtype)
    B, T, H, K = q.shape
    V = v.shape[-1]
    s = 1.0 / math.sqrt(K) if scale is None else scale
    S = initial_state.to(cd) if initial_state is not None else q.new_zeros(B, H, K, V, dtype=cd)
    qh, kh, vh = (x.to(cd).transpose(1, 2) for x in (q, k, v))  # [B, H, T, ·]
    bh = beta.to(cd).transpose(1, 2)
    gh = g.to(cd).transpose(1, 2) if g is not None else None
    return cd, s, S, qh * s, kh, vh, bh, gh


def _sequential(q, k, v, beta, g, scale, initial_state, output_final_state):
    cd, s, S, qh, kh, vh, bh, gh = _prep(q, k, v, beta, g, scale, initial_state)
    outs = []
    for t in range(q.shape[1]):
        kt, vt, bt = kh[:, :, t], vh[:, :, t], bh[:, :, t, None, None]
        kS = torch.einsum("bhk,bhkv->bhv", kt, S)
        S = S - bt * kt[..., :, None] * kS[..., None, :]
        if gh is not None:
            S = torch.exp(gh[:, :, t])[..., None, None] * S
        S = S + bt * kt[..., :, None] * vt[..., None, :]
        outs.append(torch.einsum("bhk,bhkv->bhv", qh[:, :, t], S))
    o = torch.stack(outs, 2) if outs else vh[:, :, :0]
    return o.transpose(1, 2).to(q.dtype), (S.to(q.dtype) if output_final_state else None)


def matrix_combine(p1, p2):
    """(A₁, B₁) ∘ (A₂, B₂) = (A₂A₁, A₂B₁ + B₂): step 1, then step 2 (the later factor on the left)."""
    A1, B1 = p1
    A2, B2 = p2
    return A2 @ A1, A2 @ B1 + B2


def _scan(q, k, v, beta, g, scale, initial_state, output_final_state):
    cd, s, S0, qh, kh, vh, bh, gh = _prep(q, k, v, beta, g, scale, initial_state)
    B, H, T, K = kh.shape
    A = torch.eye(K, dtype=cd) - bh[..., None, None] * kh[..., :, None] * kh[..., None, :]
    if gh is not None:
        A = torch.exp(gh)[..., None, None] * A
    Bm = bh[..., None, None] * kh[..., :, None] * vh[..., None, :]
    step = 1
    while step < T:
        Ap = torch.eye(K, dtype=cd).expand_as(A).clone()
        Bp = torch.zeros_like(Bm)
        Ap[:, :, step:], Bp[:, :, step:] = A[:, :, :-step], Bm[:, :, :-step]
        A, Bm = matrix_combine((Ap, Bp), (A, Bm))
        step *= 2
    S = A @ S0[:, :, None] + Bm  # [B, H, T, K, V]
    o = torch.einsum("bhtk,bhtkv->bhtv", qh, S)
    ST = S[:, :, -1] if T else S0
    return o.transpose(1, 2).to(q.dtype), (ST.to(q.dtype) if output_final_state else None)


def _tril_matmul(M: torch.Tensor, X: torch.Tensor, strict: bool = False) -> torch.Tensor:
    """(tril(M)) X for M [.., C, C], X [.., C, V], selecting j ≤ i (j < i if ``strict``) so that a NaN in a later
    row of X never meets a zero weight."""
    C = M.shape[-1]
    mask = torch.ones(C, C, dtype=torch.bool, device=M.device).tril(-1 if strict else 0)
    prod = M[..., :, :, None] * X[..., None, :, :]
    return torch.where(mask[..., None], prod, torch.zeros((), dtype=prod.dtype)).sum(-2)


def _chunk(C):
    def run(q, k, v, beta, g, scale, initial_state, output_final_state):
        cd, s, S, qh, kh, vh, bh, gh = _prep(q, k, v, beta, g, scale, initial_state)
        T = kh.shape[2]
        outs = []
        for c0 in range(0, T, C):
            Q, Kc, Vc, b = qh[:, :, c0:c0 + C], kh[:, :, c0:c0 + C], vh[:, :, c0:c0 + C], bh[:, :, c0:c0 + C]
            n = Kc.shape[2]
            G = torch.cumsum(gh[:, :, c0:c0 + C], -1) if gh is not None else torch.zeros_like(b)
            low = torch.ones(n, n, dtype=torch.bool, device=q.device).tril()
            Gam = torch.exp(torch.where(low, G[..., :, None] - G[..., None, :], torch.tensor(-math.inf, dtype=cd)))
            A = torch.where(low.tril(-1), b[..., :, None] * (Kc @ Kc.transpose(-1, -2)) * Gam,
                            torch.zeros((), dtype=cd))
            M = torch.eye(n, dtype=cd) + A
            U = torch.linalg.solve_triangular(M, b[..., None] * Vc, upper=False, unitriangular=True)
            W = torch.linalg.solve_triangular(M, (b * torch.exp(G))[..., None] * Kc, upper=False,
                                              unitriangular=True)
            Vn = U - W @ S
            QK = torch.where(low, (Q @ Kc.transpose(-1, -2)) * Gam, torch.zeros((), dtype=cd))
            outs.append(torch.exp(G)[..., None] * (Q @ S) + _tril_matmul(QK, Vn))
            GC = G[..., -1:]
            S = torch.exp(GC)[..., None] * S + (torch.exp(GC - G)[..., None] * Kc).transpose(-1, -2) @ Vn
        o = torch.cat(outs, 2) if outs else vh[:, :, :0]
        return o.transpose(1, 2).to(q.dtype), (S.to(q.dtype) if output_final_state else None)

    return run


def _api(core, gated):
    def split(q, k, v, beta, g, scale, initial_state, output_final_state, cu_seqlens, norm):
        if norm:
            q, k = l2norm_rows(q, QK_L2NORM_EPS), l2norm_rows(k, QK_L2NORM_EPS)
        if cu_seqlens is None:
            return core(q, k, v, beta, g, scale, initial_state, output_final_state)
        if g is None:  # v last: it shapes the output of an empty batch
            def dense(q, k, beta, v, initial_state, output_final_state):
                return core(q, k, v, beta, None, scale, initial_state, output_final_state)
            seq = [q, k, beta, v]
        else:
            def dense(q, k, beta, g, v, initial_state, output_final_state):
                return core(q, k, v, beta, g, scale, initial_state, output_final_state)
            seq = [q, k, beta, g, v]
        return varlen_by_split(dense, seq, initial_state, output_final_state, cu_seqlens)

    if gated:
        def fn(q, k, v, g, beta, scale=None, initial_state=None, output_final_state=False, cu_seqlens=None,
               use_qk_l2norm_in_kernel=False):
            return split(q, k, v, beta, g, scale, initial_state, output_final_state, cu_seqlens,
                         use_qk_l2norm_in_kernel)
    else:
        def fn(q, k, v, beta, scale=None, initial_state=None, output_final_state=False, cu_seqlens=None,
               use_qk_l2norm_in_kernel=False):
            return split(q, k, v, beta, None, scale, initial_state, output_final_state, cu_seqlens,
                         use_qk_l2norm_in_kernel)
    fn.__doc__ = core.__doc__
    return fn


for _sid, _gated in (("delta-rule", False), ("gated-delta-rule", True)):
    register_form(Target(_sid, "sequential", _api(_sequential, _gated), traits=Traits(accumulate="float32",
                         cumsum="none"), supports=SUPPORTS, doc="step-by-step recurrence"))
    register_form(Target(_sid, "scan", _api(_scan, _gated), traits=Traits(accumulate="float32", cumsum="none"),
                         combine=None, supports=SUPPORTS,
                         doc="Hillis–Steele scan over (A_t, B_t) with the matrix combine"))
    for _C in (16, 5):
        register_form(Target(_sid, f"chunk-wy-{_C}", _api(_chunk(_C), _gated),
                             # layout_dependent: torch's matmuls pick their CPU kernel by the operands' strides, so
                             # non-contiguous views round differently (found by the strided-inputs property)
                             traits=Traits(accumulate="float32", cumsum="chunk", chunk_size=_C,
                                           layout_dependent=True), supports=SUPPORTS,
                             doc=f"chunkwise WY/UT transform, C = {_C}"))
