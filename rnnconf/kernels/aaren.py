"""Triton kernel for ``aaren`` (attention as a many-to-one RNN, arXiv 2405.13956): ``aaren/triton-scan``,
``fn(q, k, v, scale=None, cu_seqlens=None) -> o`` with q [B, H, K], k [B, T, H, K], v [B, T, H, V].

Forward (:func:`_aaren_fwd_kernel`): one program per (value block, head, sequence) holds the whole sequence as a
[BT, BV] tile, BT = next_power_of_2(T).  Scores s_t = scale·Σ_c q_c k_tc are elementwise products summed over K
(no ``tl.dot``, so no tf32); ``tl.associative_scan`` runs over the (m, u, w) tuple with the spec's combine
(:func:`combine`), m and u broadcast over the value block.  Padding rows t ≥ L are the identity (−∞, 0, 0) and the
combine's guard never forms −∞ − (−∞), so padding never makes a NaN (and is never stored).  o = w/u.  When
gradients are needed the forward keeps s_t, m_t, u_t (from value block 0) and o in the accumulation dtype.

Backward, all in Triton: with P_tj = e^{s_j − m_t}/u_t, x_t = do_t/u_t and y_t = do_t ∘ o_t/u_t (per channel),

    H_j = Σ_{t≥j} e^{m_j−m_t} x_t,   F_j = Σ_{t≥j} e^{m_j−m_t} y_t      (H_j = x_j + e^{m_j−m_{j+1}} H_{j+1})
    dv_j = e^{s_j−m_j} H_j,    ds_j = e^{s_j−m_j} Σ_c (v_jc H_jc − F_jc)  ( = Σ_t P_tj (do_t·v_j − do_t·o_t) ),
    dk_j = scale·ds_j q,       dq = scale·Σ_j ds_j k_j   (summed over every sequence that reads q).

:func:`_aaren_bwd_kernel` computes H and F by a reversed-time ``tl.associative_scan`` (rows loaded in reverse,
e^{m_j−m_{j+1}} ≤ 1), dv, and each value block's part of ds; :func:`_aaren_dqk_kernel` sums the parts and forms dk
and dq.  Every factor e^{·} has a non-positive argument.

Accumulates in float32 (float64 for float64 inputs); scale travels as a one-element tensor of that dtype (a Python
float argument would be passed to Triton as float32).  Block sizes are fixed functions of (T, K, V): deterministic.
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl
from torch.autograd.function import once_differentiable

from ..spec.errors import Traits
from ..spec.softmax import default_scale
from ..spec.targets import STATELESS, Target, register_form
from .hgrn import _check_device, _next_pow2, div_, exp_, seq_bounds, upcast


@triton.jit
def combine(m1, u1, w1, m2, u2, w2):
    """(m, u, w) summaries: m = max, each side rescaled by e^{m_side − m}.  Identity guard: a −∞ max is replaced by
    0 before subtracting, so two identities give e^{−∞} = 0, never e^{NaN}; the max side gets e⁰ = 1."""
    m = tl.maximum(m1, m2)
    ref = tl.where(m == float("-inf"), 0.0, m)
    r1 = exp_(m1 - ref)
    r2 = exp_(m2 - ref)
    return m, u1 * r1 + u2 * r2, w1 * r1 + w2 * r2


@triton.jit
def lin3(a1, x1, y1, a2, x2, y2):
    """Two diagonal recurrences sharing the decay: (a₁a₂, a₂x₁ + x₂, a₂y₁ + y₂)."""
    return a1 * a2, a2 * x1 + x2, a2 * y1 + y2


@triton.jit
def _scores(q, k, sc, i_q, i_h, bos, t, mt, H, K, BK: tl.constexpr, F64: tl.constexpr):
    """s_t = scale·Σ_c q_c k_tc on the tile rows ``t`` (valid where ``mt``), K in chunks of BK."""
    s = upcast(tl.zeros(t.shape, dtype=tl.float32), F64)
    for c0 in range(0, K, BK):
        c = c0 + tl.arange(0, BK)
        mc = c < K
        qv = upcast(tl.load(q + (i_q * H + i_h) * K + c, mask=mc, other=0.0), F64)
        kt = upcast(tl.load(k + ((bos + t[:, None]) * H + i_h) * K + c[None, :], mask=mt[:, None] & mc[None, :],
                            other=0.0), F64)
        s += tl.sum(kt * qv[None, :], 1)
    return s * upcast(tl.load(sc), F64)


@triton.jit(do_not_specialize=["T"])
def _aaren_fwd_kernel(q, k, v, o, sbuf, mbuf, ubuf, sc, cu, T, H, K, V, BT: tl.constexpr, BK: tl.constexpr,
                      BV: tl.constexpr, IS_VARLEN: tl.constexpr, STORE_STATS: tl.constexpr, F64: tl.constexpr):
    i_v, i_h, i_n = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    bos, L = seq_bounds(cu, i_n, T, IS_VARLEN)
    if IS_VARLEN:
        i_q = 0  # every packed sequence reads q[0]
    else:
        i_q = i_n.to(tl.int64)
    t = tl.arange(0, BT)
    mt = t < L
    e = i_v * BV + tl.arange(0, BV)
    me = e < V
    s = _scores(q, k, sc, i_q, i_h, bos, t, mt, H, K, BK, F64)
    s = tl.where(mt, s, float("-inf"))  # padding rows: the identity (−∞, 0, 0)
    m2 = mt[:, None] & me[None, :]
    off = ((bos + t[:, None]) * H + i_h) * V + e[None, :]
    w = upcast(tl.load(v + off, mask=m2, other=0.0), F64)
    m0 = tl.broadcast_to(s[:, None], (BT, BV))
    u0 = tl.broadcast_to(tl.where(mt, 1.0, 0.0)[:, None], (BT, BV)).to(w.dtype)
    mm, uu, ww = tl.associative_scan((m0, u0, w), 0, combine)
    uu = tl.where(m2, uu, 1.0)
    tl.store(o + off, div_(ww, uu, F64), mask=m2)
    if STORE_STATS:
        if i_v == 0:
            so = (bos + t) * H + i_h
            tl.store(sbuf + so, s, mask=mt)
            tl.store(mbuf + so, tl.max(mm, 1), mask=mt)  # every column holds the same m and u
            tl.store(ubuf + so, tl.max(uu, 1), mask=mt)


@triton.jit(do_not_specialize=["T"])
def _aaren_bwd_kernel(v, obuf, sbuf, mbuf, ubuf, do, dv, dsp, cu, T, H, V, NTH, BT: tl.constexpr,
                      BV: tl.constexpr, IS_VARLEN: tl.constexpr, F64: tl.constexpr):
    i_v, i_h, i_n = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    bos, L = seq_bounds(cu, i_n, T, IS_VARLEN)
    r = tl.arange(0, BT)  # reversed time: row r holds t = L − 1 − r
    mr = r < L
    e = i_v * BV + tl.arange(0, BV)
    me = e < V
    so = (bos + L - 1 - r) * H + i_h
    s = upcast(tl.load(sbuf + so, mask=mr, other=0.0), F64)
    m = upcast(tl.load(mbuf + so, mask=mr, other=0.0), F64)
    u = upcast(tl.load(ubuf + so, mask=mr, other=1.0), F64)
    has_next = mr & (r >= 1)
    m_next = upcast(tl.load(mbuf + so + H, mask=has_next, other=0.0), F64)
    a = tl.where(has_next, exp_(tl.where(has_next, m - m_next, 0.0)), 1.0)  # e^{m_t − m_{t+1}} ≤ 1
    m2 = mr[:, None] & me[None, :]
    off = so[:, None] * V + e[None, :]
    dov = upcast(tl.load(do + off, mask=m2, other=0.0), F64)
    ov = upcast(tl.load(obuf + off, mask=m2, other=0.0), F64)
    vv = upcast(tl.load(v + off, mask=m2, other=0.0), F64)
    x = div_(dov, tl.broadcast_to(u[:, None], (BT, BV)), F64)
    y = div_(dov * ov, tl.broadcast_to(u[:, None], (BT, BV)), F64)
    _, Hs, Fs = tl.associative_scan((tl.broadcast_to(a[:, None], (BT, BV)), x, y), 0, lin3)
    p = tl.where(mr, exp_(tl.where(mr, s - m, 0.0)), 0.0)  # e^{s_t − m_t} ≤ 1
    tl.store(dv + off, p[:, None] * Hs, mask=m2)
    part = p * tl.sum(tl.where(m2, vv * Hs - Fs, 0.0), 1)
    tl.store(dsp + i_v * NTH + so, part, mask=mr)


@triton.jit(do_not_specialize=["T"])
def _aaren_dqk_kernel(q, k, dsp, dq, dk, sc, cu, T, H, K, NV, NTH, N_PER_Q, BT: tl.constexpr, BK: tl.constexpr,
                      IS_VARLEN: tl.constexpr, F64: tl.constexpr):
    """One program per (head, query row): dk for every sequence reading that query, and dq summed over them."""
    i_h, i_q = tl.program_id(0), tl.program_id(1)
    scale = upcast(tl.load(sc), F64)
    t = tl.arange(0, BT)
    for c0 in range(0, K, BK):
        c = c0 + tl.arange(0, BK)
        mc = c < K
        qv = upcast(tl.load(q + (i_q * H + i_h) * K + c, mask=mc, other=0.0), F64)
        acc = upcast(tl.zeros([BK], dtype=tl.float32), F64)
        for j in range(0, N_PER_Q):
            i_n = i_q * N_PER_Q + j  # dense: the sequence i_q itself; varlen: every packed sequence
            bos, L = seq_bounds(cu, i_n, T, IS_VARLEN)
            mt = t < L
            so = (bos + t) * H + i_h
            ds = upcast(tl.zeros([BT], dtype=tl.float32), F64)
            for iv in range(0, NV):
                ds += upcast(tl.load(dsp + iv * NTH + so, mask=mt, other=0.0), F64)
            m2 = mt[:, None] & mc[None, :]
            koff = so[:, None] * K + c[None, :]
            tl.store(dk + koff, scale * ds[:, None] * qv[None, :], mask=m2)
            kt = upcast(tl.load(k + koff, mask=m2, other=0.0), F64)
            acc += tl.sum(ds[:, None] * kt, 0)
        tl.store(dq + (i_q * H + i_h) * K + c, scale * acc, mask=mc)


@triton.jit
def _combine_apply_kernel(m1, u1, w1, m2, u2, w2, m, u, w, n, V, BN: tl.constexpr, BV: tl.constexpr,
                          F64: tl.constexpr):
    """The kernel's :func:`combine` applied elementwise to n summaries (w: [n, V]), in the accumulation dtype."""
    i = tl.program_id(0) * BN + tl.arange(0, BN)
    e = tl.arange(0, BV)
    mi = i < n
    m2d = mi[:, None] & (e < V)[None, :]
    ow = i[:, None].to(tl.int64) * V + e[None, :]
    a_m = upcast(tl.load(m1 + i, mask=mi, other=0.0), F64)
    b_m = upcast(tl.load(m2 + i, mask=mi, other=0.0), F64)
    a_u = upcast(tl.load(u1 + i, mask=mi, other=0.0), F64)
    b_u = upcast(tl.load(u2 + i, mask=mi, other=0.0), F64)
    a_w = upcast(tl.load(w1 + ow, mask=m2d, other=0.0), F64)
    b_w = upcast(tl.load(w2 + ow, mask=m2d, other=0.0), F64)
    rm, ru, rw = combine(tl.broadcast_to(a_m[:, None], (BN, BV)), tl.broadcast_to(a_u[:, None], (BN, BV)), a_w,
                         tl.broadcast_to(b_m[:, None], (BN, BV)), tl.broadcast_to(b_u[:, None], (BN, BV)), b_w)
    tl.store(w + ow, rw, mask=m2d)
    tl.store(m + i, tl.max(rm, 1), mask=mi)  # the columns of m and u are identical
    tl.store(u + i, tl.max(ru, 1), mask=mi)


