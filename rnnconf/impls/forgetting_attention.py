"""Torch forms of ``forgetting-attention`` (FoX) and its ACP-pruned variant ``forgetting-attention-acp``.

* ``dense``: the quadratic masked softmax, D = c_i − c_j from c = cumsum(g), float64-capable (the gradient reference).
* ``tiled-BMxBN``: FlashAttention's online softmax over (query block × key block) tiles — a running max m, a running
  denominator ℓ and an accumulator rescaled by exp(m_old − m_new) whenever a new key tile raises the max.  Any tile
  sizes; T need not be a multiple of them.  With ``log_eps`` (ACP, arXiv 2504.06949) a key tile is skipped iff its
  largest decay bias — the top-right corner D_{i₀, j_last} — is below δ = −(2U + ln N) + ln ε, U = s·max‖q‖·max‖k‖
  per (batch, head), N the key length; tiles crossing the diagonal are never pruned.  ``return_pruning=True``
  returns ``(o, {"pruned": bool [B, H, nQ, nK], "block_m": BM, "block_n": BN})``.

All compute in float32 for half inputs (float64 for float64) and form D as a difference of one full-length
cumulative sum (error-model traits ``cumsum="full"``).
"""
from __future__ import annotations

import math

import torch

from ..spec.errors import Traits
from ..spec.softmax import default_scale
from ..spec.targets import STATELESS, Target, register_form
from ._common import compute_dtype, varlen_stateless


def _heads_first(*xs):
    return [x.transpose(1, 2) for x in xs]


def _split(fn, q, k, v, g, scale, cu_seqlens, **kw):
    """Run ``fn`` on the whole batch, or per packed sequence (B = 1, cu_seqlens offsets)."""
    if cu_seqlens is None:
        return fn(q, k, v, g, scale, **kw)
    return varlen_stateless(fn, [q, k, v, g], cu_seqlens, scale, **kw)


def _dense(q, k, v, g, scale):
    cd = compute_dtype(q.dtype)
    B, T, H, K = q.shape
    s = default_scale(K) if scale is None else scale
    qh, kh, vh = _heads_first(q.to(cd), k.to(cd), v.to(cd))
    c = torch.cumsum(g.to(cd).transpose(1, 2), -1)  # [B, H, T]
    z = s * (qh @ kh.transpose(-1, -2)) + (c[..., :, None] - c[..., None, :])
    causal = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    z = torch.where(causal, z, torch.tensor(-math.inf, dtype=cd, device=q.device))
    return _masked_pv(torch.softmax(z, -1), vh, 0, 0).transpose(1, 2).to(q.dtype)


def _masked_pv(p: torch.Tensor, v: torch.Tensor, i0: int, j0: int, rows: int = 64) -> torch.Tensor:
    """Σ_j p_ij v_j over causal j only (query i0 + r, key j0 + c): a matmul would form 0·v_j for future keys, and
    0·NaN = NaN — a NaN or Inf in a later v must never reach an earlier output.  Selects, in blocks of ``rows``."""
    n, m = p.shape[-2], p.shape[-1]
    if n == 0 or m == 0:
        return p.new_zeros(*p.shape[:-1], v.shape[-1])
    out = []
    for r0 in range(0, n, rows):
        pr = p[..., r0:r0 + rows, :]
        causal = (torch.arange(i0 + r0, i0 + r0 + pr.shape[-2], device=p.device)[:, None]
                  >= torch.arange(j0, j0 + m, device=p.device)[None])
        if bool(causal.all()):
            out.append(pr @ v)
            continue
        prod = pr[..., :, :, None] * v[..., None, :, :]
        out.append(torch.where(causal[..., None], prod, torch.zeros((), dtype=prod.dtype, device=p.device)).sum(-2))
    return torch.cat(out, -2)


def dense(q, k, v, g, scale=None, cu_seqlens=None):
    """o = softmax(s·QKᵀ + D, causal) V with D_ij = c_i − c_j, c = cumsum(g)."""
    return _split(_dense, q, k, v, g, scale, cu_seqlens)


def acp_threshold(qh: torch.Tensor, kh: torch.Tensor, s: float, n_keys: int, log_eps: float) -> torch.Tensor:
    """δ [B, H] = −(2U + ln N) + ln ε with U = s·max_i‖q_i‖·max_j‖k_j‖ (Cauchy–Schwarz), q/k as [B, H, T, K]."""
    if log_eps == -math.inf or n_keys == 0:
        return torch.full(qh.shape[:2], -math.inf, dtype=qh.dtype, device=qh.device)
    U = s * qh.norm(dim=-1).amax(-1) * kh.norm(dim=-1).amax(-1)
    return -(2 * U + math.log(n_keys)) + log_eps


