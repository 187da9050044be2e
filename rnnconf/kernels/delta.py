"""Triton fused-recurrent kernels for ``delta-rule``, ``gated-delta-rule`` and ``delta-product`` — forward and
backward.  DeltaProduct runs the same programs over T·n_h sub-steps (row t·n_h + j of k, v, beta): the gate at
sub-step j = 0 of each token, q read and o stored after j = n_h − 1; the delta rules are n_h = 1.

fla's signatures: ``fn(q, k, v, beta, scale=None, initial_state=None, output_final_state=False, cu_seqlens=None)``
and, gated, ``fn(q, k, v, g, beta, ...)``; q, k [B, T, H, K], v [B, T, H, V], beta, g [B, T, H], state [N, H, K, V].

Forward: one program per (V block of BV columns, sequence·head).  The K×BV block of the state S lives in registers
(K padded to BK = next_power_of_2(K) ≥ 16, masked) and a loop over t applies

    u_t = k_tᵀ S_{t−1};  S_t = α_t (S_{t−1} − β_t k_t u_tᵀ) + β_t k_t v_tᵀ;  o_t = S_tᵀ (s q_t)

(α_t = exp(g_t), α ≡ 1 ungated) in the sequential form's order.  Every reduction is over K, which one program holds
whole, so the V blocks are independent.  When gradients are needed the forward also stores every S_t in the
accumulation dtype ([B·T, H, K, V]); the backward needs S_{t−1} and S_t, and recomputing them by running the
recurrence backwards would divide by det A_t = α_t(1 − β_t‖k_t‖²), which vanishes at β‖k‖² = 1.

Backward: the reverse-time adjoint D_t = ∂L/∂S_t (D_{T} starts at d S_T, or 0), per step t = L−1 … 0:

    D ← D + (s q_t) do_tᵀ;   z = Dᵀk_t (V);   P = S_{t−1} − β k_t u_tᵀ
    dq_t = s S_t do_t;       dv_t = β z;       dβ_t = z·(v_t − α u_t)
    dk_t = β (D (v_t − α u_t) − α S_{t−1} z);  dg_t = α (⟨D, S_{t−1}⟩ − β z·u_t)  (= ⟨D, α P⟩)
    D ← α (D − β k_t zᵀ)      (= A_tᵀ D, A_t symmetric)

and d S_0 = D after the loop (= d S_T for an empty sequence).  dq, dk, dβ, dg sum over V: each V block stores its
partial sums in the accumulation dtype and the host adds them (V blocks are few; deterministic).  dv is complete per
block.

``use_qk_l2norm_in_kernel`` (constexpr QK_NORM) normalises q and k rows in registers, x̂ = x·r with
r = 1/√(Σx² + ε), in both programs; the backward maps the gradient of x̂ back through it, dx = r(dx̂ − x̂(x̂·dx̂)),
on each V block's partial sums (the map is linear, so the host's sum over blocks commutes with it).

Varlen runs in-kernel: with ``cu_seqlens`` (B = 1) program n reads tokens [cu_n, cu_{n+1}).  Accumulation in float32
(float64 for float64 inputs), exp via libdevice natively (:func:`rnnconf.kernels.hgrn.exp_`); no ``tl.dot``, so no
TF32 question.  Block sizes are fixed functions of (K, V), never autotuned: results are deterministic.
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl
from torch.autograd.function import once_differentiable

from ..spec.delta import QK_L2NORM_EPS
from ..spec.errors import Traits
from ..spec.targets import FEATURES, QK_L2NORM, Target, register_form
from .hgrn import _check_device, exp_, seq_bounds, upcast


@triton.jit(do_not_specialize=["T"])
def _delta_fwd_kernel(q, k, v, beta, g, h0, o, ht, sbuf, cu, sc, T, NH, H, K, V,
                      BK: tl.constexpr, BV: tl.constexpr, GATED: tl.constexpr, USE_H0: tl.constexpr,
                      STORE_HT: tl.constexpr, STORE_S: tl.constexpr, IS_VARLEN: tl.constexpr, F64: tl.constexpr,
                      QK_NORM: tl.constexpr, EPS: tl.constexpr):
    i_v, i_nh = tl.program_id(0), tl.program_id(1)
    i_n, i_h = i_nh // H, i_nh % H
    bos, L = seq_bounds(cu, i_n, T, IS_VARLEN)
    rk = tl.arange(0, BK)
    rv = i_v * BV + tl.arange(0, BV)
    mk, mv = rk < K, rv < V
    m2 = mk[:, None] & mv[None, :]
    scale = upcast(tl.load(sc), F64)
    hoff = (i_nh.to(tl.int64) * K + rk[:, None]) * V + rv[None, :]
    soff = rk[:, None] * V + rv[None, :]
    S = upcast(tl.zeros([BK, BV], dtype=tl.float32), F64)
    if USE_H0:
        S += upcast(tl.load(h0 + hoff, mask=m2, other=0.0), F64)
    for s in range(0, L * NH):  # sub-step j = s % NH of token t = s // NH
        t = s // NH
        j = s - t * NH
        r = (bos * NH + s) * H + i_h  # sub-step row: k, v, beta, stored states
        rt = (bos + t) * H + i_h  # token row: q, g, o
        first_k = (rk * 0 + j) == 0  # vector conditions (a python bool mask breaks the interpreter)
        last_k = (rk * 0 + j) == NH - 1
        last_v = (rv * 0 + j) == NH - 1
        kt = upcast(tl.load(k + r * K + rk, mask=mk, other=0.0), F64)
        qt = upcast(tl.load(q + rt * K + rk, mask=mk & last_k, other=0.0), F64)
        if QK_NORM:
            kt = kt / tl.sqrt(tl.sum(kt * kt, 0) + EPS)
            qt = qt / tl.sqrt(tl.sum(qt * qt, 0) + EPS)
        qt = qt * scale
        vt = upcast(tl.load(v + r * V + rv, mask=mv, other=0.0), F64)
        bt = upcast(tl.load(beta + r), F64)
        u = tl.sum(kt[:, None] * S, 0)
        S = S - bt * kt[:, None] * u[None, :]
        if GATED:  # the gate multiplies the state once per token, at its first sub-step
            S = tl.where(first_k, exp_(upcast(tl.load(g + rt), F64)), 1.0)[:, None] * S
        S = S + bt * kt[:, None] * vt[None, :]
        tl.store(o + rt * V + rv, tl.sum(qt[:, None] * S, 0), mask=mv & last_v)
        if STORE_S:
            tl.store(sbuf + r * K * V + soff, S, mask=m2)
    if STORE_HT:
        tl.store(ht + hoff, S, mask=m2)


@triton.jit(do_not_specialize=["T", "TT"])
def _delta_bwd_kernel(q, k, v, beta, g, h0, sbuf, do, dht, dq, dk, dv, dbeta, dg, dh0, cu, sc, T, TT, NH, H, K, V,
                      BK: tl.constexpr, BV: tl.constexpr, GATED: tl.constexpr, USE_H0: tl.constexpr,
                      USE_DHT: tl.constexpr, IS_VARLEN: tl.constexpr, F64: tl.constexpr, QK_NORM: tl.constexpr,
                      EPS: tl.constexpr):
    i_v, i_nh = tl.program_id(0), tl.program_id(1)
    i_n, i_h = i_nh // H, i_nh % H
    bos, L = seq_bounds(cu, i_n, T, IS_VARLEN)
    rk = tl.arange(0, BK)
    rv = i_v * BV + tl.arange(0, BV)
    mk, mv = rk < K, rv < V
    m2 = mk[:, None] & mv[None, :]
    scale = upcast(tl.load(sc), F64)
    hoff = (i_nh.to(tl.int64) * K + rk[:, None]) * V + rv[None, :]
    soff = rk[:, None] * V + rv[None, :]
    D = upcast(tl.zeros([BK, BV], dtype=tl.float32), F64)
    if USE_DHT:
        D += upcast(tl.load(dht + hoff, mask=m2, other=0.0), F64)
    S0 = upcast(tl.zeros([BK, BV], dtype=tl.float32), F64)
    if USE_H0:
        S0 += upcast(tl.load(h0 + hoff, mask=m2, other=0.0), F64)
    pbase = i_v.to(tl.int64) * TT * H  # this V block's slice of the partial-sum buffers (TT sub-step rows)
    for i in range(0, L * NH):
        s = L * NH - 1 - i
        t = s // NH
        j = s - t * NH
        r = (bos * NH + s) * H + i_h  # sub-step row
        rt = (bos + t) * H + i_h  # token row (q, do, g)
        first_k = (rk * 0 + j) == 0
        last_k = (rk * 0 + j) == NH - 1
        last_v = (rv * 0 + j) == NH - 1
        kt = upcast(tl.load(k + r * K + rk, mask=mk, other=0.0), F64)
        qt = upcast(tl.load(q + rt * K + rk, mask=mk & last_k, other=0.0), F64)  # read after the last only
        rk_n = tl.sum(kt * 0.0, 0) + 1.0  # r = 1/√(Σx² + ε) of the rows (1 without QK_NORM)
        rq_n = rk_n
        if QK_NORM:
            rk_n = 1.0 / tl.sqrt(tl.sum(kt * kt, 0) + EPS)
            rq_n = 1.0 / tl.sqrt(tl.sum(qt * qt, 0) + EPS)
            kt = kt * rk_n
            qt = qt * rq_n
        qh = qt  # q̂
        qt = qt * scale
        vt = upcast(tl.load(v + r * V + rv, mask=mv, other=0.0), F64)
        dot = upcast(tl.load(do + rt * V + rv, mask=mv & last_v, other=0.0), F64)
        bt = upcast(tl.load(beta + r), F64)
        if GATED:  # α at the token's first sub-step, 1 at the others (dg is kept from first sub-steps only)
            a = tl.sum(tl.where(first_k & (rk == 0), exp_(upcast(tl.load(g + rt), F64)), 0.0), 0) \
                + tl.sum(tl.where((~first_k) & (rk == 0), 1.0, 0.0), 0)
        else:
            a = bt * 0.0 + 1.0
        St = upcast(tl.load(sbuf + r * K * V + soff, mask=m2, other=0.0), F64)
        has_prev = (rk[:, None] * 0 + s) > 0  # a tensor condition (a python bool mask breaks the interpreter)
        Sp = upcast(tl.load(sbuf + (r - H) * K * V + soff, mask=m2 & has_prev, other=0.0), F64)
        Sp = tl.where(has_prev, Sp, S0)  # S_{t−1}: S_0 at t = 0
        D = D + qt[:, None] * dot[None, :]
        u = tl.sum(kt[:, None] * Sp, 0)
        z = tl.sum(kt[:, None] * D, 0)
        w = vt - a * u
        tl.store(dv + r * V + rv, bt * z, mask=mv)
        dqt = tl.sum(St * dot[None, :], 1) * scale  # ∂L/∂q̂ (this block's part)
        dkt = bt * (tl.sum(D * w[None, :], 1) - a * tl.sum(Sp * z[None, :], 1))  # ∂L/∂k̂
        if QK_NORM:  # through x̂ = x·r: dx = r(dx̂ − x̂(x̂·dx̂))
            dqt = rq_n * (dqt - qh * tl.sum(qh * dqt, 0))
            dkt = rk_n * (dkt - kt * tl.sum(kt * dkt, 0))
        tl.store(dq + (pbase + r) * K + rk, dqt, mask=mk)
        tl.store(dk + (pbase + r) * K + rk, dkt, mask=mk)
        tl.store(dbeta + pbase + r, tl.sum(z * w, 0))
        if GATED:
            tl.store(dg + pbase + r, a * (tl.sum(tl.sum(D * Sp, 1), 0) - bt * tl.sum(z * u, 0)))
        D = a * (D - bt * kt[:, None] * z[None, :])
    if USE_H0:
        tl.store(dh0 + hoff, D, mask=m2)


def _pow2(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def blocks(K: int, V: int) -> tuple[int, int, int]:
    """(BK, BV, num_warps): K whole (padded to a power of two ≥ 16), V in blocks of ≤ 32 columns with BK·BV ≤ 8192."""
    BK = max(16, _pow2(K))
    BV = max(1, min(_pow2(V), 32, max(1, 8192 // BK)))
    return BK, BV, 4 if BK * BV >= 2048 else (2 if BK * BV >= 512 else 1)


class _DeltaFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, cu, N, NH, scale, output_final_state, bv, norm, q, k, v, beta, g, h0):
        ctx.set_materialize_grads(False)
        B, T, H, K = q.shape
        V = v.shape[-1]
        dev = q.device
        f64 = any(x is not None and x.dtype == torch.float64 for x in (q, k, v, beta, g, h0))
        acc = torch.float64 if f64 else torch.float32
        need_grad = any(ctx.needs_input_grad[7:])
        sc = torch.full((1,), scale, dtype=acc, device=dev)
        o = torch.empty(B, T, H, V, dtype=q.dtype, device=dev)
        ht = torch.empty(N, H, K, V, dtype=q.dtype, device=dev) if output_final_state else None
        sbuf = torch.empty(B * T * NH, H, K, V, dtype=acc, device=dev) if need_grad else None
        BK, BV, nw = blocks(K, V)
        BV = bv or BV
        if N * H and V:
            _delta_fwd_kernel[(triton.cdiv(V, BV), N * H)](
                q, k, v, beta, g if g is not None else beta, h0, o, ht, sbuf, cu, sc, T, NH, H, K, V,
                BK=BK, BV=BV, GATED=g is not None, USE_H0=h0 is not None, STORE_HT=ht is not None,
                STORE_S=need_grad, IS_VARLEN=cu is not None, F64=f64, QK_NORM=norm, EPS=QK_L2NORM_EPS,
                num_warps=nw)
        ctx.meta = (N, NH, BK, BV, nw, f64, g is not None, h0 is not None, norm)
        ctx.save_for_backward(cu, sc, sbuf, q, k, v, beta, g, h0)
        return o, ht

    @staticmethod
    @once_differentiable
    def backward(ctx, do, dht):
        cu, sc, sbuf, q, k, v, beta, g, h0 = ctx.saved_tensors
        N, NH, BK, BV, nw, f64, gated, has_h0, norm = ctx.meta
        B, T, H, K = q.shape
        V = v.shape[-1]
        TT = B * T * NH  # sub-step rows
        acc = torch.float64 if f64 else torch.float32
        dev = q.device
        NV = triton.cdiv(V, BV) if V else 0
        do = do.contiguous() if do is not None else torch.zeros(B, T, H, V, dtype=q.dtype, device=dev)
        dht = dht.contiguous() if dht is not None else None
        dq = torch.zeros(NV, TT, H, K, dtype=acc, device=dev)  # per sub-step row; the last of each token is kept
        dk = torch.zeros(NV, TT, H, K, dtype=acc, device=dev)
        dv = torch.zeros(TT, H, V, dtype=acc, device=dev)
        dbeta = torch.zeros(NV, TT, H, dtype=acc, device=dev)
        dg = torch.zeros(NV, TT, H, dtype=acc, device=dev) if gated else None  # the first of each token is kept
        dh0 = torch.empty(N, H, K, V, dtype=acc, device=dev) if has_h0 else None
        if N * H and V:
            _delta_bwd_kernel[(NV, N * H)](
                q, k, v, beta, g if gated else beta, h0, sbuf, do, dht, dq, dk, dv, dbeta,
                dg if gated else dbeta, dh0, cu, sc, T, TT, NH, H, K, V,
                BK=BK, BV=BV, GATED=gated, USE_H0=has_h0, USE_DHT=dht is not None, IS_VARLEN=cu is not None,
                F64=f64, QK_NORM=norm, EPS=QK_L2NORM_EPS, num_warps=nw)

        def fold(x, like, j=None):
            x = x.sum(0)
            if j is not None:  # token rows: sub-step j of each token
                x = x.view(B * T, NH, *x.shape[1:])[:, j]
            return x.reshape(like.shape).to(like.dtype)

        gq = fold(dq, q, NH - 1)
        gk = fold(dk, k)
        gv = dv.view(v.shape).to(v.dtype)
        gb = fold(dbeta, beta)
        gg = fold(dg, g, 0) if gated else None
        gh0 = dh0.to(h0.dtype) if has_h0 else None
        return None, None, None, None, None, None, None, gq, gk, gv, gb, gg, gh0


def fused_recurrent_delta(q, k, v, beta, g=None, scale=None, initial_state=None, output_final_state=False,
                          cu_seqlens=None, _bv=None, num_householder: int = 1, use_qk_l2norm_in_kernel=False):
    """Delta rule (gated when ``g`` is given) with fla's conventions; returns (o, final_state or None).
    ``num_householder`` = n_h > 1: DeltaProduct, k, v, beta with n_h interleaved sub-steps per token;
    ``use_qk_l2norm_in_kernel``: q and k rows normalised in the kernel.

    ``_bv`` overrides the V block width (tests use it to exercise several V blocks on small V)."""
    NH = int(num_householder)
    B_, T_ = q.shape[:2]
    sub_ = (B_, T_ * NH, *q.shape[2:3])
    if q.dim() != 4 or NH < 1 or tuple(k.shape) != (*sub_, q.shape[3]) or tuple(v.shape[:3]) != sub_ \
            or tuple(beta.shape) != sub_ or (g is not None and g.shape != q.shape[:3]):
        raise ValueError(f"delta: shapes q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}, "
                         f"beta {tuple(beta.shape)}" + ("" if g is None else f", g {tuple(g.shape)}") +
                         f" do not match q [B, T, H, K], k [B, T·n_h, H, K], v [B, T·n_h, H, V], beta [B, T·n_h, H]"
                         f", g [B, T, H] (n_h = {NH})")
    _check_device(q)
    B, T, H, K = q.shape
    V = v.shape[-1]
    s = 1.0 / math.sqrt(K) if scale is None else float(scale)
    cu = None
    if cu_seqlens is not None:
        if B != 1:
            raise ValueError(f"delta: varlen (cu_seqlens) needs batch size 1, got {B}")
        cu = cu_seqlens.to(device=q.device).contiguous()
        if cu.dtype not in (torch.int32, torch.int64):
            cu = cu.long()
        N = cu.numel() - 1
        if N < 0 or int(cu[0]) != 0 or int(cu[-1]) != T or bool((cu[1:] < cu[:-1]).any()):
            raise ValueError(f"delta: cu_seqlens must rise from 0 to T={T}, got {cu.tolist()}")
    else:
        N = B
    h0 = None
    if initial_state is not None:
        h0 = initial_state.to(device=q.device).contiguous()
        if tuple(h0.shape) != (N, H, K, V):
            raise ValueError(f"delta: initial_state must be [{N}, {H}, {K}, {V}], got {tuple(h0.shape)}")
    q, k, v, beta = (x.contiguous() for x in (q, k, v, beta))
    g = g.contiguous() if g is not None else None
    return _DeltaFunction.apply(cu, N, NH, s, bool(output_final_state), _bv, bool(use_qk_l2norm_in_kernel), q, k, v,
                                beta, g, h0)


def delta_rule(q, k, v, beta, scale=None, initial_state=None, output_final_state=False, cu_seqlens=None,
               use_qk_l2norm_in_kernel=False):
    """DeltaNet, fused recurrent Triton kernel (forward and backward)."""
    return fused_recurrent_delta(q, k, v, beta, None, scale, initial_state, output_final_state, cu_seqlens,
                                 use_qk_l2norm_in_kernel=use_qk_l2norm_in_kernel)


def gated_delta_rule(q, k, v, g, beta, scale=None, initial_state=None, output_final_state=False, cu_seqlens=None,
                     use_qk_l2norm_in_kernel=False):
    """Gated DeltaNet, fused recurrent Triton kernel (forward and backward); fla's order: g before beta."""
    return fused_recurrent_delta(q, k, v, beta, g, scale, initial_state, output_final_state, cu_seqlens,
                                 use_qk_l2norm_in_kernel=use_qk_l2norm_in_kernel)


def delta_product(q, k, v, g, beta, num_householder, scale=None, initial_state=None, output_final_state=False,
                  cu_seqlens=None, use_qk_l2norm_in_kernel=False):
    """Gated DeltaProduct, fused recurrent Triton kernel (forward and backward): the same programs looping over
    T·n_h sub-steps, the gate applied at each token's first, the query read (and o stored) after its last."""
    return fused_recurrent_delta(q, k, v, beta, g, scale, initial_state, output_final_state, cu_seqlens,
                                 num_householder=num_householder, use_qk_l2norm_in_kernel=use_qk_l2norm_in_kernel)


_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_TRAITS = Traits(accumulate="float32", cumsum="none")

for _sid, _fn in (("delta-rule", delta_rule), ("gated-delta-rule", gated_delta_rule), ("delta-product", delta_product)):
    register_form(Target(_sid, "triton-fused", _fn, kind="triton", traits=_TRAITS, dtypes=_DTYPES,
                         supports=frozenset(FEATURES) | {QK_L2NORM}, deterministic=True,
                         doc="Triton: one program per (V block, sequence·head), K×BV state in registers, loop over "
                             "t; fp32 accumulation; backward = reverse-time adjoint over stored per-step states"))
