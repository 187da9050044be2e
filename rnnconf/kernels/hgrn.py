"""Triton kernels for ``hgrn`` (h_t = exp(g_t) ⊙ h_{t−1} + x_t, o_t = h_t), and the diagonal-scan core they share
with the minGRU/minLSTM kernels (:mod:`rnnconf.kernels.mingru`).

Two forms, both with fla's signature ``fn(x, g, initial_state=None, output_final_state=False, cu_seqlens=None)``:

* ``triton-fused``: one program per (sequence, block of channels), a loop over t carrying h in registers.
  Backward: the reverse-time loop of the adjoint  λ_t = do_t + exp(g_{t+1}) λ_{t+1}  (λ_{T−1} gets + d h_T),
  dx_t = λ_t,  dg_t = λ_t exp(g_t) h_{t−1},  d h_0 = exp(g_1) λ_1 (1-based; = d h_T when T = 0).
* ``triton-scan``: one program per (sequence, block of channels) holding the whole sequence, padded to
  BT = next_power_of_2(T), as a tile; ``tl.associative_scan`` over (a, b) pairs with the diagonal combine
  (a₁, b₁) ∘ (a₂, b₂) = (a₁a₂, a₂b₁ + b₂), h_0 folded into b_1.  Padding rows are the identity (1, 0), so the
  last row of the scan is h_T, and h_0 for an empty sequence.  Backward: the same scan in reversed time over
  (a_{t+1}, do_t) gives λ.  Meant for T up to a few thousand.

Both accumulate in float32 (float64 for float64 inputs) and store outputs in the input dtype.  When gradients are
needed the forward keeps h in the accumulation dtype for the backward (h_{t−1} enters dg).  Block sizes are fixed
functions of (T, D), never autotuned, so results are deterministic.  Tensors may live on CUDA or, under
``TRITON_INTERPRET=1``, on the CPU; kernels run on the inputs' device.

Shared core (imported by :mod:`rnnconf.kernels.mingru`): the jit helpers :func:`combine`, :func:`exp_`, :func:`div_`,
:func:`upcast`, :func:`seq_bounds`, :func:`scan_forward`, :func:`adjoint_scan`, :func:`prev_state`,
:func:`store_dh0`, the host-side :class:`DiagForm` record and :func:`diag_apply` that wraps a (forward, backward)
kernel pair into an autograd op.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import triton
import triton.language as tl
from torch.autograd.function import once_differentiable

from ..spec.errors import Traits
from ..spec.targets import Target, register_form
from ._backend import interpreter_active

# ====================================================================================================================
# jit helpers shared by every diagonal-recurrence kernel
# ====================================================================================================================


@triton.jit
def combine(a1, b1, a2, b2):
    """(a₁, b₁) ∘ (a₂, b₂) = (a₁a₂, a₂b₁ + b₂): step 1 then step 2."""
    return a1 * a2, a2 * b1 + b2


# Elementary functions.  Natively on CUDA, ``tl.exp`` on float32 is ``ex2.approx(x·log2 e)`` (relative error growing
# like u·|x|) and ``/`` is ``div.full.f32`` (2 ulp); the error models count ≤ 1 u per operation, so the kernels use
# libdevice's ``exp`` and round-to-nearest division instead.  The interpreter evaluates with numpy, which has no
# libdevice; there ``tl.exp`` is numpy's exp.  The choice follows what ``triton.jit`` built at import (it decides
# between native and interpreted when decorating, from TRITON_INTERPRET or ``triton.knobs``).
INTERPRETED = type(combine).__name__ == "InterpretedFunction"
if INTERPRETED:
    @triton.jit
    def exp_(x):
        """exp (the interpreter's: numpy)."""
        return tl.exp(x)
else:
    from triton.language.extra import libdevice

    @triton.jit
    def exp_(x):
        """exp via libdevice (__nv_expf / __nv_exp), not the approximate ex2 path of ``tl.exp``."""
        return libdevice.exp(x)


@triton.jit
def div_(x, y, F64: tl.constexpr):
    """x / y rounded to nearest (float32 ``/`` is approximate natively; float64 ``/`` is already IEEE)."""
    if F64:
        q = x / y
    else:
        q = tl.math.div_rn(x, y)
    return q


@triton.jit
def upcast(x, F64: tl.constexpr):
    """To the accumulation dtype: float64 when F64, else float32."""
    if F64:
        y = x.to(tl.float64)
    else:
        y = x.to(tl.float32)
    return y


@triton.jit
def seq_bounds(cu, i_n, T, IS_VARLEN: tl.constexpr):
    """(start offset in time steps, length) of sequence ``i_n``: packed by ``cu`` or the dense [B, T] layout."""
    if IS_VARLEN:
        bos = tl.load(cu + i_n).to(tl.int64)
        L = tl.load(cu + i_n + 1).to(tl.int64) - bos
    else:
        bos = i_n.to(tl.int64) * T
        L = T
    return bos, L


@triton.jit
def scan_forward(a, b, t, m, d, md, off, i_n, h0, o, ht, D, BT: tl.constexpr,
                 USE_H0: tl.constexpr, STORE_HT: tl.constexpr, F64: tl.constexpr):
    """Inclusive scan of a [BT, BD] tile of (a, b) along time (rows ``t``, valid where ``m``); h_0 folded into row 0.

    Stores h to ``o`` and the last row (= h_T, or h_0 when the sequence is empty) to ``ht``."""
    a = tl.where(m, a, 1.0)
    b = tl.where(m, b, 0.0)
    if USE_H0:
        h0v = upcast(tl.load(h0 + i_n.to(tl.int64) * D + d, mask=md, other=0.0), F64)
        b = tl.where(t[:, None] == 0, b + a * h0v[None, :], b)
    _, h = tl.associative_scan((a, b), 0, combine)
    tl.store(o + off, h, mask=m)
    if STORE_HT:
        tl.store(ht + i_n.to(tl.int64) * D + d, tl.sum(tl.where(t[:, None] == BT - 1, h, 0.0), 0), mask=md)


@triton.jit
def adjoint_scan(a_next, do, s, i_n, dht, d, md, D, USE_DHT: tl.constexpr, F64: tl.constexpr):
    """λ in reversed time (row s ↔ t = L−1−s): λ_s = a_next_s λ_{s−1} + do_s, with d h_T folded into row 0.

    ``a_next`` must be 1 and ``do`` 0 on padding rows (and ``a_next`` 1 on row 0)."""
    if USE_DHT:
        dhtv = upcast(tl.load(dht + i_n.to(tl.int64) * D + d, mask=md, other=0.0), F64)
        do = tl.where(s[:, None] == 0, do + dhtv[None, :], do)
    _, lam = tl.associative_scan((a_next, do), 0, combine)
    return lam


@triton.jit
def prev_state(hbuf, off, s, L, m, i_n, h0, d, md, D, USE_H0: tl.constexpr, F64: tl.constexpr):
    """h_{t−1} on the reversed tile (row s ↔ t = L−1−s): the saved forward state one step back, h_0 at t = 0."""
    hp = upcast(tl.load(hbuf + off - D, mask=m & (s[:, None] < L - 1), other=0.0), F64)
    if USE_H0:
        h0v = upcast(tl.load(h0 + i_n.to(tl.int64) * D + d, mask=md, other=0.0), F64)
        hp = tl.where(s[:, None] == L - 1, h0v[None, :], hp)
    return hp


@triton.jit
def store_dh0(dh0, a, lam, s, L, i_n, dht, d, md, D, USE_DHT: tl.constexpr, F64: tl.constexpr):
    """d h_0 = a_1 λ_1 (row s = L−1 of the reversed tile), or d h_T when the sequence is empty."""
    v = tl.sum(tl.where(s[:, None] == L - 1, a * lam, 0.0), 0)
    if USE_DHT:
        dhtv = upcast(tl.load(dht + i_n.to(tl.int64) * D + d, mask=md, other=0.0), F64)
        v = tl.where(L > 0, v, dhtv)
    tl.store(dh0 + i_n.to(tl.int64) * D + d, v, mask=md)


# ====================================================================================================================
# host side shared by every diagonal-recurrence form
# ====================================================================================================================


def _next_pow2(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def scan_blocks(maxlen: int, D: int) -> tuple[int, int, int]:
    """(BT, BD, num_warps) for a whole-sequence scan tile: BT·BD ≤ 4096 unless BT alone exceeds it."""
    BT = _next_pow2(max(maxlen, 1))
    BD = min(_next_pow2(max(D, 1)), max(1, 4096 // BT))
    num_warps = min(16, max(4, (BT * BD) // 1024))
    return BT, BD, num_warps


def loop_blocks(D: int) -> tuple[int, int]:
    """(BD, num_warps) for a time-loop kernel."""
    BD = min(_next_pow2(max(D, 1)), 128)
    return BD, max(1, min(4, BD // 32))


@dataclass(frozen=True)
class DiagForm:
    """A (forward, backward) kernel pair over ``n_in`` [B, T, D] inputs, with the common argument convention

    forward:  ``fwd[grid](u1, u2, u3, h0, o, ht, cu, T, D, <meta>, USE_H0, STORE_HT, IS_VARLEN, F64)``
    backward: ``bwd[grid](u1, u2, u3, h0, hbuf, do, dht, du1, du2, du3, dh0, cu, T, D, <meta>, USE_H0, USE_DHT,
    IS_VARLEN, F64)``

    with grid (channel blocks, sequences); unused ``u3``/``du3`` are passed as ``u1``/``du1`` and never touched.
    ``scan``: meta is (BT, BD) of :func:`scan_blocks`, else BD of :func:`loop_blocks`; ``meta``: further constexpr
    keyword arguments of both kernels."""

    name: str
    fwd: object
    bwd: object
    n_in: int
    scan: bool
    meta: dict = field(default_factory=dict)


MAX_SCAN_T = 16384  # the scan form holds a whole sequence in one tile


def _check_device(t: torch.Tensor) -> None:
    if t.device.type != "cuda" and not INTERPRETED:
        state = "turned on only after" if interpreter_active() else "off when"
        raise RuntimeError(f"rnnconf's Triton kernels were compiled natively (TRITON_INTERPRET was {state} "
                           f"rnnconf.kernels was imported) and need CUDA tensors; got {t.device}")


def _launch_args(form: DiagForm, maxlen: int, D: int) -> tuple[int, dict]:
    if form.scan:
        BT, BD, nw = scan_blocks(maxlen, D)
        return BD, dict(BT=BT, BD=BD, num_warps=nw, **form.meta)
    BD, nw = loop_blocks(D)
    return BD, dict(BD=BD, num_warps=nw, **form.meta)


class _DiagFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, form: DiagForm, cu, N, maxlen, output_final_state, h0, *inputs):
        ctx.set_materialize_grads(False)
        u = inputs
        B, T, D = u[0].shape
        dtype = u[0].dtype
        f64 = any(t.dtype == torch.float64 for t in (*u, *(() if h0 is None else (h0,))))
        acc = torch.float64 if f64 else torch.float32
        need_grad = any(ctx.needs_input_grad[5:])
        # keep h in the accumulation dtype for the backward (it enters dg through h_{t−1})
        hbuf = torch.empty(B, T, D, dtype=acc if need_grad else dtype, device=u[0].device)
        ht = torch.empty(N, D, dtype=dtype, device=u[0].device) if output_final_state else None
        if N and D:
            BD, meta = _launch_args(form, maxlen, D)
            u3 = u[2] if len(u) > 2 else u[0]
            form.fwd[(triton.cdiv(D, BD), N)](
                u[0], u[1], u3, h0, hbuf, ht, cu, T, D,
                USE_H0=h0 is not None, STORE_HT=ht is not None, IS_VARLEN=cu is not None, F64=f64, **meta)
        o = hbuf.to(dtype)
        ctx.form, ctx.N, ctx.maxlen, ctx.f64 = form, N, maxlen, f64
        ctx.save_for_backward(cu, h0, hbuf, *u)
        return o, ht

    @staticmethod
    @once_differentiable
    def backward(ctx, do, dht):
        cu, h0, hbuf, *u = ctx.saved_tensors
        form, N, f64 = ctx.form, ctx.N, ctx.f64
        B, T, D = u[0].shape
        if do is None:
            do = torch.zeros_like(u[0])
        do = do.contiguous()
        dht = dht.contiguous() if dht is not None else None
        du = [torch.empty_like(t) for t in u]
        dh0 = torch.empty_like(h0) if h0 is not None else None
        if N and D:
            BD, meta = _launch_args(form, ctx.maxlen, D)
            u3 = u[2] if len(u) > 2 else u[0]
            du3 = du[2] if len(du) > 2 else du[0]
            form.bwd[(triton.cdiv(D, BD), N)](
                u[0], u[1], u3, h0, hbuf, do, dht, du[0], du[1], du3, dh0, cu, T, D,
                USE_H0=h0 is not None, USE_DHT=dht is not None, IS_VARLEN=cu is not None, F64=f64, **meta)
        elif dh0 is not None:
            dh0 = dht.clone() if dht is not None else torch.zeros_like(h0)
        return (None, None, None, None, None, dh0, *du)


def diag_apply(form: DiagForm, inputs, initial_state=None, output_final_state=False, cu_seqlens=None):
    """Run ``form`` on [B, T, D] inputs with fla's state/varlen conventions; returns (o, final_state or None)."""
    if len(inputs) != form.n_in:
        raise TypeError(f"{form.name} takes {form.n_in} sequence inputs, got {len(inputs)}")
    inputs = [t.contiguous() for t in inputs]
    x = inputs[0]
    if x.dim() != 3:
        raise ValueError(f"{form.name}: inputs must be [B, T, D], got shape {tuple(x.shape)}")
    for t in inputs[1:]:
        if t.shape != x.shape:
            raise ValueError(f"{form.name}: input shapes differ: {tuple(x.shape)} vs {tuple(t.shape)}")
        if t.device != x.device:
            raise ValueError(f"{form.name}: inputs on different devices: {x.device} vs {t.device}")
    _check_device(x)
    B, T, D = x.shape
    cu = None
    if cu_seqlens is not None:
        if B != 1:
            raise ValueError(f"{form.name}: varlen (cu_seqlens) needs batch size 1, got {B}")
        cu = cu_seqlens.to(device=x.device).contiguous()
        if cu.dtype not in (torch.int32, torch.int64):
            cu = cu.long()
        N = cu.numel() - 1
        if N < 0:
            raise ValueError(f"{form.name}: cu_seqlens must hold N+1 ≥ 1 offsets")
        if int(cu[0]) != 0 or int(cu[-1]) != T or bool((cu[1:] < cu[:-1]).any()):
            raise ValueError(f"{form.name}: cu_seqlens must rise from 0 to T={T}, got {cu.tolist()}")
        maxlen = int((cu[1:] - cu[:-1]).max()) if N else 0
    else:
        N, maxlen = B, T
    if form.scan and maxlen > MAX_SCAN_T:
        raise ValueError(f"{form.name}: sequences of length {maxlen} exceed the scan tile limit {MAX_SCAN_T}; "
                         f"use a time-loop form")
    h0 = None
    if initial_state is not None:
        h0 = initial_state.to(device=x.device).contiguous()
        if tuple(h0.shape) != (N, D):
            raise ValueError(f"{form.name}: initial_state must be [{N}, {D}], got {tuple(h0.shape)}")
    return _DiagFunction.apply(form, cu, N, maxlen, bool(output_final_state), h0, *inputs)


# ====================================================================================================================
# hgrn kernels
# ====================================================================================================================


@triton.jit(do_not_specialize=["T"])
def _hgrn_fused_fwd_kernel(x, g, u3, h0, o, ht, cu, T, D, BD: tl.constexpr, USE_H0: tl.constexpr,
                           STORE_HT: tl.constexpr, IS_VARLEN: tl.constexpr, F64: tl.constexpr):
    i_d, i_n = tl.program_id(0), tl.program_id(1)
    bos, L = seq_bounds(cu, i_n, T, IS_VARLEN)
    d = i_d * BD + tl.arange(0, BD)
    md = d < D
    h = upcast(tl.zeros([BD], dtype=tl.float32), F64)
    if USE_H0:
        h += upcast(tl.load(h0 + i_n.to(tl.int64) * D + d, mask=md, other=0.0), F64)
    p = bos * D + d
    for _ in range(0, L):
        xt = upcast(tl.load(x + p, mask=md, other=0.0), F64)
        gt = upcast(tl.load(g + p, mask=md, other=0.0), F64)
        h = exp_(gt) * h + xt
        tl.store(o + p, h, mask=md)
        p += D
    if STORE_HT:
        tl.store(ht + i_n.to(tl.int64) * D + d, h, mask=md)


@triton.jit(do_not_specialize=["T"])
def _hgrn_fused_bwd_kernel(x, g, u3, h0, hbuf, do, dht, dx, dg, du3, dh0, cu, T, D, BD: tl.constexpr,
                           USE_H0: tl.constexpr, USE_DHT: tl.constexpr, IS_VARLEN: tl.constexpr,
                           F64: tl.constexpr):
    i_d, i_n = tl.program_id(0), tl.program_id(1)
    bos, L = seq_bounds(cu, i_n, T, IS_VARLEN)
    d = i_d * BD + tl.arange(0, BD)
    md = d < D
    lam = upcast(tl.zeros([BD], dtype=tl.float32), F64)
    if USE_DHT:
        lam += upcast(tl.load(dht + i_n.to(tl.int64) * D + d, mask=md, other=0.0), F64)
    h0v = upcast(tl.zeros([BD], dtype=tl.float32), F64)
    if USE_H0:
        h0v += upcast(tl.load(h0 + i_n.to(tl.int64) * D + d, mask=md, other=0.0), F64)
    p = (bos + L - 1) * D + d
    for i in range(0, L):
        # time step t = L − 1 − i;  λ_t = do_t + a_{t+1} λ_{t+1} (the a_{t+1} factor was applied last iteration)
        lam += upcast(tl.load(do + p, mask=md, other=0.0), F64)
        a = exp_(upcast(tl.load(g + p, mask=md, other=0.0), F64))
        has_prev = (d * 0 + i) < L - 1  # a tensor condition (a python bool mask breaks the interpreter)
        hp = upcast(tl.load(hbuf + p - D, mask=md & has_prev, other=0.0), F64)
        hp = tl.where(i == L - 1, h0v, hp)  # h_{t−1}: h_0 at t = 0
        tl.store(dx + p, lam, mask=md)
        tl.store(dg + p, lam * a * hp, mask=md)
        lam = lam * a
        p -= D
    if USE_H0:
        tl.store(dh0 + i_n.to(tl.int64) * D + d, lam, mask=md)


@triton.jit(do_not_specialize=["T"])
def _hgrn_scan_fwd_kernel(x, g, u3, h0, o, ht, cu, T, D, BT: tl.constexpr, BD: tl.constexpr,
                          USE_H0: tl.constexpr, STORE_HT: tl.constexpr, IS_VARLEN: tl.constexpr,
                          F64: tl.constexpr):
    i_d, i_n = tl.program_id(0), tl.program_id(1)
    bos, L = seq_bounds(cu, i_n, T, IS_VARLEN)
    t = tl.arange(0, BT)
    d = i_d * BD + tl.arange(0, BD)
    md = d < D
    m = (t[:, None] < L) & md[None, :]
    off = (bos + t[:, None]) * D + d[None, :]
    a = exp_(upcast(tl.load(g + off, mask=m, other=0.0), F64))
    b = upcast(tl.load(x + off, mask=m, other=0.0), F64)
    scan_forward(a, b, t, m, d, md, off, i_n, h0, o, ht, D, BT, USE_H0, STORE_HT, F64)


@triton.jit(do_not_specialize=["T"])
def _hgrn_scan_bwd_kernel(x, g, u3, h0, hbuf, do, dht, dx, dg, du3, dh0, cu, T, D, BT: tl.constexpr,
                          BD: tl.constexpr, USE_H0: tl.constexpr, USE_DHT: tl.constexpr, IS_VARLEN: tl.constexpr,
                          F64: tl.constexpr):
    i_d, i_n = tl.program_id(0), tl.program_id(1)
    bos, L = seq_bounds(cu, i_n, T, IS_VARLEN)
    s = tl.arange(0, BT)  # reversed time: row s holds t = L − 1 − s
    d = i_d * BD + tl.arange(0, BD)
    md = d < D
    m = (s[:, None] < L) & md[None, :]
    off = (bos + L - 1 - s[:, None]) * D + d[None, :]
    a = exp_(upcast(tl.load(g + off, mask=m, other=0.0), F64))
    mn = m & (s[:, None] >= 1)
    a_next = tl.where(mn, exp_(upcast(tl.load(g + off + D, mask=mn, other=0.0), F64)), 1.0)
    dov = upcast(tl.load(do + off, mask=m, other=0.0), F64)
    lam = adjoint_scan(a_next, dov, s, i_n, dht, d, md, D, USE_DHT, F64)
    hp = prev_state(hbuf, off, s, L, m, i_n, h0, d, md, D, USE_H0, F64)
    tl.store(dx + off, lam, mask=m)
    tl.store(dg + off, lam * a * hp, mask=m)
    if USE_H0:
        store_dh0(dh0, a, lam, s, L, i_n, dht, d, md, D, USE_DHT, F64)


FUSED = DiagForm("hgrn/triton-fused", _hgrn_fused_fwd_kernel, _hgrn_fused_bwd_kernel, n_in=2, scan=False)
SCAN = DiagForm("hgrn/triton-scan", _hgrn_scan_fwd_kernel, _hgrn_scan_bwd_kernel, n_in=2, scan=True)


def fused_recurrent(x, g, initial_state=None, output_final_state=False, cu_seqlens=None):
    """HGRN, time loop per (sequence, channel block); Triton forward and backward."""
    return diag_apply(FUSED, [x, g], initial_state, output_final_state, cu_seqlens)


def scan(x, g, initial_state=None, output_final_state=False, cu_seqlens=None):
    """HGRN, ``tl.associative_scan`` over the whole sequence; Triton forward and backward (reversed-time scan)."""
    return diag_apply(SCAN, [x, g], initial_state, output_final_state, cu_seqlens)


_DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)
_TRAITS = Traits(accumulate="float32", cumsum="none")

register_form(Target("hgrn", "triton-fused", fused_recurrent, kind="triton", traits=_TRAITS, dtypes=_DTYPES,
                     supports=frozenset({"initial_state", "final_state", "varlen", "grad"}), deterministic=True,
                     doc="Triton: one program per (sequence, channel block), loop over t; fp32 accumulation; "
                         "backward = reverse-time adjoint loop"))
register_form(Target("hgrn", "triton-scan", scan, kind="triton", traits=_TRAITS, dtypes=_DTYPES,
                     supports=frozenset({"initial_state", "final_state", "varlen", "grad"}), deterministic=True,
                     doc="Triton: tl.associative_scan of (exp g, x) pairs over the whole sequence (BT = "
                         "next_power_of_2(T)); fp32 accumulation; backward = reversed-time scan of the adjoint"))
