"""Planted bugs: deliberately wrong variants of the hgrn / minGRU / minLSTM torch forms and Triton kernels.

Each mutant is a :class:`rnnconf.spec.targets.Target` with the spec id of the form it mutates, a distinct name
(``planted-…``) and the traits/supports/dtypes of that correct form, built directly — never registered, so the
built-in conformance suite does not see them.  Each is modelled on a real bug class (``anchor``: the entry of
/work/shared/reference/anchors.md, or the brief's class) and states the properties that must catch it (``expect``).

Every mutant differs from a copy of the correct form in the lines marked ``# BUG``.

Run ``python tests/planted/planted_bugs.py [bug-key ...]`` for each bug's verdicts and the full table bug → every
property that catches it (``PLANTED_EARLY_STOP=1``: stop a bug's run once its expected properties have failed, as
tests/planted/test_planted.py does unless ``PLANTED_FULL=1``).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field, replace

import torch

if not torch.cuda.is_available():  # as tests/conftest.py: the interpreter, set before triton is first imported
    os.environ.setdefault("TRITON_INTERPRET", "1")

import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from rnnconf.impls._common import compute_dtype, varlen_by_split  # noqa: E402
from rnnconf.kernels._backend import kernel_device  # noqa: E402
from rnnconf.kernels.hgrn import FUSED, DiagForm, diag_apply, exp_, seq_bounds, upcast  # noqa: E402
from rnnconf.properties import PROPERTIES, get_profile, properties_for, run_property  # noqa: E402
from rnnconf.properties.profiles import Profile  # noqa: E402
from rnnconf.registry import get_form, get_spec  # noqa: E402
from rnnconf.spec.diagonal import combine as correct_combine  # noqa: E402
from rnnconf.spec.mingru import log_g, mingru_log_gate, softplus  # noqa: E402
from rnnconf.spec.targets import Target  # noqa: E402

# =====================================================================================================================
# the record
# =====================================================================================================================


@dataclass(frozen=True)
class PlantedBug:
    key: str  # test id
    what: str  # one line: what is wrong
    anchor: str  # the real bug class it is modelled on
    target: Target
    base: str  # id of the registered correct form it mutates (traits/supports copied from it)
    expect: frozenset  # properties that must report it as failed
    crash: bool = False  # a crash is the bug: "errored" counts as caught


def _mutant(base_id: str, name: str, fn, doc: str, **over) -> Target:
    """A Target with the declarations of the correct form ``base_id`` (traits, dtypes, supports, domain overrides,
    determinism, skips, kind, combine operator), and ``fn``; ``over`` replaces any of them (a combine bug)."""
    b = get_form(base_id)
    kw = dict(kind=b.kind, traits=b.traits, dtypes=b.dtypes, supports=b.supports, deterministic=b.deterministic,
              domain_overrides=dict(b.domain_overrides), skips=b.skips, combine=b.combine, device=b.device,
              extras=dict(b.extras), dim_rules=dict(b.dim_rules), doc=f"PLANTED BUG ({doc}); otherwise {base_id}")
    kw.update(over)
    return Target(b.spec_id, name, fn, **kw)


def _hgrn_api(dense):
    def fn(x, g, initial_state=None, output_final_state=False, cu_seqlens=None):
        if cu_seqlens is None:
            return dense(x, g, initial_state=initial_state, output_final_state=output_final_state)
        return varlen_by_split(dense, [x, g], initial_state, output_final_state, cu_seqlens)

    return fn


def _min_api(dense, n_in):
    def fn(*xs, initial_state=None, output_final_state=False, cu_seqlens=None):
        if len(xs) != n_in:
            raise TypeError(f"expected {n_in} sequence inputs, got {len(xs)}")
        if cu_seqlens is None:
            return dense(*xs, initial_state=initial_state, output_final_state=output_final_state)
        return varlen_by_split(dense, list(xs), initial_state, output_final_state, cu_seqlens)

    return fn


# =====================================================================================================================
# hgrn torch forms: copies of rnnconf.impls.hgrn with one bug each
# =====================================================================================================================


def _prep(x, g, initial_state):
    cd = compute_dtype(x.dtype)
    B, T, D = x.shape
    h0 = initial_state.to(cd) if initial_state is not None else x.new_zeros(B, D, dtype=cd)
    return x.to(cd), g.to(cd), h0


def _hgrn_sequential(bug):
    def run(x, g, initial_state=None, output_final_state=False):
        xc, gc, h = _prep(x, g, initial_state)
        D = x.shape[2]
        if bug == "gate-clamp":
            gc = gc.clamp(max=-1e-3)  # BUG: "safe" gate, exp(g) < 1 always — no decay-free step exists
        if bug == "block-32" and D > 32:
            gc = gc.clone()
            gc[..., 32:] = gc[..., :D - 32].clone()  # BUG: channel block 1 reads the gate at block 0's offset
        outs = []
        for t in range(x.shape[1]):
            h = torch.exp(gc[:, t]) * h + xc[:, t]
            if bug == "bf16-acc":
                h = h.to(torch.bfloat16).to(xc.dtype)  # BUG: the state accumulator is a bfloat16 register
            outs.append(h)
        o = torch.stack(outs, 1) if outs else xc[:, :0]
        return o.to(x.dtype), (h.to(x.dtype) if output_final_state else None)

    return run


def reversed_combine(p1, p2):
    """BUG: the operands' roles swapped — (a₁a₂, a₁b₂ + b₁) is the combine of the *reversed* sequence."""
    a1, b1 = p1
    a2, b2 = p2
    return a1 * a2, a1 * b2 + b1