def kernel_combine(p1, p2):
    """The Triton kernel's own combine as a torch function on (m, u, w) summaries (m, u [...], w [..., V]): launches
    :func:`_combine_apply_kernel` over the broadcast summaries, computing in float32 (float64 for float64) as the
    scan does and returning the input dtype.  Exposed as ``Target.combine`` so the combine properties judge the very
    operator the scan applies."""
    (m1, u1, w1), (m2, u2, w2) = p1, p2
    shape = torch.broadcast_shapes(m1.shape, u1.shape, m2.shape, u2.shape, w1.shape[:-1], w2.shape[:-1])
    V = max(w1.shape[-1], w2.shape[-1])
    dtype = w1.dtype
    flat = [x.expand(shape).reshape(-1).contiguous() for x in (m1, u1, m2, u2)]
    wf = [x.expand(*shape, V).reshape(-1, V).contiguous() for x in (w1, w2)]
    _check_device(wf[0])
    n = flat[0].numel()
    m, u = torch.empty_like(flat[0]), torch.empty_like(flat[1])
    w = torch.empty_like(wf[0])
    if n and V:
        BV = _next_pow2(V)
        BN = max(1, min(_next_pow2(n), 4096 // BV))
        _combine_apply_kernel[(triton.cdiv(n, BN),)](flat[0], flat[1], wf[0], flat[2], flat[3], wf[1], m, u, w, n,
                                                     V, BN=BN, BV=BV, F64=dtype == torch.float64)
    return m.reshape(shape), u.reshape(shape), w.reshape(*shape, V)


MAX_SCAN_T = 16384  # one tile holds a whole sequence


def _blocks(maxlen: int, K: int, V: int) -> tuple[int, int, int, int]:
    """(BT, BK, BV, num_warps): a tile of BT·B{K,V} ≤ 4096 elements unless BT alone exceeds it."""
    BT = _next_pow2(max(maxlen, 1))
    BK = min(_next_pow2(max(K, 1)), max(1, 4096 // BT))
    BV = min(_next_pow2(max(V, 1)), max(1, 4096 // BT))
    return BT, BK, BV, min(16, max(4, (BT * BV) // 1024))


class _AarenFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, scale, cu, N, maxlen):
        ctx.set_materialize_grads(False)
        B, T, H, K = k.shape
        V = v.shape[-1]
        dtype = v.dtype
        f64 = any(x.dtype == torch.float64 for x in (q, k, v))
        acc = torch.float64 if f64 else torch.float32
        need = any(ctx.needs_input_grad[:3])
        dev = v.device
        sc = torch.tensor([scale], dtype=acc, device=dev)
        obuf = torch.empty(B, T, H, V, dtype=acc if need else dtype, device=dev)
        stats = [torch.empty(B, T, H, dtype=acc, device=dev) for _ in range(3)] if need else [obuf] * 3
        BT, BK, BV, nw = _blocks(maxlen, K, V)
        if N and H and V:
            _aaren_fwd_kernel[(triton.cdiv(V, BV), H, N)](
                q, k, v, obuf, *stats, sc, cu, T, H, K, V, BT=BT, BK=BK, BV=BV, IS_VARLEN=cu is not None,
                STORE_STATS=need, F64=f64, num_warps=nw)
        if need:
            ctx.save_for_backward(q, k, v, cu, obuf, sc, *stats)
            ctx.meta = (N, maxlen, f64)
        return obuf.to(dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, do):
        q, k, v, cu, obuf, sc, sbuf, mbuf, ubuf = ctx.saved_tensors
        N, maxlen, f64 = ctx.meta
        B, T, H, K = k.shape
        V = v.shape[-1]
        acc = obuf.dtype
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        if do is None or not (N and H):
            return dq.zero_(), dk.zero_(), dv.zero_(), None, None, None, None
        do = do.contiguous()
        BT, BK, BV, nw = _blocks(maxlen, K, V)
        NV = triton.cdiv(V, BV)
        NTH = B * T * H
        dsp = torch.empty(NV, NTH, dtype=acc, device=v.device)
        _aaren_bwd_kernel[(NV, H, N)](v, obuf, sbuf, mbuf, ubuf, do, dv, dsp, cu, T, H, V, NTH, BT=BT, BV=BV,
                                      IS_VARLEN=cu is not None, F64=f64, num_warps=nw)
        n_q = q.shape[0]
        _aaren_dqk_kernel[(H, n_q)](q, k, dsp, dq, dk, sc, cu, T, H, K, NV, NTH, N // n_q, BT=BT, BK=BK,
                                    IS_VARLEN=cu is not None, F64=f64, num_warps=nw)
        return dq, dk, dv, None, None, None, None


def prepare(q, k, v, scale=None, cu_seqlens=None) -> tuple:
    """Validate the canonical arguments; returns ``(q, k, v, scale, cu, N, maxlen)`` for :class:`_AarenFunction`."""
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    if q.dim() != 3 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(f"aaren/triton-scan: q [B, H, K], k [B, T, H, K], v [B, T, H, V]; got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}")
    B, T, H, K = k.shape
    if tuple(q.shape) != (B, H, K) or tuple(v.shape[:3]) != (B, T, H):
        raise ValueError(f"aaren/triton-scan: shapes disagree: q {tuple(q.shape)}, k {tuple(k.shape)}, "
                         f"v {tuple(v.shape)}")
    if len({q.dtype, k.dtype, v.dtype}) != 1 or len({q.device, k.device, v.device}) != 1:
        raise ValueError("aaren/triton-scan: q, k, v must share dtype and device")
    _check_device(v)
    cu = None
    if cu_seqlens is not None:
        if B != 1:
            raise ValueError(f"aaren/triton-scan: varlen (cu_seqlens) needs batch size 1, got {B}")
        cu = cu_seqlens.to(device=v.device).contiguous()
        if cu.dtype not in (torch.int32, torch.int64):
            cu = cu.long()
        N = cu.numel() - 1
        if N < 0 or int(cu[0]) != 0 or int(cu[-1]) != T or bool((cu[1:] < cu[:-1]).any()):
            raise ValueError(f"aaren/triton-scan: cu_seqlens must rise from 0 to T={T}, got {cu.tolist()}")
        maxlen = int((cu[1:] - cu[:-1]).max()) if N else 0
    else:
        N, maxlen = B, T
    if maxlen > MAX_SCAN_T:
        raise ValueError(f"aaren/triton-scan: sequences of length {maxlen} exceed the tile limit {MAX_SCAN_T}")
    s = default_scale(K) if scale is None else float(scale)
    if not math.isfinite(s):
        raise ValueError(f"aaren/triton-scan: scale must be finite, got {s}")
    return q, k, v, s, cu, N, maxlen


def triton_scan(q, k, v, scale=None, cu_seqlens=None):
    """Aaren by ``tl.associative_scan`` over (m, u, w); Triton forward and backward (see the module doc)."""
    return _AarenFunction.apply(*prepare(q, k, v, scale, cu_seqlens))


register_form(Target(
    "aaren", "triton-scan", triton_scan, kind="triton", traits=Traits(accumulate="float32", cumsum="none"),
    dtypes=(torch.float64, torch.float32, torch.float16, torch.bfloat16), supports=STATELESS, deterministic=True,
    combine=kernel_combine,
    doc="Triton: tl.associative_scan over (m, u, w) with the identity-guarded combine, whole sequence per tile "
        "(padding = identity); fp32 accumulation; backward in Triton: reversed-time scan of the two adjoint sums "
        "H, F, then dk, dq from the summed score gradients"))
