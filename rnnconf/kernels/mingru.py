"""Triton scan kernels for ``mingru`` and ``minlstm`` (Feng et al., "Were RNNs All We Needed?", arXiv 2410.01201).

Both are diagonal recurrences h_t = a_t ⊙ h_{t−1} + b_t with per-step coefficients from gate logits:

* minGRU  ``fn(z, h_tilde, initial_state=None, output_final_state=False, cu_seqlens=None)``:
  a_t = σ(−z_t) = 1 − σ(z_t),  b_t = σ(z_t) h̃_t.
* minLSTM ``fn(f, i, h_tilde, initial_state=None, output_final_state=False, cu_seqlens=None)``:
  f′ = σ(f)/(σ(f)+σ(i)),  i′ = 1 − f′,  a_t = f′,  b_t = i′ h̃_t.  With diff = softplus(−f) − softplus(−i)
  (= log σ(i) − log σ(f)):  f′ = σ(−diff),  i′ = σ(diff).

Gates are evaluated without overflow for any finite logit (±1e4 included), each to a few roundings relative:
σ(±x) from e = exp(−|x|) as 1/(1 + e) and e/(1 + e); minLSTM as the ratio σ(f)/(σ(f) + σ(i)) when max(f, i) ≥ 0,
and from e^{f−M}, e^{i−M} (M = max(f, i), the difference taken exactly by two-sum) when both logits are negative, so
that both at −1e4 give f′ = i′ = 1/2 and the small gate keeps its relative accuracy (σ(−diff) of a rounded diff
would lose u·|diff|).  Natively, exp is libdevice's and float32 division rounds to nearest (see ``exp_``/``div_`` in
:mod:`rnnconf.kernels.hgrn`).

The scan, h_0 folding, adjoint and bookkeeping are the shared core of :mod:`rnnconf.kernels.hgrn`.  Backward:
λ_t = do_t + a_{t+1} λ_{t+1} by a reversed-time scan; with c_t = λ_t a_t i_t (h̃_t − h_{t−1}) (i_t the input gate
σ(z_t) resp. i′; a_t i_t is σ′(z_t) resp. f′i′):  minGRU  dz = c, dh̃ = λ σ(z);  minLSTM  df = −c σ(−f),
di = c σ(−i), dh̃ = λ i′;  d h_0 = a_1 λ_1.

Registered as ``mingru/triton-scan`` and ``minlstm/triton-scan`` (targets name only the spec id, so this module does
not import the specs).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..spec.errors import Traits
from ..spec.targets import Target, register_form
from .hgrn import (
    DiagForm,
    adjoint_scan,
    diag_apply,
    div_,
    exp_,
    prev_state,
    scan_forward,
    seq_bounds,
    store_dh0,
    upcast,
)


@triton.jit
def sigmoid_pair(x, F64: tl.constexpr):
    """(σ(x), σ(−x)) for any finite x, 3 roundings each (exp, add, divide): with e = exp(−|x|) ∈ (0, 1],
    σ(|x|) = 1/(1 + e) and σ(−|x|) = e/(1 + e).  Nothing overflows."""
    e = exp_(-tl.abs(x))
    den = 1.0 + e
    big = div_(tl.full(x.shape, 1.0, x.dtype), den, F64)
    small = div_(e, den, F64)
    pos = x >= 0
    return tl.where(pos, big, small), tl.where(pos, small, big)


@triton.jit
def two_sum(a, b):
    """Knuth's error-free sum: a + b = s + err exactly (no multiplications, so no FMA contraction applies)."""
    s = a + b
    bv = s - a
    av = s - bv
    return s, (a - av) + (b - bv)


@triton.jit
def exp_shifted(x, M):
    """exp(x − M) with x − M taken exactly: exp(s)·(1 + err) for s + err = x − M."""
    s, err = two_sum(x, -M)
    return exp_(s) * (1.0 + err)