def wrong_coef_combine(p1, p2):
    """BUG: an index typo — the earlier b is decayed by its own a (a₁b₁ + b₂ instead of a₂b₁ + b₂)."""
    a1, b1 = p1
    a2, b2 = p2
    return a1 * a2, a1 * b1 + b2


def _hgrn_scan(bug, combine=correct_combine):
    def run(x, g, initial_state=None, output_final_state=False):
        xc, gc, h0 = _prep(x, g, initial_state)
        T = x.shape[1]
        a, b = torch.exp(gc), xc.clone()
        if T:
            b[:, 0] = b[:, 0] + a[:, 0] * h0
        step = 1
        while step < T:
            a_prev = torch.ones_like(a)
            b_prev = torch.zeros_like(b)
            a_prev[:, step:], b_prev[:, step:] = a[:, :-step], b[:, :-step]
            a, b = combine((a_prev, b_prev), (a, b))
            step *= 2
        hT = b[:, -1] if T else h0
        if bug == "final-off-by-one":
            hT = b[:, -2] if T >= 2 else h0  # BUG: the final state is taken one step early: h_{T−1}
        return b.to(x.dtype), (hT.to(x.dtype) if output_final_state else None)

    return run


_NONDET_GEN = torch.Generator().manual_seed(1234)  # advances on every call: two identical calls differ


def _hgrn_chunk(chunk_size, bug):
    def run(x, g, initial_state=None, output_final_state=False):
        xc, gc, h = _prep(x, g, initial_state)
        T = x.shape[1]
        outs = []
        for s in range(0, T, chunk_size):
            xs, gs = xc[:, s:s + chunk_size], gc[:, s:s + chunk_size]
            C = xs.shape[1]
            G = torch.cumsum(gs, 1)  # [B, C, D]
            if bug == "factorized":
                # BUG: h_i = e^{G_i} (h_prev + Σ_{j≤i} e^{−G_j} x_j) — algebraically equal, but e^{−G_j} overflows
                # for a huge negative gate (a state reset): inf · 0 = NaN
                o = torch.exp(G) * (h[:, None] + torch.cumsum(torch.exp(-G) * xs, 1))
                outs.append(o)
                h = o[:, -1]
                continue
            diff = G[:, :, None, :] - G[:, None, :, :]  # [B, i, j, D]
            mask = torch.ones(C, C, dtype=torch.bool, device=x.device).tril()[None, :, :, None]
            if bug == "future-leak":
                mask = torch.ones(C, C, dtype=torch.bool, device=x.device).tril(1)[None, :, :, None]  # BUG: j ≤ i+1
            if bug == "sign-mask":
                mask = diff <= 0  # BUG: "causal" by the sign of the decay difference: also j > i when g ≡ 0 between
            L = torch.exp(torch.where(mask, diff, torch.full_like(diff, -math.inf)))
            if bug == "nan-mask":
                contrib = (L * xs[:, None]) * mask  # BUG: masked by multiplying: 0 · NaN from a later x_j is NaN
            else:
                contrib = torch.where(mask, L * xs[:, None], torch.zeros((), dtype=xs.dtype))
            if bug == "nondet":
                perm = torch.randperm(C, generator=_NONDET_GEN)  # BUG: accumulation order varies call to call
                contrib = contrib[:, :, perm]
            decay = torch.exp(G)
            if bug == "chunk-boundary" and C < chunk_size:
                decay = torch.ones_like(G)  # BUG: the last, partial chunk does not decay the carried state
            o = contrib.sum(2) + decay * h[:, None]
            outs.append(o)
            h = o[:, -1]
        o = torch.cat(outs, 1) if outs else xc[:, :0]
        return o.to(x.dtype), (h.to(x.dtype) if output_final_state else None)

    return run


