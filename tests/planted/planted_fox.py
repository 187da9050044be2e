"""Planted bugs for the FoX family (``forgetting-attention``, ``forgetting-attention-acp``): a self-contained copy of
the tiled online-softmax form and of the dense form, each mutant differing in the lines marked ``# BUG``.

``fox_bugs(add)`` registers them into the catalogue of :mod:`planted_bugs` (``add(key, base, name, fn, expect, what,
anchor)``)."""
from __future__ import annotations

import math

import torch

from rnnconf.impls._common import compute_dtype
from rnnconf.impls.forgetting_attention import _masked_pv, _split
from rnnconf.spec.softmax import default_scale

GRID_LIMIT = 65535  # CUDA's limit on grid axes y and z


def _dense(bug):
    def run(q, k, v, g, scale):
        cd = compute_dtype(q.dtype)
        B, T, H, K = q.shape
        s = default_scale(K) if scale is None else scale
        qh, kh, vh = (x.to(cd).transpose(1, 2) for x in (q, k, v))
        gg = g.transpose(1, 2)
        if bug == "gate-512" and T > 512:
            gg = gg.clone()
            gg[..., 512:] = 0  # BUG: the decay of keys past 512 is dropped (a second key block never loads its gate)
        if bug == "half-cumsum":
            c = torch.cumsum(gg, -1).to(cd)  # BUG: cumulative sum in the input dtype (float16), then upcast
        else:
            c = torch.cumsum(gg.to(cd), -1)
        D = c[..., :, None] - c[..., None, :]
        if bug == "decay-sign":
            D = -D  # BUG: c_j − c_i
        if bug == "decay-scaled":
            z = s * (qh @ kh.transpose(-1, -2) + D)  # BUG: the decay bias scaled by s
        else:
            z = s * (qh @ kh.transpose(-1, -2)) + D
        causal = torch.ones(T, T, dtype=torch.bool, device=q.device).tril(-1 if bug == "no-diagonal" else 0)  # BUG?
        z = torch.where(causal, z, torch.tensor(-math.inf, dtype=cd))
        if bug == "grid-65535":
            # BUG (modelled): one program per score (b, h, i, j) on a single grid axis; the launch is clamped to
            # 65535 programs, so the programs past it never run and their scores stay as allocated (zero): for
            # B·H·T² > 65535 late rows attend to unmasked zero scores, future keys included
            lost = torch.arange(B * H * T * T, device=q.device).view(B, H, T, T) >= GRID_LIMIT
            z = torch.where(lost, torch.zeros((), dtype=cd), z)
            return (torch.softmax(z, -1) @ vh).transpose(1, 2).to(q.dtype)
        return _masked_pv(torch.softmax(z, -1), vh, 0, 0).transpose(1, 2).to(q.dtype)

    def fn(q, k, v, g, scale=None, cu_seqlens=None):
        return _split(run, q, k, v, g, scale, cu_seqlens)

    return fn


