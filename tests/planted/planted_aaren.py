"""Planted bugs for ``aaren`` (attention as a many-to-one RNN, arXiv 2405.13956): copies of the spec's (m, u, w)
combine, of the Hillis–Steele form and of the Triton kernel's backward, each differing from the correct one in the
lines marked ``# BUG``.  The scan forms of :mod:`rnnconf.impls.aaren` take their combine as an argument, so a
combine mutant runs inside the unchanged form and is also exposed as the target's ``.combine``.

``aaren_bugs(add)`` registers them into the catalogue of :mod:`planted_bugs` (``add(key, base, name, fn, expect,
what, anchor, **over)``).
"""
from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl
from torch.autograd.function import once_differentiable

from rnnconf.impls.aaren import _blelloch, _leaves, _sequential, _shift, with_varlen
from rnnconf.kernels import aaren as K
from rnnconf.kernels.aaren import lin3
from rnnconf.kernels.hgrn import div_, exp_, seq_bounds, upcast
from rnnconf.spec.aaren import combine


# ---- combine mutants (copies of rnnconf.spec.aaren.combine) ----------------------------------------------------
def unguarded_combine(p1, p2):
    """BUG: no identity guard — e^{m₁ − m} is formed as e^{−∞ − (−∞)} = NaN when both sides are the identity."""
    m1, u1, w1 = p1
    m2, u2, w2 = p2
    m = torch.maximum(m1, m2)
    r1, r2 = torch.exp(m1 - m), torch.exp(m2 - m)  # BUG: −∞ − (−∞) when m = −∞
    return m, u1 * r1 + u2 * r2, w1 * r1[..., None] + w2 * r2[..., None]


def w_not_rescaled_combine(p1, p2):
    """BUG: w is summed without the rescale factors (u is rescaled), so o = w/u mixes scales once the max moves."""
    m1, u1, w1 = p1
    m2, u2, w2 = p2
    m = torch.maximum(m1, m2)
    ref = torch.where(torch.isneginf(m), torch.zeros_like(m), m)
    r1, r2 = torch.exp(m1 - ref), torch.exp(m2 - ref)
    return m, u1 * r1 + u2 * r2, w1 + w2  # BUG: w₁e^{m₁−m} + w₂e^{m₂−m}


# ---- Hillis–Steele copy: normalised by the whole sequence's u -------------------------------------------------
def _hs_total_normaliser(q, k, v, scale=None):
    """Copy of rnnconf.impls.aaren._hillis_steele."""
    p = _leaves(q, k, v, scale)
    T = p[0].shape[-1]
    step = 1
    while step < T:
        p = combine(_shift(p, step), p)
        step *= 2
    if not T:
        return v.new_zeros(v.shape)
    m, u, w = p
    # BUG: every o_t rescaled to the final max and divided by the final u_T (the whole sequence's normaliser)
    o = w * torch.exp(m - m[..., -1:])[..., None] / u[..., -1:, None]
    return o.transpose(1, 2).to(v.dtype)


# ---- Triton backward without the −Δ term -----------------------------------------------------------------------
@triton.jit(do_not_specialize=["T"])
def _planted_bwd_kernel(v, obuf, sbuf, mbuf, ubuf, do, dv, dsp, cu, T, H, V, NTH, BT: tl.constexpr,
                        BV: tl.constexpr, IS_VARLEN: tl.constexpr, F64: tl.constexpr):
    """Copy of rnnconf.kernels.aaren._aaren_bwd_kernel."""
    i_v, i_h, i_n = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    bos, L = seq_bounds(cu, i_n, T, IS_VARLEN)
    r = tl.arange(0, BT)
    mr = r < L
    e = i_v * BV + tl.arange(0, BV)
    me = e < V
    so = (bos + L - 1 - r) * H + i_h
    s = upcast(tl.load(sbuf + so, mask=mr, other=0.0), F64)
    m = upcast(tl.load(mbuf + so, mask=mr, other=0.0), F64)
    u = upcast(tl.load(ubuf + so, mask=mr, other=1.0), F64)
    has_next = mr & (r >= 1)
    m_next = upcast(tl.load(mbuf + so + H, mask=has_next, other=0.0), F64)
    a = tl.where(has_next, exp_(tl.where(has_next, m - m_next, 0.0)), 1.0)
    m2 = mr[:, None] & me[None, :]
    off = so[:, None] * V + e[None, :]
    dov = upcast(tl.load(do + off, mask=m2, other=0.0), F64)
    ov = upcast(tl.load(obuf + off, mask=m2, other=0.0), F64)
    vv = upcast(tl.load(v + off, mask=m2, other=0.0), F64)
    x = div_(dov, tl.broadcast_to(u[:, None], (BT, BV)), F64)
    y = div_(dov * ov, tl.broadcast_to(u[:, None], (BT, BV)), F64)
    _, Hs, Fs = tl.associative_scan((tl.broadcast_to(a[:, None], (BT, BV)), x, y), 0, lin3)
    p = tl.where(mr, exp_(tl.where(mr, s - m, 0.0)), 0.0)
    tl.store(dv + off, p[:, None] * Hs, mask=m2)
    part = p * tl.sum(tl.where(m2, vv * Hs, 0.0), 1)  # BUG: the softmax Jacobian's −Δ term (− F) is dropped
    tl.store(dsp + i_v * NTH + so, part, mask=mr)