def _hgrn_initial_state_ignored():
    base = get_form("hgrn/sequential").fn

    def fn(x, g, initial_state=None, output_final_state=False, cu_seqlens=None):
        return base(x, g, None, output_final_state, cu_seqlens)  # BUG: initial_state never forwarded

    return fn


def _hgrn_cu_seqlens_inplace():
    base = get_form("hgrn/sequential").fn

    def fn(x, g, initial_state=None, output_final_state=False, cu_seqlens=None):
        if cu_seqlens is not None:
            offsets = cu_seqlens.clone()
            cu_seqlens[1:] = cu_seqlens[1:] - cu_seqlens[:-1]  # BUG: lengths computed into the caller's tensor
            cu_seqlens = offsets
        return base(x, g, initial_state, output_final_state, cu_seqlens)

    return fn


class _HgrnDropDh0(torch.autograd.Function):
    """hgrn, sequential forward and a hand-written adjoint backward — which forgets d h_0."""

    @staticmethod
    def forward(ctx, x, g, h0):
        cd = compute_dtype(x.dtype)
        xc, gc = x.to(cd), g.to(cd)
        B, T, D = x.shape
        h = h0.to(cd) if h0 is not None else xc.new_zeros(B, D)
        hprev = [h]
        outs = []
        for t in range(T):
            h = torch.exp(gc[:, t]) * h + xc[:, t]
            outs.append(h)
            hprev.append(h)
        o = torch.stack(outs, 1) if outs else xc[:, :0]
        ctx.save_for_backward(gc, torch.stack(hprev[:-1], 1) if T else xc[:, :0])
        ctx.has_h0, ctx.dtypes = h0 is not None, (x.dtype, g.dtype, None if h0 is None else h0.dtype)
        return o.to(x.dtype), h.to(x.dtype)

    @staticmethod
    def backward(ctx, do, dht):
        gc, hp = ctx.saved_tensors
        B, T, D = gc.shape
        lam = dht.to(gc.dtype).clone()
        dx, dg = torch.zeros_like(gc), torch.zeros_like(gc)
        for t in reversed(range(T)):
            lam = lam + do[:, t].to(gc.dtype)
            a = torch.exp(gc[:, t])
            dx[:, t] = lam
            dg[:, t] = lam * a * hp[:, t]
            lam = a * lam
        # BUG: d h_0 should be `lam` (= a_1 λ_1); it is left at zero
        dh0 = torch.zeros_like(lam).to(ctx.dtypes[2]) if ctx.has_h0 else None
        return dx.to(ctx.dtypes[0]), dg.to(ctx.dtypes[1]), dh0


def _hgrn_drop_dh0(x, g, initial_state=None, output_final_state=False):
    o, hT = _HgrnDropDh0.apply(x, g, initial_state)
    return o, (hT if output_final_state else None)


# =====================================================================================================================
# minGRU / minLSTM torch forms
# =====================================================================================================================


def _min_prep(xs, initial_state):
    out_dtype = xs[-1].dtype
    cd = compute_dtype(out_dtype)
    B, T, D = xs[-1].shape
    h0 = initial_state.to(cd) if initial_state is not None else xs[-1].new_zeros(B, D, dtype=cd)
    return [x.to(cd) for x in xs], h0, out_dtype


def _mingru_sequential_gate_cap(z, h_tilde, initial_state=None, output_final_state=False):
    (zc, hc), h, od = _min_prep([z, h_tilde], initial_state)
    a, b = torch.sigmoid(-zc), torch.sigmoid(zc) * hc
    a = a.clamp(max=0.999)  # BUG: "stability" cap on the decay: a saturated gate (a = 1) no longer holds the state
    outs = []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        outs.append(h)
    o = torch.stack(outs, 1) if outs else hc[:, :0]
    return o.to(od), (h.to(od) if output_final_state else None)


def _mingru_scan_cross_batch(z, h_tilde, initial_state=None, output_final_state=False):
    (zc, hc), h0, od = _min_prep([z, h_tilde], initial_state)
    a, b = torch.sigmoid(-zc), torch.sigmoid(zc) * hc
    b = b.clone()
    b[1:] = b[1:] + 2.0**-20 * b[:-1]  # BUG: a batch-stride slip: row b reads a little of row b−1
    T = a.shape[1]
    if T:
        b[:, 0] = b[:, 0] + a[:, 0] * h0
    step = 1
    while step < T:
        a_prev, b_prev = torch.ones_like(a), torch.zeros_like(b)
        a_prev[:, step:], b_prev[:, step:] = a[:, :-step], b[:, :-step]
        a, b = correct_combine((a_prev, b_prev), (a, b))
        step *= 2
    hT = b[:, -1] if T else h0
    return b.to(od), (hT.to(od) if output_final_state else None)