def _tiled(bug, block_m=16, block_n=16, acp=False):
    def run(q, k, v, g, scale, log_eps=None, pruning=None):
        cd = compute_dtype(q.dtype)
        B, T, H, K = q.shape
        Vd = v.shape[-1]
        s = default_scale(K) if scale is None else scale
        qh, kh, vh = (x.to(cd).transpose(1, 2) for x in (q, k, v))
        c = torch.cumsum(g.to(cd).transpose(1, 2), -1)
        delta = None
        if log_eps is not None:
            U = s * qh.norm(dim=-1).amax(-1) * kh.norm(dim=-1).amax(-1)
            if bug == "acp-no-lnN":
                delta = -(2 * U) + log_eps  # BUG: threshold without the ln N term
            else:
                delta = -(2 * U + math.log(T)) + log_eps
        nQ, nK = -(-T // block_m), -(-T // block_n)
        pruned = torch.zeros(B, H, nQ, nK, dtype=torch.bool)
        o = torch.empty(B, H, T, Vd, dtype=cd)
        neg_inf = torch.tensor(-math.inf, dtype=cd)
        for qb in range(nQ):
            i0, i1 = qb * block_m, min(T, (qb + 1) * block_m)
            qi, ci = qh[:, :, i0:i1], c[:, :, i0:i1]
            m = torch.full((B, H, i1 - i0, 1), -math.inf, dtype=cd)
            ell = torch.zeros(B, H, i1 - i0, 1, dtype=cd)
            acc = torch.zeros(B, H, i1 - i0, Vd, dtype=cd)
            for kb in range(nK):
                j0, j1 = kb * block_n, min(T, (kb + 1) * block_n)
                if j0 > i1 - 1:
                    break
                skip = None
                if delta is not None and j1 - 1 < i0:
                    if bug == "acp-wrong-corner":
                        skip = (c[:, :, i1 - 1] - c[:, :, j0]) < delta  # BUG: bottom-left corner (smallest D)
                    else:
                        skip = (c[:, :, i0] - c[:, :, j1 - 1]) < delta
                    pruned[:, :, qb, kb] = skip
                z = s * (qi @ kh[:, :, j0:j1].transpose(-1, -2)) + (ci[..., :, None] - c[:, :, None, j0:j1])
                causal = torch.arange(i0, i1)[:, None] >= torch.arange(j0, j1)[None]
                z = torch.where(causal, z, neg_inf)
                if skip is not None:
                    z = torch.where(skip[..., None, None], neg_inf, z)
                m_new = torch.maximum(m, z.amax(-1, keepdim=True))
                safe = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new)
                p = torch.exp(z - safe)
                alpha = torch.exp(m - safe)
                if bug == "no-rescale":
                    alpha = torch.ones_like(alpha)  # BUG: running sums not rescaled when the max grows
                ell = alpha * ell + p.sum(-1, keepdim=True)
                acc = alpha * acc + _masked_pv(p, vh[:, :, j0:j1], i0, j0)
                m = m_new
            o[:, :, i0:i1] = acc / ell
        if pruning is not None:
            pruning.append({"pruned": pruned, "block_m": block_m, "block_n": block_n})
        return o.transpose(1, 2).to(q.dtype)

    if acp:
        def fn(q, k, v, g, scale=None, log_eps=-10.0, return_pruning=False):
            info = []
            o = run(q, k, v, g, scale, log_eps=log_eps, pruning=info)
            return (o, info[0]) if return_pruning else o
    else:
        def fn(q, k, v, g, scale=None, cu_seqlens=None):
            return _split(run, q, k, v, g, scale, cu_seqlens)
    return fn


def fox_bugs(add) -> None:
    fox, acp = "forgetting-attention", "forgetting-attention-acp"
    add("fox-no-diagonal", f"{fox}/dense", "planted-no-diagonal", _dense("no-diagonal"),
        {"oracle", "fox-strong-decay-is-identity"}, "causal mask excludes the diagonal (j < i instead of j ≤ i)",
        "brief: diagonal masked out (causal-mask off-by-one)")
    add("fox-decay-sign", f"{fox}/dense", "planted-decay-sign", _dense("decay-sign"), {"oracle"},
        "decay bias added with the wrong sign (c_j − c_i)", "brief: decay with the wrong sign")
    add("fox-decay-scaled", f"{fox}/dense", "planted-decay-scaled", _dense("decay-scaled"),
        {"oracle", "fox-first-gate-irrelevant"}, "decay bias multiplied by the softmax scale s",
        "brief: decay scaled by `scale` (models-1.md §3: D is not scaled)")
    add("fox-no-rescale", f"{fox}/tiled-16x16", "planted-no-rescale", _tiled("no-rescale"), {"oracle"},
        "online softmax: accumulator and denominator not rescaled by exp(m_old − m_new) across key tiles",
        "brief: online-softmax rescale skipped across tiles")
    add("fox-half-cumsum", f"{fox}/dense", "planted-half-cumsum", _dense("half-cumsum"), {"oracle"},
        "c = cumsum(g) accumulated in the input dtype (float16): c_i − c_j cancels catastrophically at long T with "
        "strong decay", "brief: cumsum-difference cancellation; models-1.md §3 (official kernel wants g in float32)")
    add("acp-wrong-corner", f"{acp}/tiled-16x16", "planted-acp-wrong-corner", _tiled("acp-wrong-corner", acp=True),
        {"acp-output-bound"}, "ACP judges a tile by its bottom-left corner (smallest D) instead of the top-right",
        "brief: ACP pruning from the wrong corner (models-1.md §4 block rule)")
    add("acp-no-lnN", f"{acp}/tiled-16x16", "planted-acp-no-lnN", _tiled("acp-no-lnN", acp=True),
        {"acp-pruned-mass"}, "ACP threshold δ = −2U + ln ε, without the ln N term",
        "brief: ACP threshold without ln N (models-1.md §4)")
