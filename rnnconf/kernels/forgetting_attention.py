"""Triton kernels for ``forgetting-attention`` (FoX) and ``forgetting-attention-acp`` — flash-style, forward and
backward.

Forward: one program per (query block of BM rows, batch·head).  Key blocks of BN = BM columns are visited left to
right with FlashAttention's online softmax (running max m, denominator ℓ, accumulator rescaled by exp(m_old − m_new));
scores z_ij = s·q_iᵀk_j + c_i − c_j with c = cumsum(g) formed once on the host in float32 (float64 for float64
inputs) — error-model traits ``cumsum="full"``.  ``tl.dot`` runs with ``input_precision="ieee"`` (no TF32: traits
``matmul="ieee"``), products of half inputs exact, accumulation in float32.  Blocks left of the diagonal use
``tl.dot(p, v)``; the diagonal block sums p_ij·v_j only over causal j (a 3-D select), so a NaN/Inf in a later v_j
never meets a zero weight (0·NaN = NaN).  The program stores o and the row's log-sum-exp m + ln ℓ for the backward.

ACP (arXiv 2504.06949): with ``USE_ACP`` the program first counts the leading key blocks whose top-right decay bias
c_{i₀} − c_{j_last} is below δ_bh = −(2U + ln N) + ln ε (U = s·max‖q‖·max‖k‖, computed on the host in float32) and
starts its loop after them; it stores that count, from which the pruning mask is reported.  Blocks touching the
diagonal are never pruned.

Backward (dS_ij = P_ij(dP_ij − Δ_i), Δ_i = do_i·o_i, P_ij = exp(z_ij − lse_i)):  a key-block program accumulates
dv_j = Σ_i P_ij do_i, dk_j = s Σ_i dS_ij q_i and the column sums of dS;  a query-block program accumulates
dq_i = s Σ_j dS_ij k_j and the row sums;  dc = rowsum − colsum and dg_l = Σ_{i≥l} dc_i (reverse cumsum, host).
Unpruned only (the ACP target declares no gradient).
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from ..impls._common import varlen_stateless
from ..spec.errors import Traits
from ..spec.softmax import default_scale
from ..spec.targets import STATELESS, Target, register_form
from .hgrn import exp_

BLOCK = 16  # BM = BN: one diagonal block per query block; tl.dot needs ≥ 16


@triton.jit
def _fox_fwd(q, k, v, c, o, lse, delta, start, scale, T, H, K, V,
             BM: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, USE_ACP: tl.constexpr):
    i_q, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    i0 = i_q * BM
    rows = i0 + tl.arange(0, BM)
    rk, rv = tl.arange(0, BK), tl.arange(0, BV)
    mr = rows < T
    qo = q + (i_b * T * H + i_h) * K
    ko = k + (i_b * T * H + i_h) * K
    vo = v + (i_b * T * H + i_h) * V
    co = c + i_b * T * H + i_h
    bq = tl.load(qo + rows[:, None] * H * K + rk[None, :], mask=mr[:, None] & (rk[None, :] < K), other=0.0)
    ci = tl.load(co + rows * H, mask=mr, other=0.0)
    m = tl.full([BM], float("-inf"), tl.float32 if c.dtype.element_ty != tl.float64 else tl.float64)
    ell = tl.zeros([BM], m.dtype)
    acc = tl.zeros([BM, BV], m.dtype)
    kb0 = 0
    if USE_ACP:
        d = tl.load(delta + i_bh)
        c_top = tl.load(co + i0 * H)
        for kb in range(0, i_q):  # blocks strictly left of the diagonal; count the leading pruned ones
            c_last = tl.load(co + ((kb + 1) * BM - 1) * H)
            if (c_top - c_last < d) & (kb0 == kb):
                kb0 = kb + 1
        tl.store(start + i_bh * tl.num_programs(0) + i_q, kb0)
    for kb in range(kb0, i_q + 1):
        cols = kb * BM + tl.arange(0, BM)
        mc = cols < T
        bk = tl.load(ko + cols[:, None] * H * K + rk[None, :], mask=mc[:, None] & (rk[None, :] < K), other=0.0)
        bv = tl.load(vo + cols[:, None] * H * V + rv[None, :], mask=mc[:, None] & (rv[None, :] < V), other=0.0)
        cj = tl.load(co + cols * H, mask=mc, other=0.0)
        s = tl.dot(bq, tl.trans(bk), input_precision="ieee", out_dtype=m.dtype) * scale
        z = s + ci[:, None] - cj[None, :]
        causal = (rows[:, None] >= cols[None, :]) & mc[None, :] & mr[:, None]
        z = tl.where(causal, z, float("-inf"))
        m_new = tl.maximum(m, tl.max(z, 1))
        safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = exp_(z - safe[:, None])
        alpha = exp_(m - safe)
        ell = alpha * ell + tl.sum(p, 1)
        if kb < i_q:
            acc = acc * alpha[:, None] + tl.dot(p.to(bv.dtype), bv, input_precision="ieee", out_dtype=m.dtype)
        else:  # the diagonal block: sum over causal j only, never 0·(a later v_j)
            prod = p[:, :, None] * bv.to(m.dtype)[None, :, :]
            acc = acc * alpha[:, None] + tl.sum(tl.where(causal[:, :, None], prod, 0.0), 1)
        m = m_new
    ell = tl.where(mr, ell, 1.0)  # padding rows: never stored, but keep them finite
    out = acc / ell[:, None]
    oo = o + (i_b * T * H + i_h) * V
    tl.store(oo + rows[:, None] * H * V + rv[None, :], out.to(o.dtype.element_ty), mask=mr[:, None] & (rv[None, :] < V))
    tl.store(lse + i_bh * T + rows, m + tl.log(ell), mask=mr)


@triton.jit
def _fox_bwd_kv(q, k, v, c, do, lse, dlt, dk, dv, dcol, scale, T, H, K, V,
                BM: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr):
    i_k, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    cols = i_k * BM + tl.arange(0, BM)
    rk, rv = tl.arange(0, BK), tl.arange(0, BV)
    mc = cols < T
    base = i_b * T * H + i_h
    bk = tl.load(k + base * K + cols[:, None] * H * K + rk[None, :], mask=mc[:, None] & (rk[None, :] < K), other=0.0)
    bv = tl.load(v + base * V + cols[:, None] * H * V + rv[None, :], mask=mc[:, None] & (rv[None, :] < V), other=0.0)
    cj = tl.load(c + base + cols * H, mask=mc, other=0.0)
    acc_dk = tl.zeros([BM, BK], cj.dtype)
    acc_dv = tl.zeros([BM, BV], cj.dtype)
    colsum = tl.zeros([BM], cj.dtype)
    for qb in range(i_k, tl.cdiv(T, BM)):
        rows = qb * BM + tl.arange(0, BM)
        mr = rows < T
        bq = tl.load(q + base * K + rows[:, None] * H * K + rk[None, :], mask=mr[:, None] & (rk[None, :] < K),
                     other=0.0)
        bdo = tl.load(do + base * V + rows[:, None] * H * V + rv[None, :], mask=mr[:, None] & (rv[None, :] < V),
                      other=0.0)
        ci = tl.load(c + base + rows * H, mask=mr, other=0.0)
        li = tl.load(lse + i_bh * T + rows, mask=mr, other=0.0)
        di = tl.load(dlt + i_bh * T + rows, mask=mr, other=0.0)
        z = tl.dot(bq, tl.trans(bk), input_precision="ieee", out_dtype=cj.dtype) * scale + ci[:, None] - cj[None, :]
        causal = (rows[:, None] >= cols[None, :]) & mc[None, :] & mr[:, None]
        p = tl.where(causal, exp_(z - li[:, None]), 0.0)
        dp = tl.dot(bdo.to(cj.dtype), tl.trans(bv.to(cj.dtype)), input_precision="ieee", out_dtype=cj.dtype)
        ds = tl.where(causal, p * (dp - di[:, None]), 0.0)
        acc_dv += tl.dot(tl.trans(p), bdo.to(cj.dtype), input_precision="ieee", out_dtype=cj.dtype)
        acc_dk += tl.dot(tl.trans(ds), bq.to(cj.dtype), input_precision="ieee", out_dtype=cj.dtype)
        colsum += tl.sum(ds, 0)
    tl.store(dk + base * K + cols[:, None] * H * K + rk[None, :], (acc_dk * scale).to(dk.dtype.element_ty),
             mask=mc[:, None] & (rk[None, :] < K))
    tl.store(dv + base * V + cols[:, None] * H * V + rv[None, :], acc_dv.to(dv.dtype.element_ty),
             mask=mc[:, None] & (rv[None, :] < V))
    tl.store(dcol + i_bh * T + cols, colsum, mask=mc)


@triton.jit
def _fox_bwd_q(q, k, v, c, do, lse, dlt, dq, drow, scale, T, H, K, V,
               BM: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr):
    i_q, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    rows = i_q * BM + tl.arange(0, BM)
    rk, rv = tl.arange(0, BK), tl.arange(0, BV)
    mr = rows < T
    base = i_b * T * H + i_h
    bq = tl.load(q + base * K + rows[:, None] * H * K + rk[None, :], mask=mr[:, None] & (rk[None, :] < K), other=0.0)
    bdo = tl.load(do + base * V + rows[:, None] * H * V + rv[None, :], mask=mr[:, None] & (rv[None, :] < V),
                  other=0.0)
    ci = tl.load(c + base + rows * H, mask=mr, other=0.0)
    li = tl.load(lse + i_bh * T + rows, mask=mr, other=0.0)
    di = tl.load(dlt + i_bh * T + rows, mask=mr, other=0.0)
    acc = tl.zeros([BM, BK], ci.dtype)
    rowsum = tl.zeros([BM], ci.dtype)
    for kb in range(0, i_q + 1):
        cols = kb * BM + tl.arange(0, BM)
        mc = cols < T
        bk = tl.load(k + base * K + cols[:, None] * H * K + rk[None, :], mask=mc[:, None] & (rk[None, :] < K),
                     other=0.0)
        bv = tl.load(v + base * V + cols[:, None] * H * V + rv[None, :], mask=mc[:, None] & (rv[None, :] < V),
                     other=0.0)
        cj = tl.load(c + base + cols * H, mask=mc, other=0.0)
        z = tl.dot(bq, tl.trans(bk), input_precision="ieee", out_dtype=ci.dtype) * scale + ci[:, None] - cj[None, :]
        causal = (rows[:, None] >= cols[None, :]) & mc[None, :] & mr[:, None]
        p = tl.where(causal, exp_(z - li[:, None]), 0.0)
        dp = tl.dot(bdo.to(ci.dtype), tl.trans(bv.to(ci.dtype)), input_precision="ieee", out_dtype=ci.dtype)
        ds = tl.where(causal, p * (dp - di[:, None]), 0.0)
        acc += tl.dot(ds, bk.to(ci.dtype), input_precision="ieee", out_dtype=ci.dtype)
        rowsum += tl.sum(ds, 1)
    tl.store(dq + base * K + rows[:, None] * H * K + rk[None, :], (acc * scale).to(dq.dtype.element_ty),
             mask=mr[:, None] & (rk[None, :] < K))
    tl.store(drow + i_bh * T + rows, rowsum, mask=mr)


def _acc_dtype(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def _pow2(n: int) -> int:
    return max(16, triton.next_power_of_2(max(n, 1)))


def _forward(q, k, v, g, scale, log_eps):
    B, T, H, K = q.shape
    V = v.shape[-1]
    ad = _acc_dtype(q.dtype)
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    c = torch.cumsum(g.to(ad), 1).contiguous()
    o = torch.empty(B, T, H, V, dtype=q.dtype, device=q.device)
    lse = torch.empty(B * H, T, dtype=ad, device=q.device)
    nQ = triton.cdiv(T, BLOCK) if T else 0
    start = torch.zeros(B * H, max(nQ, 1), dtype=torch.int32, device=q.device)
    use_acp = log_eps is not None
    if use_acp:
        from ..impls.forgetting_attention import acp_threshold

        d = acp_threshold(q.transpose(1, 2).to(ad), k.transpose(1, 2).to(ad), scale, T, log_eps)
        delta = d.reshape(B * H).contiguous()
    else:
        delta = lse  # unused
    if T:
        _fox_fwd[(nQ, B * H)](q, k, v, c, o, lse, delta, start, scale, T, H, K, V, BM=BLOCK, BK=_pow2(K),
                              BV=_pow2(V), USE_ACP=use_acp)
    return o, c, lse, start[:, :nQ]


class _FoX(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, g, scale):
        o, c, lse, _ = _forward(q, k, v, g, scale, None)
        ctx.save_for_backward(q, k, v, c, o, lse)
        ctx.scale = scale
        return o

    @staticmethod
    def backward(ctx, do):
        q, k, v, c, o, lse = ctx.saved_tensors
        B, T, H, K = q.shape
        V = v.shape[-1]
        ad = c.dtype
        do = do.contiguous()
        dlt = (do.to(ad) * o.to(ad)).sum(-1).transpose(1, 2).reshape(B * H, T).contiguous()
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        dcol = torch.empty(B * H, T, dtype=ad, device=q.device)
        drow = torch.empty(B * H, T, dtype=ad, device=q.device)
        if T:
            n = triton.cdiv(T, BLOCK)
            meta = dict(BM=BLOCK, BK=_pow2(K), BV=_pow2(V))
            _fox_bwd_kv[(n, B * H)](q, k, v, c, do, lse, dlt, dk, dv, dcol, ctx.scale, T, H, K, V, **meta)
            _fox_bwd_q[(n, B * H)](q, k, v, c, do, lse, dlt, dq, drow, ctx.scale, T, H, K, V, **meta)
        dc = (drow - dcol).view(B, H, T).transpose(1, 2)  # [B, T, H]
        dg = torch.flip(torch.cumsum(torch.flip(dc, [1]), 1), [1])
        return dq, dk, dv, dg.to(q.dtype), None


def fox(q, k, v, g, scale=None, cu_seqlens=None):
    """FoX attention (Triton, flash-style fwd + bwd); fla's signature."""
    s = default_scale(q.shape[-1]) if scale is None else scale
    if cu_seqlens is None:
        return _FoX.apply(q, k, v, g, s)
    return varlen_stateless(_FoX.apply, [q, k, v, g], cu_seqlens, s)