def _mingru_logspace_log_g_h0(z, h_tilde, initial_state=None, output_final_state=False):
    """Copy of rnnconf's minGRU log-space scan with the paper's initial-state convention."""
    (zc, hc), h0, od = _min_prep([z, h_tilde], initial_state)
    log_a, log_gate = -softplus(zc), mingru_log_gate(zc)
    log_b = log_gate + torch.log(hc)
    T = log_b.shape[1]
    a_star = torch.cumsum(log_a, 1)
    if initial_state is not None:
        log_b = torch.cat([log_g(h0)[:, None], log_b], 1)  # BUG: log g(h_0) (the paper's code), not log h_0
        a_star = torch.cat([torch.zeros_like(a_star[:, :1]), a_star], 1)
    log_h = a_star + torch.logcumsumexp(log_b - a_star, 1)
    h = torch.exp(log_h)
    if initial_state is not None:
        h = h[:, 1:]
    hT = h[:, -1] if T else h0
    return h.to(od), (hT.to(od) if output_final_state else None)


def _mingru_sequential_g_h0(z, h_tilde, initial_state=None, output_final_state=False):
    """The same convention trap in the linear-space sequential form: the state starts from g(h_0)."""
    (zc, hc), h, od = _min_prep([z, h_tilde], initial_state)
    if initial_state is not None:
        h = torch.where(h >= 0, h + 0.5, torch.sigmoid(h))  # BUG: g(h_0) — initial_state taken as a pre-activation
    a, b = torch.sigmoid(-zc), torch.sigmoid(zc) * hc
    outs = []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        outs.append(h)
    o = torch.stack(outs, 1) if outs else hc[:, :0]
    return o.to(od), (h.to(od) if output_final_state else None)


def _minlstm_initial_state_ignored():
    base = get_form("minlstm/sequential").fn

    def fn(f, i, h_tilde, initial_state=None, output_final_state=False, cu_seqlens=None):
        return base(f, i, h_tilde, initial_state=None, output_final_state=output_final_state,  # BUG: h_0 dropped
                    cu_seqlens=cu_seqlens)

    return fn


def _minlstm_unnormalized(f, i, h_tilde, initial_state=None, output_final_state=False):
    (fc, ic, hc), h, od = _min_prep([f, i, h_tilde], initial_state)
    a, gin = torch.sigmoid(fc), torch.sigmoid(ic)  # BUG: f′ = σ(f), i′ = σ(i) — the normalisation forgotten
    outs = []
    for t in range(a.shape[1]):
        h = a[:, t] * h + gin[:, t] * hc[:, t]
        outs.append(h)
    o = torch.stack(outs, 1) if outs else hc[:, :0]
    return o.to(od), (h.to(od) if output_final_state else None)


# =====================================================================================================================
# Triton: a copy of rnnconf's fused hgrn forward kernel, with one of two bugs (constexpr BUG); backward is
# rnnconf's own fused backward kernel, so the target supports what triton-fused supports
# =====================================================================================================================


@triton.jit(do_not_specialize=["T"])
def _planted_hgrn_fused_fwd_kernel(x, g, u3, h0, o, ht, cu, T, D, BD: tl.constexpr, USE_H0: tl.constexpr,
                                   STORE_HT: tl.constexpr, IS_VARLEN: tl.constexpr, F64: tl.constexpr,
                                   BUG: tl.constexpr):
    i_d, i_n = tl.program_id(0), tl.program_id(1)
    bos, L = seq_bounds(cu, i_n, T, IS_VARLEN)
    d = i_d * BD + tl.arange(0, BD)
    md = d < D
    if BUG == 1:
        ms = md & (d * 0 + (i_d + 1) * BD <= D)  # BUG: the store mask covers full channel blocks only
    else:
        ms = md
    h = upcast(tl.zeros([BD], dtype=tl.float32), F64)
    if USE_H0:
        h += upcast(tl.load(h0 + i_n.to(tl.int64) * D + d, mask=md, other=0.0), F64)
    h_prev = h
    p = bos * D + d
    for _ in range(0, L):
        xt = upcast(tl.load(x + p, mask=md, other=0.0), F64)
        gt = upcast(tl.load(g + p, mask=md, other=0.0), F64)
        h_prev = h
        h = exp_(gt) * h + xt
        tl.store(o + p, h, mask=ms)
        p += D
    if STORE_HT:
        if BUG == 2:
            tl.store(ht + i_n.to(tl.int64) * D + d, h_prev, mask=md)  # BUG: final state from the step before last
        else:
            tl.store(ht + i_n.to(tl.int64) * D + d, h, mask=md)