@triton.jit
def gates(p1, p2, LSTM: tl.constexpr, F64: tl.constexpr):
    """(a, input gate): minGRU (σ(−z), σ(z)) with z = p1; minLSTM (f′, i′) with f = p1, i = p2.

    minLSTM, max(f, i) ≥ 0: f′ = σ(f)/(σ(f) + σ(i)) (denominator ≥ 1/2).  Both < 0, where σ may underflow: with
    M = max(f, i), f′ = e^{f−M}(1 + eⁱ) / (e^{f−M}(1 + eⁱ) + e^{i−M}(1 + eᶠ)), every exponent ≤ 0 and the
    denominator ≥ 1; f − M is taken exactly so the smaller gate does not lose u·|f − i| relative (which it would
    through σ(−diff) of a rounded diff = softplus(−f) − softplus(−i)).  Each branch sees harmless stand-in inputs
    in the other's lanes, so no lane overflows or divides 0 by 0."""
    if LSTM:
        M = tl.maximum(p1, p2)
        pos = M >= 0
        sf, _ = sigmoid_pair(tl.where(pos, p1, 0.0), F64)
        si, _ = sigmoid_pair(tl.where(pos, p2, 0.0), F64)
        den_a = sf + si
        fb = tl.where(pos, -1.0, p1)
        ib = tl.where(pos, -1.0, p2)
        Mb = tl.maximum(fb, ib)
        nf = exp_shifted(fb, Mb) * (1.0 + exp_(ib))
        ni = exp_shifted(ib, Mb) * (1.0 + exp_(fb))
        den_b = nf + ni
        a = tl.where(pos, div_(sf, den_a, F64), div_(nf, den_b, F64))
        gin = tl.where(pos, div_(si, den_a, F64), div_(ni, den_b, F64))
    else:
        gin, a = sigmoid_pair(p1, F64)
    return a, gin


@triton.jit
def _load_inputs(u1, u2, u3, off, m, LSTM: tl.constexpr, F64: tl.constexpr):
    """(first logit, second logit (= first for minGRU), h̃) on a tile."""
    p1 = upcast(tl.load(u1 + off, mask=m, other=0.0), F64)
    if LSTM:
        p2 = upcast(tl.load(u2 + off, mask=m, other=0.0), F64)
        hc = upcast(tl.load(u3 + off, mask=m, other=0.0), F64)
    else:
        p2 = p1
        hc = upcast(tl.load(u2 + off, mask=m, other=0.0), F64)
    return p1, p2, hc


@triton.jit(do_not_specialize=["T"])
def _min_scan_fwd_kernel(u1, u2, u3, h0, o, ht, cu, T, D, BT: tl.constexpr, BD: tl.constexpr,
                         USE_H0: tl.constexpr, STORE_HT: tl.constexpr, IS_VARLEN: tl.constexpr,
                         F64: tl.constexpr, LSTM: tl.constexpr):
    i_d, i_n = tl.program_id(0), tl.program_id(1)
    bos, L = seq_bounds(cu, i_n, T, IS_VARLEN)
    t = tl.arange(0, BT)
    d = i_d * BD + tl.arange(0, BD)
    md = d < D
    m = (t[:, None] < L) & md[None, :]
    off = (bos + t[:, None]) * D + d[None, :]
    p1, p2, hc = _load_inputs(u1, u2, u3, off, m, LSTM, F64)
    a, gin = gates(p1, p2, LSTM, F64)
    scan_forward(a, gin * hc, t, m, d, md, off, i_n, h0, o, ht, D, BT, USE_H0, STORE_HT, F64)


