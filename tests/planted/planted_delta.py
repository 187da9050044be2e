"""Planted bugs for the delta-rule family: copies of the sequential, scan and chunkwise WY forms of
:mod:`rnnconf.impls.delta`, each mutant differing in the lines marked ``# BUG``.  ``delta_bugs(add)`` registers them."""
from __future__ import annotations

import math

import torch

from rnnconf.impls._common import l2norm_rows
from rnnconf.impls.delta import _api, _prep, _tril_matmul
from rnnconf.spec.delta import QK_L2NORM_EPS


def _sequential(bug):
    def run(q, k, v, beta, g, scale, initial_state, output_final_state):
        cd, s, S, qh, kh, vh, bh, gh = _prep(q, k, v, beta, g, scale, initial_state)
        outs = []
        for t in range(q.shape[1]):
            kt, vt, bt = kh[:, :, t], vh[:, :, t], bh[:, :, t, None, None]
            kS = torch.einsum("bhk,bhkv->bhv", kt, S)
            if bug == "beta-one-term":
                S = S - kt[..., :, None] * kS[..., None, :]  # BUG: β missing from the erase term
            else:
                S = S - bt * kt[..., :, None] * kS[..., None, :]
            if bug == "gate-after-write":
                S = S + bt * kt[..., :, None] * vt[..., None, :]
                S = torch.exp(gh[:, :, t])[..., None, None] * S  # BUG: the gate also decays the new write
            else:
                if gh is not None:
                    S = torch.exp(gh[:, :, t])[..., None, None] * S
                S = S + bt * kt[..., :, None] * vt[..., None, :]
            outs.append(torch.einsum("bhk,bhkv->bhv", qh[:, :, t], S))
        o = torch.stack(outs, 2) if outs else vh[:, :, :0]
        return o.transpose(1, 2).to(q.dtype), (S.to(q.dtype) if output_final_state else None)

    return run


def _scan_reversed(q, k, v, beta, g, scale, initial_state, output_final_state):
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
        A, Bm = Ap @ A, A @ Bp + Bm  # BUG: A₁A₂ — the earlier factor on the left
        step *= 2
    S = A @ S0[:, :, None] + Bm
    o = torch.einsum("bhtk,bhtkv->bhtv", qh, S)
    ST = S[:, :, -1] if T else S0
    return o.transpose(1, 2).to(q.dtype), (ST.to(q.dtype) if output_final_state else None)


def _chunk(C, bug):
    def run(q, k, v, beta, g, scale, initial_state, output_final_state):
        cd, s, S, qh, kh, vh, bh, gh = _prep(q, k, v, beta, g, scale, initial_state)
        T = kh.shape[2]
        outs = []
        for c0 in range(0, T, C):
            Q, Kc, Vc, b = qh[:, :, c0:c0 + C], kh[:, :, c0:c0 + C], vh[:, :, c0:c0 + C], bh[:, :, c0:c0 + C]
            n = Kc.shape[2]
            G = torch.cumsum(gh[:, :, c0:c0 + C], -1) if gh is not None else torch.zeros_like(b)
            low = torch.ones(n, n, dtype=torch.bool).tril()
            Gam = torch.exp(torch.where(low, G[..., :, None] - G[..., None, :], torch.tensor(-math.inf, dtype=cd)))
            tri = low if bug == "wy-nonstrict" else low.tril(-1)  # BUG (wy-nonstrict): the diagonal kept in A
            A = torch.where(tri, b[..., :, None] * (Kc @ Kc.transpose(-1, -2)) * Gam, torch.zeros((), dtype=cd))
            M = torch.eye(n, dtype=cd) + A
            unit = bug != "wy-nonstrict"
            U = torch.linalg.solve_triangular(M, b[..., None] * Vc, upper=False, unitriangular=unit)
            W = torch.linalg.solve_triangular(M, (b * torch.exp(G))[..., None] * Kc, upper=False, unitriangular=unit)
            Vn = U - W @ S
            QK = torch.where(low, (Q @ Kc.transpose(-1, -2)) * Gam, torch.zeros((), dtype=cd))
            if bug == "query-gate-missing":
                outs.append(Q @ S + _tril_matmul(QK, Vn))  # BUG: the carried state read without e^{G_i}
            else:
                outs.append(torch.exp(G)[..., None] * (Q @ S) + _tril_matmul(QK, Vn))
            GC = G[..., -1:]
            if bug == "carry-ungated":
                S = S + (torch.exp(GC - G)[..., None] * Kc).transpose(-1, -2) @ Vn  # BUG: no e^{G_C} on the carry
            else:
                S = torch.exp(GC)[..., None] * S + (torch.exp(GC - G)[..., None] * Kc).transpose(-1, -2) @ Vn
        o = torch.cat(outs, 2) if outs else vh[:, :, :0]
        return o.transpose(1, 2).to(q.dtype), (S.to(q.dtype) if output_final_state else None)

    return run