_TRITON_PARTIAL = DiagForm("hgrn/planted-triton-partial-block", _planted_hgrn_fused_fwd_kernel, FUSED.bwd, n_in=2,
                           scan=False, meta={"BUG": 1})
_TRITON_FINAL = DiagForm("hgrn/planted-triton-final-step", _planted_hgrn_fused_fwd_kernel, FUSED.bwd, n_in=2,
                         scan=False, meta={"BUG": 2})


def _triton(form):
    def fn(x, g, initial_state=None, output_final_state=False, cu_seqlens=None):
        return diag_apply(form, [x, g], initial_state, output_final_state, cu_seqlens)

    return fn


# =====================================================================================================================
# the catalogue
# =====================================================================================================================


def _bugs() -> list[PlantedBug]:
    B = []

    def add(key, base, name, fn, expect, what, anchor, **over):
        B.append(PlantedBug(key, what, anchor, _mutant(base, name, fn, what, **over), base, frozenset(expect)))

    add("chunk-boundary", "hgrn/chunk16", "planted-chunk-boundary", _hgrn_api(_hgrn_chunk(16, "chunk-boundary")),
        {"oracle", "state-carry"},
        "last partial chunk (T % C ≠ 0) does not decay the carried state",
        "#12 vllm #23279 / sglang #31833 (chunk state at misaligned boundary); #7 fla #1142 (T not a multiple of 64)")
    add("initial-state-ignored", "minlstm/sequential", "planted-initial-state-ignored",
        _minlstm_initial_state_ignored(), {"oracle", "state-carry"},
        "initial_state is accepted and silently ignored (starts from 0)",
        "#1 fla #494/#285 (cached/chunked inference ≠ whole sequence)")
    add("initial-state-ignored-hgrn", "hgrn/sequential", "planted-initial-state-ignored", _hgrn_initial_state_ignored(),
        {"oracle", "state-carry"}, "initial_state is accepted and silently ignored (starts from 0)",
        "#1 fla #494/#285")
    add("final-state-off-by-one", "hgrn/scan", "planted-final-state-off-by-one",
        _hgrn_api(_hgrn_scan("final-off-by-one")), {"oracle", "state-carry"},
        "final_state is h_{T−1} instead of h_T",
        "#1 fla #494/#285 (cached inference differs); #12 (state read at the wrong boundary)")
    add("future-leak", "hgrn/chunk7", "planted-future-leak", _hgrn_api(_hgrn_chunk(7, "future-leak")),
        {"causality-perturb", "causality-nan"},
        "intra-chunk causal mask off by one: o_t includes x_{t+1}",
        "brief class 4: causal-mask off-by-one (no anchors.md entry names one)")
    add("nan-masked-multiply", "hgrn/chunk16", "planted-nan-masked-multiply", _hgrn_api(_hgrn_chunk(16, "nan-mask")),
        {"causality-nan"}, "causal mask applied by multiplying: 0·NaN from future x_j reaches o_t",
        "#5 fla #77/#99 (inf/NaN through masked exp); #8 fla PR #1214 (NaN only on some inputs)")
    add("bf16-accumulation", "hgrn/sequential", "planted-bf16-accumulation",
        _hgrn_api(_hgrn_sequential("bf16-acc")), {"oracle"},
        "declared fp32 accumulation, accumulates the state in bfloat16", "#9 fla #29 (bf16 error 0.083 vs 0.002)")
    add("gate-clamp", "hgrn/sequential", "planted-gate-clamp", _hgrn_api(_hgrn_sequential("gate-clamp")),
        {"oracle"}, "log-gate clamped to ≤ −1e-3 (no decay-free step)",
        "brief class 7; cf. #6 fla #461 (wrong results exactly at log-decay 0)")
    add("gate-cap-mingru", "mingru/sequential", "planted-gate-cap", _min_api(_mingru_sequential_gate_cap, 2),
        {"oracle", "gates-sum-to-one"}, "minGRU decay σ(−z) capped at 0.999",
        "brief class 7 (gate clamped below 1); cf. #6 fla #461")
    add("cross-batch-leak", "mingru/scan", "planted-cross-batch-leak", _min_api(_mingru_scan_cross_batch, 2),
        {"batch-independence"}, "batch row b reads 2⁻²⁰ of row b−1's input",
        "#2 fla #547 (wrong stride/layout); #13 triton #9230 (shared buffers)")
    add("block-32", "hgrn/sequential", "planted-block-32", _hgrn_api(_hgrn_sequential("block-32")), {"oracle"},
        "channels d ≥ 32 (second 32-wide block) use the gate of channel d − 32",
        "#7 fla #1142 (wrong only past a block size)")
    add("reversed-combine", "hgrn/scan", "planted-reversed-combine",
        _hgrn_api(_hgrn_scan(None, combine=reversed_combine)), {"oracle"},
        "scan combine with operand roles reversed: a₁b₂ + b₁ (exposed as .combine)",
        "brief class 10 (scan operator order)", combine=reversed_combine)
    add("wrong-coef-combine", "hgrn/scan", "planted-wrong-coef-combine",
        _hgrn_api(_hgrn_scan(None, combine=wrong_coef_combine)), {"oracle", "combine-associative"},
        "scan combine decays b₁ by a₁ instead of a₂ (exposed as .combine)", "brief class 10 (scan operator)",
        combine=wrong_coef_combine)
    add("log-g-h0", "mingru/logspace", "planted-log-g-h0", _min_api(_mingru_logspace_log_g_h0, 2),
        {"oracle", "state-carry"}, "log-space minGRU seeds the scan with log g(h_0) instead of log h_0",
        "paper's initial-state convention (rnnconf.spec.mingru INITIAL-STATE CONVENTION)")
    add("g-h0-sequential", "mingru/sequential", "planted-g-h0", _min_api(_mingru_sequential_g_h0, 2),
        {"oracle", "state-carry", "gates-sum-to-one"}, "sequential minGRU starts from g(h_0) instead of h_0",
        "paper's initial-state convention")
    add("triton-partial-block", "hgrn/triton-fused", "planted-triton-partial-block", _triton(_TRITON_PARTIAL),
        {"poisoned-allocations"}, "Triton fused fwd: store mask skips the partial channel block (D not a power of 2)",
        "fla tests/conftest.py NaN-filled allocations; #17 FlashQLA PR #28 (outputs left unwritten)")
    add("triton-final-step", "hgrn/triton-fused", "planted-triton-final-step", _triton(_TRITON_FINAL),
        {"oracle", "state-carry"}, "Triton fused fwd stores the final state from the step before last",
        "#12 vllm #23279 (state read at the wrong step)")
    add("grad-drops-dh0", "hgrn/sequential", "planted-grad-drops-dh0", _hgrn_api(_hgrn_drop_dh0), {"gradients"},
        "hand-written backward returns d h_0 = 0", "#7 fla #1142 (dropped gradient term); #17 FlashQLA PR #28")
    add("cu-seqlens-inplace", "hgrn/sequential", "planted-cu-seqlens-inplace", _hgrn_cu_seqlens_inplace(),
        {"varlen"}, "overwrites the caller's cu_seqlens with sequence lengths", "#10 fla #838/#1086")
    add("nondeterministic", "hgrn/chunk16", "planted-nondeterministic", _hgrn_api(_hgrn_chunk(16, "nondet")),
        {"determinism"}, "intra-chunk accumulation order varies call to call (atomics)",
        "#14 flash-attention #2244/#414; mamba tests/test_determinism.py")
    add("factorized-chunk", "hgrn/chunk7", "planted-factorized-chunk", _hgrn_api(_hgrn_chunk(7, "factorized")),
        {"reset-forgets", "oracle"}, "chunk as e^{G_i}(h + Σ e^{−G_j} x_j): overflow → NaN on a state reset",
        "#3 fla #20 (reset works recurrently, not in the chunk kernel); #5 fla #77/#99")
    add("sign-mask", "hgrn/chunk7", "planted-sign-mask", _hgrn_api(_hgrn_chunk(7, "sign-mask")), {"oracle"},
        "causal mask taken from the sign of G_i − G_j: j > i leaks in wherever g ≡ 0 between",
        "#6 fla #461 (safe_exp wrong when the log-decay is exactly zero)")
    add("minlstm-unnormalized", "minlstm/sequential", "planted-unnormalized-gates",
        _min_api(_minlstm_unnormalized, 3), {"oracle", "gates-sum-to-one"},
        "minLSTM gates σ(f), σ(i) used without the normalisation f′ + i′ = 1",
        "arXiv:2410.01201 minLSTM definition (no anchors.md entry)")
    from planted_fox import fox_bugs

    fox_bugs(add)
    from planted_delta import delta_bugs, delta_product_bugs

    delta_bugs(add)
    delta_product_bugs(add)
    from planted_aaren import aaren_bugs

    aaren_bugs(add)
    from planted_nonlinear import nonlinear_bugs

    nonlinear_bugs(add)
    from planted_pararnn import pararnn_bugs

    pararnn_bugs(add)
    from planted_ssd import ssd_bugs

    ssd_bugs(add)
    from planted_probes import probe_bugs

    probe_bugs(add)
    return B


