"""Planted bugs for Mamba-2's SSD (rnnconf/spec/ssd.py): each mutant is a form of :mod:`rnnconf.impls.ssd` with
one part replaced by a copy differing in the lines marked ``# BUG``.

``ssd_bugs(add)`` registers them into the catalogue of :mod:`planted_bugs`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from rnnconf.impls import ssd as S


def _api(core):
    """A dense core ``core(x, dt, A, B, C, D, dt_bias, initial_state, output_final_state, cu_seqlens, q)`` in the
    spec's signature (cu_seqlens handed to the core: the packed-varlen bug needs it)."""
    def fn(x, dt, A, B, C, D, dt_bias, initial_state=None, output_final_state=False, cu_seqlens=None,
           chunk_size=None):
        return core(x, dt, A, B, C, D, dt_bias, initial_state, output_final_state, cu_seqlens, chunk_size)

    return fn


def _split(core):
    """varlen by splitting (the correct way) around a dense core taking (…, q)."""
    def fn(x, dt, A, B, C, D, dt_bias, initial_state, output_final_state, cu_seqlens, q):
        if cu_seqlens is None:
            return core(x, dt, A, B, C, D, dt_bias, initial_state, output_final_state, q)

        def dense(dt, B, C, x, initial_state, output_final_state):
            return core(x, dt, A, B, C, D, dt_bias, initial_state, output_final_state, q)

        return S.varlen_by_split(dense, [dt, B, C, x], initial_state, output_final_state, cu_seqlens)

    return fn


# ---- packed varlen: the state reset only where a sequence starts on a chunk boundary -----------------------------
def _packed_chunk_reset_aligned(Q):
    def fn(x, dt, A, B, C, D, dt_bias, initial_state, output_final_state, cu_seqlens, q):
        q = int(q or Q)
        if cu_seqlens is None:
            return S._chunked(Q)(x, dt, A, B, C, D, dt_bias, initial_state, output_final_state, q)
        cd, dl, dA, xc, Bh, Ch, Dc = S._prep(x, dt, A, B, C, D, dt_bias)
        cu = [int(v) for v in cu_seqlens]
        n = len(cu) - 1
        Bsz, T, H, P = x.shape
        N = Bh.shape[-1]
        h0 = initial_state.to(cd) if initial_state is not None else x.new_zeros(n, H, P, N, dtype=cd)
        xd = dl[..., None] * xc
        starts = {c: i for i, c in enumerate(cu[:-1])}
        St, ys, finals = h0[:1], [], [None] * n
        for c0 in range(0, T, q):
            if c0 in starts:  # BUG: a sequence starting inside a chunk inherits the previous sequence's state
                St = h0[starts[c0]:starts[c0] + 1]
            sl = slice(c0, min(c0 + q, T))
            y, St = S._quad(xd[:, sl], dA[:, sl], Bh[:, sl], Ch[:, sl], St)
            ys.append(y)
            for i in range(n):
                if cu[i + 1] == sl.stop and cu[i + 1] > cu[i]:
                    finals[i] = St[0]
        for i in range(n):
            if finals[i] is None:
                finals[i] = h0[i] if cu[i + 1] == cu[i] else St[0]
        y = (torch.cat(ys, 1) if ys else xc[:, :0]) + Dc[:, None] * xc
        return y.to(x.dtype), (torch.stack(finals).to(x.dtype) if output_final_state else None)

    return fn


# ---- the initial state dropped from every chunk state after the first -------------------------------------------
def _quad_no_carry(xd, dA, Bh, Ch, S0):
    dAh = dA.transpose(1, 2)
    L = torch.exp(S.segsum(dAh))
    CB = torch.einsum("bthn,bshn->bhts", Ch, Bh)
    T = xd.shape[1]
    low = torch.ones(T, T, dtype=torch.bool).tril()
    prod = (CB * L)[..., None] * xd.transpose(1, 2)[:, :, None]
    y = torch.where(low[..., None], prod, torch.zeros((), dtype=prod.dtype)).sum(3).transpose(1, 2)
    cum = torch.cumsum(dAh, -1)
    y = y + torch.exp(cum).transpose(1, 2)[..., None] * torch.einsum("bthn,bhpn->bthp", Ch, S0)
    Sn = torch.einsum("bhs,bshp,bshn->bhpn", L[:, :, -1], xd, Bh)  # BUG: the decayed S0 term is left out
    return y, Sn


def _patched(name, replacement, core):
    """``core`` run with ``rnnconf.impls.ssd.<name>`` replaced (the correct form's other parts unchanged)."""
    def fn(*a):
        orig = getattr(S, name)
        setattr(S, name, replacement)
        try:
            return core(*a)
        finally:
            setattr(S, name, orig)

    return fn


# ---- the segsum as a difference of two cumulative sums ----------------------------------------------------------
def _segsum_unstable(dA):
    T = dA.shape[-1]
    cum = torch.cumsum(dA, -1)
    seg = cum[..., :, None] - cum[..., None, :]  # BUG: cum_t − cum_s, inf − inf once the log-decays are huge
    k = torch.arange(T)
    return torch.where(k[:, None] >= k[None, :], seg, torch.tensor(-float("inf"), dtype=dA.dtype))