def _query_norm_only(fn):
    """``fn`` (a form's API with the flag off) with a normalisation mode that forgets the keys."""
    def run(*args, use_qk_l2norm_in_kernel=False, **kw):
        if use_qk_l2norm_in_kernel:
            args = (l2norm_rows(args[0], QK_L2NORM_EPS),) + args[1:]  # BUG: q normalised, k passed through raw
        return fn(*args, **kw)

    return run


def _normalize_clamped(fn):
    """``fn`` with a normalisation mode using torch's F.normalize convention x/max(‖x‖, ε) instead of the spec's
    x/√(Σx² + ε) — equal for ‖x‖ ≫ √ε, off by up to √2 near ‖x‖ = √ε = 10⁻³ (and 10⁶× larger for tiny rows)."""
    def run(*args, use_qk_l2norm_in_kernel=False, **kw):
        if use_qk_l2norm_in_kernel:
            q, k = (torch.nn.functional.normalize(x, dim=-1, eps=QK_L2NORM_EPS) for x in args[:2])  # BUG: clamp
            args = (q, k) + args[2:]
        return fn(*args, **kw)

    return run


class _NormNoProjection(torch.autograd.Function):
    """x̂ = x/√(Σx² + ε) forward; backward dx = r·dx̂ — the projection −x̂(x̂·dx̂) dropped."""

    @staticmethod
    def forward(ctx, x):
        r = torch.rsqrt((x * x).sum(-1, keepdim=True) + QK_L2NORM_EPS)
        ctx.save_for_backward(r)
        return x * r

    @staticmethod
    def backward(ctx, g):
        (r,) = ctx.saved_tensors
        return g * r  # BUG: should be r·(g − x̂(x̂·g))


def _norm_backward_unprojected(fn):
    def run(*args, use_qk_l2norm_in_kernel=False, **kw):
        if use_qk_l2norm_in_kernel:
            args = tuple(_NormNoProjection.apply(x) for x in args[:2]) + args[2:]
        return fn(*args, **kw)

    return run