BUGS: list[PlantedBug] = _bugs()
BY_KEY = {b.key: b for b in BUGS}


# =====================================================================================================================
# running
# =====================================================================================================================


def planted_profile() -> Profile:
    """``ci`` at its full counts and without shrinking (:meth:`Profile.confirming`: a planted bug is meant to fail,
    and shrinking its counterexample costs up to ~70 s per property without changing the verdict), on the device the
    Triton kernels run on (the CPU under the interpreter)."""
    return replace(get_profile("ci").confirming(), device=kernel_device())


def property_dtypes(prop, target):
    """As tests/properties/test_builtin_forms.py: every dtype for per-dtype properties, else the primary one."""
    if prop.all_dtypes:
        return tuple(target.dtypes)
    return (torch.float32 if torch.float32 in target.dtypes else target.dtypes[0],)


@dataclass
class BugRun:
    bug: PlantedBug
    verdicts: dict = field(default_factory=dict)  # prop name -> list of Verdict (one per dtype run)
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    not_run: list = field(default_factory=list)  # applicable properties left out by early_stop

    def status(self, prop: str) -> str:
        """failed / errored / passed / skipped / not-applicable / not-run (the worst over its dtypes)."""
        sts = [v.status for v in self.verdicts.get(prop, [])]
        for s in ("failed", "errored", "passed", "skipped", "not-applicable"):
            if s in sts:
                return s
        return "not-run"

    def caught_by(self) -> list[str]:
        """Properties with a failed verdict (or errored, for a bug that is a crash)."""
        ok = ("failed", "errored") if self.bug.crash else ("failed",)
        return [p for p in self.verdicts if any(v.status in ok and not v.internal for v in self.verdicts[p])]

    def _with(self, pred) -> list[str]:
        return [p for p in self.verdicts if any(pred(v) for v in self.verdicts[p])]

    def target_errored(self) -> list[str]:
        """The mutant raised (not a crash bug: the mutant itself is broken beyond its planted bug)."""
        return self._with(lambda v: v.status == "errored" and not v.internal)

    def internal_errors(self) -> list[str]:
        """rnnconf raised inside a property (a defect of rnnconf, reported, never a catch)."""
        return self._with(lambda v: v.status == "errored" and v.internal)

    def passed(self) -> list[str]:
        return [p for p in self.verdicts if self.status(p) == "passed"]

    def skipped(self) -> list[str]:
        return [p for p in self.verdicts if self.status(p) == "skipped"]

    def first_bad(self, prop: str):
        return next((v for v in self.verdicts.get(prop, []) if v.status in ("failed", "errored")), None)

    def caught_dtype(self, prop: str) -> str:
        v = self.first_bad(prop)
        return v.dtype if v is not None else ""

    def summary(self) -> str:
        b = self.bug
        lines = [f"planted bug {b.key!r} ({b.target.id}, mutates {b.base}): {b.what}  [{b.anchor}]",
                 f"  expected to be caught by: {', '.join(sorted(b.expect))}",
                 f"  caught by: {', '.join(f'{p}[{self.caught_dtype(p)}]' for p in self.caught_by()) or 'NOTHING'}",
                 f"  passed:    {', '.join(self.passed()) or '-'}"]
        for name, ps in (("skipped", self.skipped()), ("not run (early stop)", self.not_run),
                         ("target errored", self.target_errored()), ("rnnconf internal error", self.internal_errors())):
            if ps:
                lines.append(f"  {name}: {', '.join(ps)}")
        for p in dict.fromkeys(self.caught_by() + self.target_errored() + self.internal_errors()):
            v = self.first_bad(p)
            lines.append(f"  - {p} [{v.dtype}] {v.status}: {v.reason[:400]}")
        return "\n".join(lines)

    def row(self) -> dict:
        return {"bug": self.bug.key, "target": self.bug.target.id, "base": self.bug.base,
                "expect": sorted(self.bug.expect),
                "caught": {p: self.caught_dtype(p) for p in self.caught_by()}, "passed": self.passed(),
                "not_run": self.not_run, "target_errored": self.target_errored(),
                "internal_errors": self.internal_errors(),
                "seconds": round(self.seconds, 1), "cpu": round(self.cpu_seconds, 1)}