class _NoDeltaFunction(torch.autograd.Function):
    forward = staticmethod(K._AarenFunction.forward)

    @staticmethod
    @once_differentiable
    def backward(ctx, do):
        """Copy of rnnconf.kernels.aaren._AarenFunction.backward with the mutant kernel."""
        q, k, v, cu, obuf, sc, sbuf, mbuf, ubuf = ctx.saved_tensors
        N, maxlen, f64 = ctx.meta
        B, T, H, Kd = k.shape
        V = v.shape[-1]
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        if do is None or not (N and H):
            return dq.zero_(), dk.zero_(), dv.zero_(), None, None, None, None
        do = do.contiguous()
        BT, BK, BV, nw = K._blocks(maxlen, Kd, V)
        NV = triton.cdiv(V, BV)
        NTH = B * T * H
        dsp = torch.empty(NV, NTH, dtype=obuf.dtype, device=v.device)
        _planted_bwd_kernel[(NV, H, N)](v, obuf, sbuf, mbuf, ubuf, do, dv, dsp, cu, T, H, V, NTH, BT=BT, BV=BV,
                                        IS_VARLEN=cu is not None, F64=f64, num_warps=nw)
        K._aaren_dqk_kernel[(H, q.shape[0])](q, k, dsp, dq, dk, sc, cu, T, H, Kd, NV, NTH, N // q.shape[0], BT=BT,
                                             BK=BK, IS_VARLEN=cu is not None, F64=f64, num_warps=nw)
        return dq, dk, dv, None, None, None, None


def _triton_no_delta(q, k, v, scale=None, cu_seqlens=None):
    """Copy of rnnconf.kernels.aaren.triton_scan, with the mutant backward."""
    return _NoDeltaFunction.apply(*K.prepare(q, k, v, scale, cu_seqlens))


def aaren_bugs(add) -> None:
    add("aaren-no-identity-guard", "aaren/scan-blelloch", "planted-no-identity-guard",
        with_varlen(functools.partial(_blelloch, comb=unguarded_combine)), {"aaren-combine"},
        "combine without the identity guard: identity ∘ identity = (−∞, NaN, NaN) (exposed as .combine)",
        "models-1.md §5 (guard e^{−∞−(−∞)}); anchors #5 fla #77/#99 (inf/NaN through masked exp)",
        combine=unguarded_combine)
    add("aaren-w-not-rescaled", "aaren/sequential", "planted-w-not-rescaled",
        with_varlen(functools.partial(_sequential, comb=w_not_rescaled_combine)), {"oracle", "aaren-combine"},
        "combine rescales u but not w when the running max moves (exposed as .combine)",
        "brief: combine that forgets to rescale w; cf. FoX's online-softmax rescale skipped across tiles",
        combine=w_not_rescaled_combine)
    add("aaren-total-normaliser", "aaren/scan-hillis-steele", "planted-total-normaliser",
        with_varlen(_hs_total_normaliser), {"oracle", "causality-perturb", "causality-nan"},
        "every o_t normalised by the whole sequence's (m_T, u_T) instead of its prefix's: the future leaks in",
        "brief class 4 (future leak): a non-causal softmax normaliser")
    add("aaren-triton-no-delta", "aaren/triton-scan", "planted-triton-no-delta", _triton_no_delta, {"gradients"},
        "Triton backward: ds_j = P·(dP) without the −Δ_t = −do_t·o_t term of the softmax Jacobian",
        "softmax backward dS = P ∘ (dP − Δ); cf. anchors #7 fla #1142 (dropped gradient term)")