# ---- padding to a multiple of the chunk with raw dt = 0 (Δ = softplus(dt_bias) ≠ 0 there) ------------------------
def _pad_raw_dt_zero(Q):
    def fn(x, dt, A, B, C, D, dt_bias, initial_state, output_final_state, q):
        q = int(q or Q)
        T = x.shape[1]
        pad = (-T) % q
        if pad:  # BUG: dt = 0 before softplus(dt + dt_bias) is a decay step, not an identity step
            x, B, C = (torch.cat([v, v.new_zeros((v.shape[0], pad) + v.shape[2:])], 1) for v in (x, B, C))
            dt = torch.cat([dt, dt.new_zeros((dt.shape[0], pad) + dt.shape[2:])], 1)
        y, st = S._chunked(Q)(x, dt, A, B, C, D, dt_bias, initial_state, output_final_state, q)
        return y[:, :T], st

    return fn


# ---- grouped B/C read by head h % G instead of h // R --------------------------------------------------------------
def _prep_group_modulo(x, dt, A, B, C, D, dt_bias):
    cd = S.compute_dtype(x.dtype)
    G = B.shape[2]
    R = x.shape[2] // G
    dl = F.softplus(dt.to(cd) + dt_bias.to(cd))
    Bh, Ch = (v.to(cd).repeat(1, 1, R, 1) for v in (B, C))  # BUG: head h reads group h % G (mamba's is h // R)
    return cd, dl, dl * A.to(cd), x.to(cd), Bh, Ch, D.to(cd)


# ---- ZOH for B where the spec has Euler-B (B̄ = Δ·B) ---------------------------------------------------------------
def _sequential_zoh(x, dt, A, B, C, D, dt_bias, initial_state, output_final_state, q=None):
    cd, dl, dA, xc, Bh, Ch, Dc = S._prep(x, dt, A, B, C, D, dt_bias)
    St = S._state0(x, Bh, initial_state, cd)
    Ac = A.to(cd)
    # BUG: (exp(ΔA) − 1)/A, zero-order hold, where mamba's chunk scan (and the spec) multiply by Δ
    bw = torch.where(Ac != 0, torch.expm1(dA) / torch.where(Ac != 0, Ac, torch.ones_like(Ac)), dl)
    ys = []
    for t in range(x.shape[1]):
        St = torch.exp(dA[:, t])[..., None, None] * St + (bw[:, t, :, None] * xc[:, t])[..., None] * Bh[:, t, :, None]
        ys.append(torch.einsum("bhpn,bhn->bhp", St, Ch[:, t]) + Dc[:, None] * xc[:, t])
    y = torch.stack(ys, 1) if ys else xc[:, :0]
    return y.to(x.dtype), (St.to(x.dtype) if output_final_state else None)


def ssd_bugs(add) -> None:
    add("ssd-packed-chunk-reset-aligned", "ssd/chunk-16", "planted-packed-chunk-reset-aligned",
        _api(_packed_chunk_reset_aligned(16)), {"varlen"},
        "packed varlen chunk scan that resets the state only where a sequence starts on a chunk boundary: a "
        "sequence starting inside a chunk carries its predecessor's state",
        "issue 16 (chunk state at misaligned sequence/chunk boundaries); vllm #23279, sglang #31833")
    add("ssd-initial-state-after-first-chunk", "ssd/chunk-5", "planted-initial-state-after-first-chunk",
        _api(_split(_patched("_quad", _quad_no_carry, S._chunked(5)))), {"oracle", "state-carry"},
        "chunk state update without the carried state's decayed term: the initial state (and every earlier "
        "chunk) is forgotten after the first chunk", "issue 16 (initial state ignored after the first chunk)")
    add("ssd-segsum-unstable", "ssd/quadratic", "planted-segsum-unstable",
        _api(_split(_patched("segsum", _segsum_unstable, S._chunked(0)))), {"ssd-segsum-stable"},
        "segsum formed as cumsum_t − cumsum_s (inf − inf = NaN once a head's log-decays are huge)",
        "issue 16 (unstable segsum); Mamba-2's ssd_minimal segsum note (models-2.md §2)")
    add("ssd-pad-raw-dt-zero", "ssd/chunk-16", "planted-pad-raw-dt-zero", _api(_split(_pad_raw_dt_zero(16))),
        {"state-carry"},
        "sequence padded to a multiple of the chunk with raw dt = 0: Δ = softplus(dt_bias) > 0 there, so the "
        "padding decays the final state", "issue 16 (padding with softplus(bias) ≠ 0); mamba #368")
    add("ssd-group-modulo", "ssd/sequential", "planted-group-modulo",
        _api(_split(_patched("_prep", _prep_group_modulo, S._sequential))), {"oracle"},
        "grouped B/C: head h reads group h % G instead of h // R",
        "issue 16 (grouped B/C indexed by the wrong head); mamba-ssm's 'b l (g r) …' head layout")
    add("ssd-zoh-for-euler", "ssd/sequential", "planted-zoh-for-euler", _api(_split(_sequential_zoh)), {"oracle"},
        "zero-order hold B̄ = (exp(ΔA) − 1)/A·B where the spec (mamba's chunk scan) has Euler B̄ = Δ·B",
        "issue 16 (ZOH used where Euler-B is specified)")