def run_bug(bug: PlantedBug, profile: Profile | None = None, early_stop: bool = False) -> BugRun:
    """Every applicable property on the mutant (dtypes as the built-in suite), stopping a per-dtype property at its
    first failing dtype; with ``early_stop``, stopping altogether once every expected property has failed."""
    profile = profile or planted_profile()
    spec = get_spec(bug.target.spec_id)
    run = BugRun(bug)
    t0, c0 = time.perf_counter(), time.process_time()
    props = [p for p in properties_for(spec, bug.target) if not p.not_applicable(spec, bug.target)]
    props.sort(key=lambda p: p.name not in bug.expect)  # expected first, so that early_stop is effective
    for k, prop in enumerate(props):
        if early_stop and all(run.status(p) == "failed" for p in bug.expect):
            run.not_run = [p.name for p in props[k:]]
            break
        vs = run.verdicts.setdefault(prop.name, [])
        for dt in property_dtypes(prop, bug.target):
            v = run_property(prop, spec, bug.target, dt, profile)
            vs.append(v)
            if v.status in ("failed", "errored"):
                break
    run.seconds, run.cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    return run


def run_base_control(run: BugRun, profile: Profile | None = None) -> dict:
    """A/B control: each expected property that caught the mutant, run on the unmutated base form in the dtype where
    it caught the mutant (the ci profile is derandomized and the declarations are the base's, so the base sees the
    same examples).  Returns {prop: Verdict}."""
    profile = profile or planted_profile()
    base = get_form(run.bug.base)
    spec = get_spec(base.spec_id)
    out = {}
    for p in sorted(run.bug.expect):
        v = run.first_bad(p)
        if v is None:
            continue
        out[p] = run_property(PROPERTIES[p], spec, base, getattr(torch, v.dtype), profile)
    return out