def delta_bugs(add) -> None:
    d, gd = "delta-rule", "gated-delta-rule"
    add("delta-beta-one-term", f"{d}/sequential", "planted-beta-one-term", _api(_sequential("beta-one-term"), False),
        {"oracle"}, "β applied to the write term only: S − k(kᵀS) + βkvᵀ", "brief: β applied to one of two terms")
    add("delta-gate-after-write", f"{gd}/sequential", "planted-gate-after-write",
        _api(_sequential("gate-after-write"), True), {"oracle"},
        "gate applied after the write: α(A S + βkvᵀ) instead of αA S + βkvᵀ",
        "brief: gate applied after instead of before (models-1.md §6: H_{t,0} = α_t H_{t−1})")
    add("delta-wy-nonstrict", f"{d}/chunk-wy-16", "planted-wy-nonstrict", _api(_chunk(16, "wy-nonstrict"), False),
        {"oracle"}, "WY/UT: A = tril(diag(β)KKᵀ) with the diagonal instead of strict_tril",
        "brief: WY solve using strict vs non-strict triangle")
    add("delta-carry-ungated", f"{gd}/chunk-wy-5", "planted-carry-ungated", _api(_chunk(5, "carry-ungated"), True),
        {"oracle", "state-carry"}, "chunk boundary carries S without the chunk's decay e^{G_C}",
        "brief: state carried without the gate at chunk boundaries")
    add("delta-query-gate-missing", f"{gd}/chunk-wy-16", "planted-query-gate-missing",
        _api(_chunk(16, "query-gate-missing"), True), {"oracle"},
        "chunk output reads the carried state as QS instead of (e^G ⊙ Q)S", "models-1.md §6 chunk formula")
    add("delta-scan-reversed", f"{d}/scan", "planted-scan-reversed", _api(_scan_reversed, False), {"oracle"},
        "matrix scan combine multiplies the earlier factor on the left (A₁A₂)",
        "brief: factor order matters (a form that reverses it must fail)")
    add("delta-key-norm-dropped", f"{gd}/sequential", "planted-key-norm-dropped",
        _query_norm_only(_api(_sequential(None), True)), {"delta-qk-l2norm"},
        "use_qk_l2norm_in_kernel=True normalises q but passes k through unnormalised",
        "brief: key normalisation dropped (fla's use_qk_l2norm_in_kernel)")
    add("delta-l2norm-bwd-unprojected", f"{d}/sequential", "planted-l2norm-bwd-unprojected",
        _norm_backward_unprojected(_api(_sequential(None), False)), {"delta-qk-l2norm-gradients"},
        "normalisation backward dx = r·dx̂, missing −r·x̂(x̂·dx̂) (forward correct)",
        "fla's l2norm_bwd (dx = r(dy − y(y·dy))); an in-kernel normalisation needs its own backward")


def _dp_sequential(bug):
    def run(q, k, v, g, beta, n, scale, initial_state, output_final_state):
        cd, s, S, qh, kh, vh, bh, gh = _prep(q, k, v, beta, g, scale, initial_state)
        outs = []
        for t in range(q.shape[1]):
            if bug != "gate-after-first":
                S = torch.exp(gh[:, :, t])[..., None, None] * S
            order = range(n - 1, -1, -1) if bug == "householder-reversed" else range(n)  # BUG: H_1⋯H_{n_h}
            for j in order:
                r = t * n + j
                kt, vt, bt = kh[:, :, r], vh[:, :, r], bh[:, :, r, None, None]
                kS = torch.einsum("bhk,bhkv->bhv", kt, S)
                S = S - bt * kt[..., :, None] * (kS - vt)[..., None, :]
                if bug == "gate-after-first" and j == 0:
                    S = torch.exp(gh[:, :, t])[..., None, None] * S  # BUG: the gate after the first sub-step
            outs.append(torch.einsum("bhk,bhkv->bhv", qh[:, :, t], S))
        o = torch.stack(outs, 2) if outs else vh[:, :, :0]
        return o.transpose(1, 2).to(q.dtype), (S.to(q.dtype) if output_final_state else None)

    return run


def delta_product_bugs(add) -> None:
    from rnnconf.impls.delta_product import product_api

    dp = "delta-product"
    add("dp-householder-reversed", f"{dp}/sequential", "planted-householder-reversed",
        product_api(_dp_sequential("householder-reversed")), {"oracle", "dp-interleaved"},
        "sub-steps applied last-first: A_t = H_1⋯H_{n_h} instead of H_{n_h}⋯H_1",
        "brief: Householder order reversed (models-1.md §6: reversed product differs by 0.46)")
    add("dp-gate-after-first", f"{dp}/sequential", "planted-gate-after-first",
        product_api(_dp_sequential("gate-after-first")), {"oracle", "dp-interleaved"},
        "gate applied after the first Householder sub-step instead of before it",
        "brief: gate applied after instead of before the first sub-step (fla: g at sub-step 0)")
    from rnnconf.impls.delta_product import _chunk_interleaved

    add("dp-l2norm-clamped", f"{dp}/chunk-wy-16", "planted-l2norm-clamped",
        _normalize_clamped(product_api(_chunk_interleaved(16))), {"delta-qk-l2norm"},
        "use_qk_l2norm_in_kernel with F.normalize's x/max(‖x‖, ε) instead of x/√(Σx² + ε)",
        "fla's l2norm_fwd (rstd = 1/√(Σx² + ε)) vs F.normalize (x/max(‖x‖, ε)), which fla's docstring examples "
        "and its precond_gated_delta_rule naive reference use")