@triton.jit(do_not_specialize=["T"])
def _min_scan_bwd_kernel(u1, u2, u3, h0, hbuf, do, dht, du1, du2, du3, dh0, cu, T, D, BT: tl.constexpr,
                         BD: tl.constexpr, USE_H0: tl.constexpr, USE_DHT: tl.constexpr, IS_VARLEN: tl.constexpr,
                         F64: tl.constexpr, LSTM: tl.constexpr):
    i_d, i_n = tl.program_id(0), tl.program_id(1)
    bos, L = seq_bounds(cu, i_n, T, IS_VARLEN)
    s = tl.arange(0, BT)  # reversed time: row s holds t = L − 1 − s
    d = i_d * BD + tl.arange(0, BD)
    md = d < D
    m = (s[:, None] < L) & md[None, :]
    off = (bos + L - 1 - s[:, None]) * D + d[None, :]
    p1, p2, hc = _load_inputs(u1, u2, u3, off, m, LSTM, F64)
    a, gin = gates(p1, p2, LSTM, F64)
    mn = m & (s[:, None] >= 1)
    q1, q2, _ = _load_inputs(u1, u2, u3, off + D, mn, LSTM, F64)
    a_next, _ = gates(q1, q2, LSTM, F64)
    a_next = tl.where(mn, a_next, 1.0)
    dov = upcast(tl.load(do + off, mask=m, other=0.0), F64)
    lam = adjoint_scan(a_next, dov, s, i_n, dht, d, md, D, USE_DHT, F64)
    hp = prev_state(hbuf, off, s, L, m, i_n, h0, d, md, D, USE_H0, F64)
    c = lam * (a * gin) * (hc - hp)
    if LSTM:
        _, smf = sigmoid_pair(p1, F64)
        _, smi = sigmoid_pair(p2, F64)
        tl.store(du1 + off, -c * smf, mask=m)
        tl.store(du2 + off, c * smi, mask=m)
        tl.store(du3 + off, lam * gin, mask=m)
    else:
        tl.store(du1 + off, c, mask=m)
        tl.store(du2 + off, lam * gin, mask=m)
    if USE_H0:
        store_dh0(dh0, a, lam, s, L, i_n, dht, d, md, D, USE_DHT, F64)


MINGRU_SCAN = DiagForm("mingru/triton-scan", _min_scan_fwd_kernel, _min_scan_bwd_kernel, n_in=2, scan=True,
                       meta={"LSTM": False})
MINLSTM_SCAN = DiagForm("minlstm/triton-scan", _min_scan_fwd_kernel, _min_scan_bwd_kernel, n_in=3, scan=True,
                        meta={"LSTM": True})


def mingru_scan(z, h_tilde, initial_state=None, output_final_state=False, cu_seqlens=None):
    """minGRU h_t = (1 − σ(z_t)) h_{t−1} + σ(z_t) h̃_t by ``tl.associative_scan``; Triton forward and backward."""
    return diag_apply(MINGRU_SCAN, [z, h_tilde], initial_state, output_final_state, cu_seqlens)


def minlstm_scan(f, i, h_tilde, initial_state=None, output_final_state=False, cu_seqlens=None):
    """minLSTM h_t = f′_t h_{t−1} + i′_t h̃_t (normalised gates) by ``tl.associative_scan``; Triton fwd and bwd."""
    return diag_apply(MINLSTM_SCAN, [f, i, h_tilde], initial_state, output_final_state, cu_seqlens)


_DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)
_TRAITS = Traits(accumulate="float32", cumsum="none")
_SUPPORTS = frozenset({"initial_state", "final_state", "varlen", "grad"})

register_form(Target("mingru", "triton-scan", mingru_scan, kind="triton", traits=_TRAITS, dtypes=_DTYPES,
                     supports=_SUPPORTS, deterministic=True,
                     doc="Triton: stable gates a = σ(−z), b = σ(z) h̃, then tl.associative_scan over the whole "
                         "sequence; fp32 accumulation; backward = reversed-time scan of the adjoint"))
register_form(Target("minlstm", "triton-scan", minlstm_scan, kind="triton", traits=_TRAITS, dtypes=_DTYPES,
                     supports=_SUPPORTS, deterministic=True,
                     doc="Triton: normalised gates f′ = σ(−diff), i′ = σ(diff), diff = softplus(−f) − softplus(−i), "
                         "then tl.associative_scan; fp32 accumulation; backward = reversed-time adjoint scan"))