_DT = {"float64": "f64", "float32": "f32", "float16": "f16", "bfloat16": "bf16"}


def format_table(rows: list[dict]) -> str:
    """Rows of :meth:`BugRun.row`: bug, expected properties, properties that caught it (first failing dtype), those
    that passed, time; notes (missed expectations, errors, a base that fails the same property) on a second line."""
    order = [b.key for b in BUGS]
    rows = sorted(rows, key=lambda r: order.index(r["bug"]) if r["bug"] in order else len(order))
    w = max([len(r["bug"]) for r in rows] + [11])
    lines = [f"{'planted bug':<{w}}  {'expected':<37}  caught by [first failing dtype]  //  passed  //  wall s, cpu s"]
    lines.append("-" * 118)
    for r in rows:
        caught = " ".join(f"{p}[{_DT.get(d, d)}]" for p, d in r["caught"].items()) or "NOT CAUGHT"
        lines.append(f"{r['bug']:<{w}}  {','.join(r['expect']):<37}  {caught}  //  {' '.join(r['passed']) or '-'}"
                     f"  //  {r['seconds']:.1f}, {r.get('cpu', 0.0):.1f}")
        notes = []
        miss = [p for p in r["expect"] if p not in r["caught"]]
        if miss:
            notes.append(f"MISSED expected: {','.join(miss)}")
        if r.get("not_run"):
            notes.append(f"{len(r['not_run'])} more properties not run (early stop; PLANTED_FULL=1 runs them)")
        if r.get("target_errored"):
            notes.append(f"target errored in: {','.join(r['target_errored'])}")
        if r.get("internal_errors"):
            notes.append(f"rnnconf internal error in: {','.join(r['internal_errors'])}")
        if r.get("control"):
            notes.append(f"unmutated base {r['base']} {r['control']}")
        if notes:
            lines.append(f"{'':<{w}}  ^ " + "; ".join(notes))
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    keys = sys.argv[1:] or [b.key for b in BUGS]
    early = os.environ.get("PLANTED_EARLY_STOP", "") not in ("", "0")
    rows = []
    for k in keys:
        r = run_bug(BY_KEY[k], early_stop=early)
        row = r.row()
        ctrl = run_base_control(r)
        bad = {p: v for p, v in ctrl.items() if v.status != "passed"}
        row["control"] = ("also fails " + ", ".join(f"{p}[{v.dtype}]" for p, v in bad.items())) if bad else ""
        rows.append(row)
        print(r.summary(), flush=True)
        for p, v in bad.items():
            print(f"  control: base {r.bug.base} {v.status} {p}[{v.dtype}]: {v.reason[:300]}")
    print()
    print(format_table(rows))
