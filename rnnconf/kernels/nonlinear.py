"""Fused recurrent Triton kernels for the nonlinear cells ``lstm``, ``gru``, ``elman`` and ``slstm`` (math and layout:
:mod:`rnnconf.spec.nonlinear`; FlashRNN's layout, Pöppel et al., arXiv 2412.07752).

One program per (batch element, head) runs the whole time loop: the head's recurrent blocks R[g, head] (G tiles of
BD × BD, D padded to the next power of two) stay resident, the state vectors stay in registers in float32 (float64
for float64 inputs), and each gate's recurrent term R[g]·h is a broadcast product reduced by ``tl.sum`` over the
input index (no ``tl.dot``: the matvec is exact per product, one rounding per add).  Pre-activations are
(Wx + R·h) + b.  Activations: σ from e = exp(−|x|) as 1/(1 + e) or e/(1 + e) (3 roundings relative); tanh(x) =
sign(x)(1 − e)/(1 + e) with e = exp(−2|x|) (a few u absolute); log σ(x) = min(x, 0) − log(1 + e).  Natively exp
and log are libdevice's and float32 division rounds to nearest (as in :mod:`rnnconf.kernels.hgrn`).

sLSTM follows the spec's FlashRNN conventions: the first step is decided *per element* by n_{t−1} = 0; the history
gate f′ = exp(min(log σ(f̃) + m_{t−1} − m_t, log(max float) − 1)) is capped so that a first step with ĩ ≪ 0 gives
f′·0 = 0 rather than inf·0; n_t = n where n ≥ 1, else 1.

Backward (BPTT, a second kernel): the forward saves the state after every step in the compute dtype; the backward
program walks t = T−1 … 0, recomputes the step from the saved state s_{t−1}, and propagates the adjoints of every
state slot.  Derivatives use the accurate forms σ′ = σ(x)σ(−x), tanh′ = 4e/(1 + e)², (log σ)′ = σ(−x); sLSTM's
clamp is differentiated as the identity (the spec's convention: on the reachable set it acts on rounding only), its
max picks the branch the forward took.  dWx is written per step; each program accumulates its own R and b
gradients (outer products of the pre-activation adjoints with h_{t−1}) in registers and stores them per batch
element, summed over the batch in torch (fixed order: deterministic).  The initial state's gradient is the adjoint
left after step 1.

Registered as ``<cell>/triton-fused``.  ``lstm-odyssey`` has no kernel (its torch form is the only one).  Registers:
R and its gradient accumulator take 2·G·BD² values per program, so natively D = 128 spills; the kernel is a
correctness form, not a speed one.
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from ..spec.errors import Traits
from ..spec.targets import Target, register_form
from .hgrn import INTERPRETED, div_, exp_, upcast
from .mingru import sigmoid_pair

CELLS = {"lstm": (0, 4, 2), "gru": (1, 3, 1), "elman": (2, 1, 1), "slstm": (3, 4, 4)}  # id, G, S
LOG_MAX = {torch.float64: math.log(torch.finfo(torch.float64).max),
           torch.float32: math.log(torch.finfo(torch.float32).max)}

if INTERPRETED:
    @triton.jit
    def log_(x):
        """log (the interpreter's: numpy)."""
        return tl.log(x)
else:
    from triton.language.extra import libdevice

    @triton.jit
    def log_(x):
        """log via libdevice (__nv_logf / __nv_log)."""
        return libdevice.log(x)


@triton.jit
def sig(x, F64: tl.constexpr):
    s, _ = sigmoid_pair(x, F64)
    return s


@triton.jit
def tanh_(x, F64: tl.constexpr):
    """tanh(x) = sign(x)(1 − e)/(1 + e), e = exp(−2|x|) ∈ (0, 1]: nothing overflows."""
    e = exp_(-2.0 * tl.abs(x))
    t = div_(1.0 - e, 1.0 + e, F64)
    return tl.where(x >= 0, t, -t)


@triton.jit
def dtanh(x, F64: tl.constexpr):
    """tanh′(x) = 1 − tanh² = 4e/(1 + e)², e = exp(−2|x|): accurate relative where tanh saturates."""
    e = exp_(-2.0 * tl.abs(x))
    q = 1.0 + e
    return div_(4.0 * e, q * q, F64)


@triton.jit
def logsig(x):
    """log σ(x) = min(x, 0) − log(1 + exp(−|x|))."""
    return tl.minimum(x, 0.0) - log_(1.0 + exp_(-tl.abs(x)))


@triton.jit
def mv(Rg, v):
    """(R[g]·v)[out] = Σ_in R[g, out, in] v[in]."""
    return tl.sum(Rg * v[None, :], axis=1)


@triton.jit
def mvT(Rg, v):
    """(R[g]ᵀ·v)[in] = Σ_out R[g, out, in] v[out]."""
    return tl.sum(Rg * v[:, None], axis=0)


@triton.jit
def _mat(R, g, ih, H, D, o2, i2, m2, F64: tl.constexpr):
    return upcast(tl.load(R + ((g * H + ih) * D + o2) * D + i2, mask=m2, other=0.0), F64)


@triton.jit
def _vec(p, off, md, F64: tl.constexpr):
    return upcast(tl.load(p + off, mask=md, other=0.0), F64)


@triton.jit
def cell_fwd(x0, x1, x2, x3, R0, R1, R2, R3, b0, b1, b2, b3, s0, s1, s2, s3, CELL: tl.constexpr,
             F64: tl.constexpr, CAP: tl.constexpr):
    """One step: (new states s0…s3) from the gate inputs x_g, the resident R_g, biases b_g and the states."""
    if CELL == 0:  # lstm (i, f, z, o; h, c)
        i = sig(x0 + mv(R0, s0) + b0, F64)
        f = sig(x1 + mv(R1, s0) + b1, F64)
        z = tanh_(x2 + mv(R2, s0) + b2, F64)
        o = sig(x3 + mv(R3, s0) + b3, F64)
        c = f * s1 + i * z
        n0, n1, n2, n3 = o * tanh_(c, F64), c, s2, s3
    elif CELL == 1:  # gru (r, z, n; h)
        r = sig(x0 + (mv(R0, s0) + b0), F64)
        z = sig(x1 + (mv(R1, s0) + b1), F64)
        n = tanh_(x2 + r * (mv(R2, s0) + b2), F64)
        n0, n1, n2, n3 = (1.0 - z) * n + z * s0, s1, s2, s3
    elif CELL == 2:  # elman (g; h)
        n0, n1, n2, n3 = tanh_(x0 + mv(R0, s0) + b0, F64), s1, s2, s3
    else:  # slstm (i, f, z, o; h, c, n, m)
        it = x0 + mv(R0, s0) + b0
        ft = x1 + mv(R1, s0) + b1
        zt = tanh_(x2 + mv(R2, s0) + b2, F64)
        ot = sig(x3 + mv(R3, s0) + b3, F64)
        lf = logsig(ft) + s3
        m = tl.where(s2 == 0, it, tl.where(lf >= it, lf, it))
        ip = exp_(it - m)
        fp = exp_(tl.minimum(lf - m, CAP))
        c = fp * s1 + ip * zt
        nn = fp * s2 + ip
        nn = tl.where(nn >= 1.0, nn, 1.0)
        n0, n1, n2, n3 = div_(ot * c, nn, F64), c, nn, m
    return n0, n1, n2, n3


@triton.jit
def cell_bwd(x0, x1, x2, x3, R0, R1, R2, R3, b0, b1, b2, b3, s0, s1, s2, s3, d0, d1, d2, d3,
             CELL: tl.constexpr, F64: tl.constexpr, CAP: tl.constexpr):
    """The step's adjoint: from the previous states s and the adjoints d of the new states, the adjoints
    (p0…p3) of the gate pre-activations from Wx, (q0…q3) of the recurrent terms R_g·h + b_g (what dR and db
    accumulate), and (a0…a3) of the previous states (a0 without the Rᵀq term, added by the caller)."""
    zero = s0 * 0.0
    if CELL == 0:
        u0 = x0 + mv(R0, s0) + b0
        u1 = x1 + mv(R1, s0) + b1
        u2 = x2 + mv(R2, s0) + b2
        u3 = x3 + mv(R3, s0) + b3
        i, ni = sigmoid_pair(u0, F64)
        f, nf = sigmoid_pair(u1, F64)
        z = tanh_(u2, F64)
        o, no = sigmoid_pair(u3, F64)
        c = f * s1 + i * z
        tc = tanh_(c, F64)
        dc = d1 + d0 * o * dtanh(c, F64)
        p3 = d0 * tc * (o * no)
        p0 = dc * z * (i * ni)
        p1 = dc * s1 * (f * nf)
        p2 = dc * i * dtanh(u2, F64)
        q0, q1, q2, q3 = p0, p1, p2, p3
        a0, a1, a2, a3 = zero, dc * f, zero, zero
    elif CELL == 1:
        v0 = mv(R0, s0) + b0
        v1 = mv(R1, s0) + b1
        v2 = mv(R2, s0) + b2
        r, nr = sigmoid_pair(x0 + v0, F64)
        z, nz = sigmoid_pair(x1 + v1, F64)
        u2 = x2 + r * v2
        n = tanh_(u2, F64)
        p2 = d0 * nz * dtanh(u2, F64)
        p1 = d0 * (s0 - n) * (z * nz)
        p0 = p2 * v2 * (r * nr)
        q0, q1, q2, q3 = p0, p1, p2 * r, zero
        p3 = zero
        a0, a1, a2, a3 = d0 * z, zero, zero, zero
    elif CELL == 2:
        u0 = x0 + mv(R0, s0) + b0
        p0 = d0 * dtanh(u0, F64)
        p1, p2, p3 = zero, zero, zero
        q0, q1, q2, q3 = p0, zero, zero, zero
        a0, a1, a2, a3 = zero, zero, zero, zero
    else:
        it = x0 + mv(R0, s0) + b0
        ft = x1 + mv(R1, s0) + b1
        u2 = x2 + mv(R2, s0) + b2
        zt = tanh_(u2, F64)
        ot, nto = sigmoid_pair(x3 + mv(R3, s0) + b3, F64)
        _, nft = sigmoid_pair(ft, F64)
        lf = logsig(ft) + s3
        first = s2 == 0
        take_lf = (lf >= it) & (s2 != 0)
        m = tl.where(first, it, tl.where(take_lf, lf, it))
        ip = exp_(it - m)
        capped = lf - m > CAP
        fp = exp_(tl.minimum(lf - m, CAP))
        c = fp * s1 + ip * zt
        nn = fp * s2 + ip
        nn = tl.where(nn >= 1.0, nn, 1.0)
        hq = div_(c, nn, F64)
        p3 = d0 * hq * (ot * nto)
        dc = d1 + div_(d0 * ot, nn, F64)
        dn = d2 - div_(d0 * ot * hq, nn, F64)  # the clamp differentiated as the identity
        dfp = dc * s1 + dn * s2
        dip = dc * zt + dn
        p2 = dc * ip * dtanh(u2, F64)
        da = dip * ip
        db_ = tl.where(capped, 0.0, dfp * fp)
        dm = d3 - da - db_
        dit = da + tl.where(take_lf, 0.0, dm)
        dlf = db_ + tl.where(take_lf, dm, 0.0)
        p0 = dit
        p1 = dlf * nft
        q0, q1, q2, q3 = p0, p1, p2, p3
        a0, a1, a2, a3 = zero, dc * fp, dn * fp, dlf
    return p0, p1, p2, p3, q0, q1, q2, q3, a0, a1, a2, a3


@triton.jit
def _load_R(R, ih, H, D, o2, i2, m2, G: tl.constexpr, F64: tl.constexpr):
    R0 = _mat(R, 0, ih, H, D, o2, i2, m2, F64)
    R1, R2, R3 = R0, R0, R0
    if G > 1:
        R1 = _mat(R, 1, ih, H, D, o2, i2, m2, F64)
        R2 = _mat(R, 2, ih, H, D, o2, i2, m2, F64)
    if G > 3:
        R3 = _mat(R, 3, ih, H, D, o2, i2, m2, F64)
    return R0, R1, R2, R3


@triton.jit
def _load_gates(p, base, stride, d, md, N: tl.constexpr, F64: tl.constexpr):
    """N ≤ 4 vectors at p[base + k·stride + d] (gates or state slots; the rest zeros)."""
    v0 = _vec(p, base + d, md, F64)
    v1, v2, v3 = v0 * 0.0, v0 * 0.0, v0 * 0.0
    if N > 1:
        v1 = _vec(p, base + stride + d, md, F64)
    if N > 2:
        v2 = _vec(p, base + 2 * stride + d, md, F64)
    if N > 3:
        v3 = _vec(p, base + 3 * stride + d, md, F64)
    return v0, v1, v2, v3


@triton.jit
def _store_states(p, base, stride, d, md, v0, v1, v2, v3, N: tl.constexpr):
    tl.store(p + base + d, v0, mask=md)
    if N > 1:
        tl.store(p + base + stride + d, v1, mask=md)
    if N > 2:
        tl.store(p + base + 2 * stride + d, v2, mask=md)
    if N > 3:
        tl.store(p + base + 3 * stride + d, v3, mask=md)


@triton.jit(do_not_specialize=["T"])
def _fused_fwd(Wx, R, bias, h0, out, hT, buf, B, T, H, D, G: tl.constexpr, S: tl.constexpr, CELL: tl.constexpr,
               BD: tl.constexpr, SAVE: tl.constexpr, F64: tl.constexpr, CAP: tl.constexpr):
    pid = tl.program_id(0)
    ib, ih = (pid // H).to(tl.int64), pid % H
    d = tl.arange(0, BD)
    md = d < D
    o2, i2 = d[:, None], d[None, :]
    m2 = md[:, None] & md[None, :]
    HD = H * D
    R0, R1, R2, R3 = _load_R(R, ih, H, D, o2, i2, m2, G, F64)
    b0, b1, b2, b3 = _load_gates(bias, ih * D, HD, d, md, G, F64)
    s0, s1, s2, s3 = _load_gates(h0, (ib * H + ih) * D, B * HD, d, md, S, F64)
    if SAVE:
        _store_states(buf, (ib * (T + 1) * S * H + ih) * D, HD, d, md, s0, s1, s2, s3, S)
    for t in range(T):
        x0, x1, x2, x3 = _load_gates(Wx, ((ib * T + t) * G * H + ih) * D, HD, d, md, G, F64)
        s0, s1, s2, s3 = cell_fwd(x0, x1, x2, x3, R0, R1, R2, R3, b0, b1, b2, b3, s0, s1, s2, s3, CELL, F64, CAP)
        tl.store(out + ((ib * T + t) * H + ih) * D + d, s0, mask=md)
        if SAVE:
            _store_states(buf, ((ib * (T + 1) + t + 1) * S * H + ih) * D, HD, d, md, s0, s1, s2, s3, S)
    _store_states(hT, (ib * H + ih) * D, B * HD, d, md, s0, s1, s2, s3, S)


@triton.jit
def _acc(A, q, hp):
    return A + q[:, None] * hp[None, :]


@triton.jit(do_not_specialize=["T"])
def _fused_bwd(Wx, R, bias, buf, dout, dhT, dWx, dR, db, dh0, B, T, H, D, G: tl.constexpr, S: tl.constexpr,
               CELL: tl.constexpr, BD: tl.constexpr, F64: tl.constexpr, CAP: tl.constexpr):
    pid = tl.program_id(0)
    ib, ih = (pid // H).to(tl.int64), pid % H
    d = tl.arange(0, BD)
    md = d < D
    o2, i2 = d[:, None], d[None, :]
    m2 = md[:, None] & md[None, :]
    HD = H * D
    R0, R1, R2, R3 = _load_R(R, ih, H, D, o2, i2, m2, G, F64)
    b0, b1, b2, b3 = _load_gates(bias, ih * D, HD, d, md, G, F64)
    e0, e1, e2, e3 = _load_gates(dhT, (ib * H + ih) * D, B * HD, d, md, S, F64)
    A0, A1, A2, A3 = R0 * 0.0, R0 * 0.0, R0 * 0.0, R0 * 0.0
    c0, c1, c2, c3 = b0 * 0.0, b0 * 0.0, b0 * 0.0, b0 * 0.0
    for k in range(T):
        t = T - 1 - k
        s0, s1, s2, s3 = _load_gates(buf, ((ib * (T + 1) + t) * S * H + ih) * D, HD, d, md, S, F64)
        x0, x1, x2, x3 = _load_gates(Wx, ((ib * T + t) * G * H + ih) * D, HD, d, md, G, F64)
        e0 = e0 + _vec(dout, ((ib * T + t) * H + ih) * D + d, md, F64)
        p0, p1, p2, p3, q0, q1, q2, q3, a0, a1, a2, a3 = cell_bwd(
            x0, x1, x2, x3, R0, R1, R2, R3, b0, b1, b2, b3, s0, s1, s2, s3, e0, e1, e2, e3, CELL, F64, CAP)
        base = ((ib * T + t) * G * H + ih) * D
        tl.store(dWx + base + d, p0, mask=md)
        A0, c0 = _acc(A0, q0, s0), c0 + q0
        a0 = a0 + mvT(R0, q0)
        if G > 1:
            tl.store(dWx + base + HD + d, p1, mask=md)
            tl.store(dWx + base + 2 * HD + d, p2, mask=md)
            A1, c1 = _acc(A1, q1, s0), c1 + q1
            A2, c2 = _acc(A2, q2, s0), c2 + q2
            a0 = a0 + mvT(R1, q1) + mvT(R2, q2)
        if G > 3:
            tl.store(dWx + base + 3 * HD + d, p3, mask=md)
            A3, c3 = _acc(A3, q3, s0), c3 + q3
            a0 = a0 + mvT(R3, q3)
        e0, e1, e2, e3 = a0, a1, a2, a3
    _store_states(dh0, (ib * H + ih) * D, B * HD, d, md, e0, e1, e2, e3, S)
    rb = ((ib * G * H + ih) * D + o2) * D + i2
    tl.store(dR + rb, A0, mask=m2)
    tl.store(db + (ib * G * H + ih) * D + d, c0, mask=md)
    if G > 1:
        tl.store(dR + rb + HD * D, A1, mask=m2)
        tl.store(dR + rb + 2 * HD * D, A2, mask=m2)
        tl.store(db + (ib * G * H + ih) * D + HD + d, c1, mask=md)
        tl.store(db + (ib * G * H + ih) * D + 2 * HD + d, c2, mask=md)
    if G > 3:
        tl.store(dR + rb + 3 * HD * D, A3, mask=m2)
        tl.store(db + (ib * G * H + ih) * D + 3 * HD + d, c3, mask=md)


def _meta(cell: str, dtype: torch.dtype, D: int) -> dict:
    cid, G, S = CELLS[cell]
    cd = torch.float64 if dtype == torch.float64 else torch.float32
    BD = max(triton.next_power_of_2(D), 2)
    return dict(G=G, S=S, CELL=cid, BD=BD, F64=cd == torch.float64, CAP=LOG_MAX[cd] - 1.0,
                num_warps=4 if BD <= 32 else 8)


class _Fused(torch.autograd.Function):
    @staticmethod
    def forward(ctx, cell, Wx, R, b, h0, has_h0):
        B, T, G, H, D = Wx.shape
        meta = _meta(cell, Wx.dtype, D)
        cd = torch.float64 if meta["F64"] else torch.float32
        out = torch.empty(B, T, H, D, dtype=Wx.dtype, device=Wx.device)
        hT = torch.empty(meta["S"], B, H, D, dtype=Wx.dtype, device=Wx.device)
        save = any(ctx.needs_input_grad)
        buf = torch.empty(B, T + 1, meta["S"], H, D, dtype=cd, device=Wx.device) if save else out
        _fused_fwd[(B * H,)](Wx, R, b, h0, out, hT, buf, B, T, H, D, SAVE=save, **meta)
        ctx.cell, ctx.has_h0 = cell, has_h0
        if save:
            ctx.save_for_backward(Wx, R, b, h0, buf)
        return out, hT

    @staticmethod
    def backward(ctx, dout, dhT):
        Wx, R, b, h0, buf = ctx.saved_tensors
        B, T, G, H, D = Wx.shape
        meta = _meta(ctx.cell, Wx.dtype, D)
        cd = buf.dtype
        dout = torch.zeros(B, T, H, D, dtype=cd, device=Wx.device) if dout is None else dout.contiguous()
        dhT = torch.zeros(meta["S"], B, H, D, dtype=cd, device=Wx.device) if dhT is None else dhT.contiguous()
        dWx = torch.empty_like(Wx)
        dR = torch.empty(B, G, H, D, D, dtype=cd, device=Wx.device)
        db = torch.empty(B, G, H, D, dtype=cd, device=Wx.device)
        dh0 = torch.empty(meta["S"], B, H, D, dtype=cd, device=Wx.device)
        _fused_bwd[(B * H,)](Wx, R, b, buf, dout, dhT, dWx, dR, db, dh0, B, T, H, D, **meta)
        return (None, dWx, dR.sum(0).to(R.dtype), db.sum(0).to(b.dtype),
                dh0.to(h0.dtype) if ctx.has_h0 else None, None)


def fused(cell: str, Wx, R, b, initial_state=None, output_final_state=False):
    """``cell`` (lstm, gru, elman, slstm) by the fused recurrent kernel; Triton forward and BPTT backward."""
    B, T, G, H, D = Wx.shape
    _, G_, S = CELLS[cell]
    if G != G_ or tuple(R.shape) != (G, H, D, D) or tuple(b.shape) != (G, H, D):
        raise ValueError(f"{cell}: Wx {tuple(Wx.shape)}, R {tuple(R.shape)}, b {tuple(b.shape)} do not match "
                         f"[B, T, {G_}, H, D], [{G_}, H, D, D], [{G_}, H, D]")
    has_h0 = initial_state is not None
    h0 = initial_state.contiguous() if has_h0 else Wx.new_zeros(S, B, H, D)
    h, hT = _Fused.apply(cell, Wx.contiguous(), R.contiguous(), b.contiguous(), h0, has_h0)
    return h, (hT if output_final_state else None)


def _api(cell: str):
    def fn(Wx, R, b, initial_state=None, output_final_state=False):
        return fused(cell, Wx, R, b, initial_state, output_final_state)

    fn.__name__ = f"{cell}_triton_fused"
    fn.__doc__ = f"{cell}: one Triton program per (batch, head), R resident, fp32 state; BPTT backward kernel."
    return fn


_DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)
_TRAITS = Traits(accumulate="float32", cumsum="none")
_SUPPORTS = frozenset({"initial_state", "final_state", "grad"})
FUSED = {}
for _cell in CELLS:
    FUSED[_cell] = _api(_cell)
    register_form(Target(_cell, "triton-fused", FUSED[_cell], kind="triton", traits=_TRAITS, dtypes=_DTYPES,
                         supports=_SUPPORTS, deterministic=True,
                         doc="Triton: one program per (batch, head), R[g, head] resident, state in fp32 registers, "
                             "matvec as broadcast product + tl.sum; backward = BPTT kernel recomputing each step "
                             "from the saved state"))
