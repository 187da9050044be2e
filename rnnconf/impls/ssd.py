"""Torch forms of ``ssd`` (Mamba-2's SSD, :mod:`rnnconf.spec.ssd`; mamba-ssm's layout, heads h read group h // R):

* ``sequential``: H_t = exp(Δ_t A) H_{t−1} + Δ_t x_t B_tᵀ, y_t = H_t C_t + D x_t, step by step.
* ``quadratic``: the dual form over the whole sequence, Y = (L ∘ C Bᵀ)(Δ ⊙ X) + exp(cum_t A-mass) C_t H_0 + D X with
  L_ts = exp(Σ_{s<k≤t} Δ_k A): that sum is a cumulative sum over k of *masked* terms (ΔA_k where k > s, else 0), so
  no two far-apart cumulative sums are ever differenced (``segsum``).
* ``chunk-Q``: the chunkwise form — per chunk of Q steps the quadratic form gives the diagonal block and the chunk's
  own state, the carried state is decayed by the chunk's total and read off-diagonally by exp(cum_t)·C_t H_{c−1};
  chunks run in order (the state passing is a scan over chunk boundaries).  Any Q, T % Q ≠ 0; ``chunk_size``
  overrides Q per call (the ``ssd-chunk-size`` invariant calls it with many).

Half inputs compute in float32; Δ = softplus(dt + dt_bias) is torch's (threshold 20), as mamba-ssm's.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..spec.errors import Traits
from ..spec.targets import FEATURES, Target, register_form
from ._common import compute_dtype, varlen_by_split


def _prep(x, dt, A, B, C, D, dt_bias):
    cd = compute_dtype(x.dtype)
    R = x.shape[2] // B.shape[2]
    dl = F.softplus(dt.to(cd) + dt_bias.to(cd))  # [B, T, H]
    dA = dl * A.to(cd)
    Bh, Ch = (v.to(cd).repeat_interleave(R, 2) for v in (B, C))  # [B, T, H, N]
    return cd, dl, dA, x.to(cd), Bh, Ch, D.to(cd)


def _state0(x, Bh, initial_state, cd):
    Bsz, _, H, P = x.shape
    N = Bh.shape[-1]
    return initial_state.to(cd) if initial_state is not None else x.new_zeros(Bsz, H, P, N, dtype=cd)


def segsum(dA: torch.Tensor) -> torch.Tensor:
    """[.., T] → [.., T, T]: Σ_{s<k≤t} dA_k for s ≤ t, −inf above the diagonal; a cumsum over k of the terms with
    k > s (the others masked to 0), never cum_t − cum_s."""
    T = dA.shape[-1]
    k = torch.arange(T, device=dA.device)
    terms = torch.where(k[:, None] > k[None, :], dA[..., :, None], torch.zeros((), dtype=dA.dtype))  # [.., k, s]
    seg = torch.cumsum(terms, -2)  # [.., t, s]
    return torch.where(k[:, None] >= k[None, :], seg, torch.tensor(-float("inf"), dtype=dA.dtype))


def _quad(xd, dA, Bh, Ch, S0):
    """One block: y (without D) and the state after it, from the state S0 before it.  xd = Δ ⊙ x [B, T, H, P]."""
    dAh = dA.transpose(1, 2)  # [B, H, T]
    L = torch.exp(segsum(dAh))  # [B, H, t, s]
    CB = torch.einsum("bthn,bshn->bhts", Ch, Bh)
    # the causal mask selects (s ≤ t) rather than multiplies by 0: a NaN at a later step never reaches y_t
    T = xd.shape[1]
    low = torch.ones(T, T, dtype=torch.bool, device=xd.device).tril()
    prod = (CB * L)[..., None] * xd.transpose(1, 2)[:, :, None]  # [B, H, t, s, P]
    y = torch.where(low[..., None], prod, torch.zeros((), dtype=prod.dtype)).sum(3).transpose(1, 2)
    cum = torch.cumsum(dAh, -1)  # from the block's start: a single cumulative sum, never differenced
    y = y + torch.exp(cum).transpose(1, 2)[..., None] * torch.einsum("bthn,bhpn->bthp", Ch, S0)
    # the state after the block: row t = T − 1 of L, plus the decayed S0
    last = L[:, :, -1]  # [B, H, s]
    S = torch.exp(cum[..., -1])[..., None, None] * S0 + torch.einsum("bhs,bshp,bshn->bhpn", last, xd, Bh)
    return y, S


def _sequential(x, dt, A, B, C, D, dt_bias, initial_state, output_final_state, chunk_size=None):
    cd, dl, dA, xc, Bh, Ch, Dc = _prep(x, dt, A, B, C, D, dt_bias)
    S = _state0(x, Bh, initial_state, cd)
    ys = []
    for t in range(x.shape[1]):
        S = torch.exp(dA[:, t])[..., None, None] * S \
            + (dl[:, t, :, None] * xc[:, t])[..., None] * Bh[:, t, :, None, :]
        ys.append(torch.einsum("bhpn,bhn->bhp", S, Ch[:, t]) + Dc[:, None] * xc[:, t])
    y = torch.stack(ys, 1) if ys else xc[:, :0]
    return y.to(x.dtype), (S.to(x.dtype) if output_final_state else None)


def _chunked(Q):
    def run(x, dt, A, B, C, D, dt_bias, initial_state, output_final_state, chunk_size=None):
        q = int(chunk_size or Q)
        cd, dl, dA, xc, Bh, Ch, Dc = _prep(x, dt, A, B, C, D, dt_bias)
        S = _state0(x, Bh, initial_state, cd)
        xd = dl[..., None] * xc
        T = x.shape[1]
        ys = []
        for c0 in range(0, T, q if q else max(T, 1)):
            sl = slice(c0, c0 + (q if q else T))
            y, S = _quad(xd[:, sl], dA[:, sl], Bh[:, sl], Ch[:, sl], S)
            ys.append(y)
        y = (torch.cat(ys, 1) if ys else xc[:, :0]) + Dc[:, None] * xc
        return y.to(x.dtype), (S.to(x.dtype) if output_final_state else None)

    return run


def _api(core):
    def fn(x, dt, A, B, C, D, dt_bias, initial_state=None, output_final_state=False, cu_seqlens=None,
           chunk_size=None):
        if cu_seqlens is None:
            return core(x, dt, A, B, C, D, dt_bias, initial_state, output_final_state, chunk_size)

        def dense(dt, B, C, x, initial_state, output_final_state):
            return core(x, dt, A, B, C, D, dt_bias, initial_state, output_final_state, chunk_size)

        return varlen_by_split(dense, [dt, B, C, x], initial_state, output_final_state, cu_seqlens)

    fn.__doc__ = core.__doc__
    return fn


_SEQ = Traits(accumulate="float32", cumsum="none")
register_form(Target("ssd", "sequential", _api(_sequential), traits=_SEQ, supports=frozenset(FEATURES),
                     doc="step-by-step recurrence"))
# quadratic: one block spanning the sequence (chunk = T); its cumulative sums run over the whole sequence
register_form(Target("ssd", "quadratic", _api(_chunked(0)),
                     traits=Traits(accumulate="float32", cumsum="full", chunk_size=2**31, layout_dependent=True),
                     supports=frozenset(FEATURES), doc="dual (quadratic) form over a stable masked segsum"))
for _Q in (16, 5):
    register_form(Target("ssd", f"chunk-{_Q}", _api(_chunked(_Q)),
                         traits=Traits(accumulate="float32", cumsum="chunk", chunk_size=_Q, layout_dependent=True),
                         supports=frozenset(FEATURES), extras={"chunk_kw": "chunk_size"},
                         doc=f"chunkwise four-step form, chunk = {_Q} (any chunk_size per call)"))