def _tiled(q, k, v, g, scale, block_m=16, block_n=16, log_eps=None, pruning=None):
    cd = compute_dtype(q.dtype)
    B, T, H, K = q.shape
    Vd = v.shape[-1]
    s = default_scale(K) if scale is None else scale
    qh, kh, vh = _heads_first(q.to(cd), k.to(cd), v.to(cd))
    c = torch.cumsum(g.to(cd).transpose(1, 2), -1)  # [B, H, T]
    delta = acp_threshold(qh, kh, s, T, log_eps) if log_eps is not None else None
    nQ, nK = -(-T // block_m), -(-T // block_n)
    pruned = torch.zeros(B, H, nQ, nK, dtype=torch.bool, device=q.device)
    o = torch.empty(B, H, T, Vd, dtype=cd, device=q.device)
    neg_inf = torch.tensor(-math.inf, dtype=cd, device=q.device)
    for qb in range(nQ):
        i0, i1 = qb * block_m, min(T, (qb + 1) * block_m)
        qi, ci = qh[:, :, i0:i1], c[:, :, i0:i1]
        m = torch.full((B, H, i1 - i0, 1), -math.inf, dtype=cd, device=q.device)
        ell = torch.zeros(B, H, i1 - i0, 1, dtype=cd, device=q.device)
        acc = torch.zeros(B, H, i1 - i0, Vd, dtype=cd, device=q.device)
        for kb in range(nK):
            j0, j1 = kb * block_n, min(T, (kb + 1) * block_n)
            if j0 > i1 - 1:
                break
            if delta is not None and j1 - 1 < i0:  # ACP: the tile's largest bias is D_{i0, j1-1}
                skip = (c[:, :, i0] - c[:, :, j1 - 1]) < delta  # [B, H]
                pruned[:, :, qb, kb] = skip
            else:
                skip = None
            z = s * (qi @ kh[:, :, j0:j1].transpose(-1, -2)) + (ci[..., :, None] - c[:, :, None, j0:j1])
            causal = torch.arange(i0, i1, device=q.device)[:, None] >= torch.arange(j0, j1, device=q.device)[None]
            z = torch.where(causal, z, neg_inf)
            if skip is not None:
                z = torch.where(skip[..., None, None], neg_inf, z)
            m_new = torch.maximum(m, z.amax(-1, keepdim=True))
            # rows whose max is still −inf (everything so far masked or pruned) keep a zero contribution
            safe = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new)
            p = torch.exp(z - safe)
            alpha = torch.exp(m - safe)
            ell = alpha * ell + p.sum(-1, keepdim=True)
            acc = alpha * acc + _masked_pv(p, vh[:, :, j0:j1], i0, j0)
            m = m_new
        o[:, :, i0:i1] = acc / ell
    if pruning is not None:
        pruning.append({"pruned": pruned, "block_m": block_m, "block_n": block_n})
    return o.transpose(1, 2).to(q.dtype)


def tiled(block_m: int, block_n: int):
    def fn(q, k, v, g, scale=None, cu_seqlens=None):
        return _split(_tiled, q, k, v, g, scale, cu_seqlens, block_m=block_m, block_n=block_n)

    fn.__doc__ = f"online-softmax tiles of {block_m} queries × {block_n} keys"
    return fn


def tiled_acp(block_m: int, block_n: int):
    def fn(q, k, v, g, scale=None, log_eps=-10.0, return_pruning=False):
        info = []
        o = _tiled(q, k, v, g, scale, block_m=block_m, block_n=block_n, log_eps=log_eps, pruning=info)
        return (o, info[0]) if return_pruning else o

    fn.__doc__ = f"online-softmax tiles of {block_m} × {block_n} with ACP tile pruning"
    return fn


# layout_dependent: torch's matmul and exp pick their CPU path by the operands' strides, so non-contiguous views of
# the same inputs round differently (found by the strided-inputs property)
_TRAITS = Traits(accumulate="float32", cumsum="full", layout_dependent=True)
register_form(Target("forgetting-attention", "dense", dense, traits=_TRAITS, supports=STATELESS,
                     doc="quadratic masked softmax, D from one cumsum"))
register_form(Target("forgetting-attention", "tiled-16x16", tiled(16, 16), traits=_TRAITS, supports=STATELESS,
                     doc="online softmax, 16×16 tiles"))
register_form(Target("forgetting-attention", "tiled-7x5", tiled(7, 5), traits=_TRAITS, supports=STATELESS,
                     doc="online softmax, 7×5 tiles (primes: T is rarely a multiple, tiles straddle the diagonal)"))
register_form(Target("forgetting-attention-acp", "tiled-16x16", tiled_acp(16, 16), traits=_TRAITS,
                     supports=frozenset(), extras={"unpruned": "forgetting-attention/tiled-16x16"},
                     doc="online softmax 16×16 with ACP pruning"))
register_form(Target("forgetting-attention-acp", "tiled-8x4", tiled_acp(8, 4), traits=_TRAITS,
                     supports=frozenset(), extras={"unpruned": None},  # no unpruned 8×4 form registered
                     doc="online softmax 8×4 with ACP pruning (many small tiles: fine-grained pruning)"))