def fox_acp(q, k, v, g, scale=None, log_eps=-10.0, return_pruning=False):
    """FoX attention with ACP tile pruning (forward only); ``return_pruning`` adds the pruned-tile mask."""
    s = default_scale(q.shape[-1]) if scale is None else scale
    le = None if log_eps is None else float(log_eps)
    if le is not None and le == -math.inf:
        le = None  # δ = −∞: nothing is pruned — the unpruned kernel itself
    o, _, _, start = _forward(q, k, v, g, s, le)
    if not return_pruning:
        return o
    B, T, H, _ = q.shape
    nQ = start.shape[1]
    pruned = torch.arange(nQ, device=start.device).view(1, 1, nQ) < start.view(B, H, nQ, 1).cpu() \
        if nQ else torch.zeros(B, H, 0, 0, dtype=torch.bool)
    return o, {"pruned": pruned.reshape(B, H, nQ, nQ), "block_m": BLOCK, "block_n": BLOCK}


_TRAITS = Traits(accumulate="float32", cumsum="full", matmul="ieee")
_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
register_form(Target("forgetting-attention", "triton", fox, kind="triton", traits=_TRAITS, dtypes=_DTYPES,
                     supports=STATELESS, doc="flash-style Triton kernel, 16×16 tiles, fwd + bwd"))
register_form(Target("forgetting-attention-acp", "triton", fox_acp, kind="triton", traits=_TRAITS, dtypes=_DTYPES,
                     supports=frozenset(), extras={"unpruned": "forgetting-attention/triton"},
                     doc="flash-style Triton kernel with ACP tile pruning (forward)"))
