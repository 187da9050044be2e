"""Torch forms of ``aaren`` (attention as a many-to-one RNN, arXiv 2405.13956):
``fn(q, k, v, scale=None, cu_seqlens=None) -> o``, q [B, H, K], k [B, T, H, K], v [B, T, H, V].

* ``sequential``: the RNN — a loop over t folding leaves (s_t, 1, v_t) into (m, u, w) with the spec's combine.
* ``scan-hillis-steele``: inclusive Hillis–Steele scan (log₂T rounds, positions < 2ʳ combine with the identity).
* ``scan-blelloch``: work-efficient Blelloch scan: T padded to a power of two with identities (−∞, 0, 0), up-sweep
  (x[r] ← x[l] ∘ x[r]), root ← identity, down-sweep (x[l] ← x[r], x[r] ← x[r] ∘ old x[l]) gives the exclusive
  prefixes; the inclusive one is exclusive ∘ leaf.  Padding meets padding here, so the identity guard matters.
* ``dense``: masked softmax over j ≤ t, row by row (o_t = P_t,≤t · v_≤t, never a 0·v_j for j > t, so NaN in a
  future v cannot leak); float64-capable, the reference form for gradients.

All compute scores and the recurrence in float32 for half inputs (float64 for float64), return o in the input
dtype, and split packed sequences (``cu_seqlens``, B = 1) one at a time, every sequence reading q[0].  Gradients are
torch autograd through these ops; the scan forms build their leaves with :func:`rnnconf.spec.aaren.leaf` so that no
gradient is taken through a max (which cancels only in exact arithmetic).
"""
from __future__ import annotations

import torch

from ..spec.aaren import combine, leaf, scores
from ..spec.errors import Traits
from ..spec.softmax import default_scale
from ..spec.targets import STATELESS, Target, register_form
from ._common import compute_dtype, varlen_stateless


def _leaves(q, k, v, scale):
    """(s, 1, v) leaves in the compute dtype: m, u [B, H, T], w [B, H, T, V] — built by :func:`leaf` so that autograd
    never differentiates through a max."""
    cd = compute_dtype(v.dtype)
    s = default_scale(q.shape[-1]) if scale is None else scale
    return leaf(scores(q.to(cd), k.to(cd), s), v.to(cd).transpose(1, 2))


def _identity_like(m, w):
    return torch.full_like(m, -torch.inf), torch.zeros_like(m), torch.zeros_like(w)


def _out(u, w, v):
    """o = w/u back to [B, T, H, V] in the input dtype."""
    return (w / u[..., None]).transpose(1, 2).to(v.dtype)


def _sequential(q, k, v, scale=None, comb=combine):
    m, u, w = _leaves(q, k, v, scale)
    if not m.shape[-1]:
        return v.new_zeros(v.shape)
    acc = _identity_like(m[..., 0], w[..., 0, :])
    us, ws = [], []
    for t in range(m.shape[-1]):
        acc = comb(acc, (m[..., t], u[..., t], w[..., t, :]))
        us.append(acc[1])
        ws.append(acc[2])
    return _out(torch.stack(us, -1), torch.stack(ws, -2), v)


def _shift(p, step):
    """Summaries moved ``step`` positions later along T, the identity filling the first ``step``."""
    m, u, w = p
    im, iu, iw = _identity_like(m[..., :step], w[..., :step, :])
    return (torch.cat([im, m[..., :-step]], -1), torch.cat([iu, u[..., :-step]], -1),
            torch.cat([iw, w[..., :-step, :]], -2))


def _hillis_steele(q, k, v, scale=None, comb=combine):
    p = _leaves(q, k, v, scale)
    T = p[0].shape[-1]
    step = 1
    while step < T:
        p = comb(_shift(p, step), p)
        step *= 2
    return _out(p[1], p[2], v) if T else v.new_zeros(v.shape)


def _take(p, idx):
    m, u, w = p
    return m[..., idx], u[..., idx], w[..., idx, :]


def _put(p, idx, val):
    m, u, w = (x.clone() for x in p)
    m[..., idx], u[..., idx], w[..., idx, :] = val
    return m, u, w


def _blelloch(q, k, v, scale=None, comb=combine):
    leaves = _leaves(q, k, v, scale)
    T = leaves[0].shape[-1]
    if not T:
        return v.new_zeros(v.shape)
    N = 1 << (T - 1).bit_length()
    if N > T:  # pad with identities
        pad = _identity_like(leaves[0][..., :N - T], leaves[2][..., :N - T, :])
        x = tuple(torch.cat([a, b], -1 if a.dim() == leaves[0].dim() else -2) for a, b in zip(leaves, pad))
    else:
        x = leaves
    d = 1
    while d < N:  # up-sweep: x[r] ← x[l] ∘ x[r] at r = 2d·i + 2d − 1, l = r − d
        r = torch.arange(2 * d - 1, N, 2 * d)
        x = _put(x, r, comb(_take(x, r - d), _take(x, r)))
        d *= 2
    x = _put(x, torch.tensor([N - 1]), _identity_like(x[0][..., :1], x[2][..., :1, :]))
    d = N // 2
    while d >= 1:  # down-sweep: x[l] ← x[r], x[r] ← x[r] ∘ old x[l]
        r = torch.arange(2 * d - 1, N, 2 * d)
        left, right = _take(x, r - d), _take(x, r)
        x = _put(x, r - d, right)
        x = _put(x, r, comb(right, left))
        d //= 2
    incl = comb(_take(x, torch.arange(T)), _take(leaves, torch.arange(T)))
    return _out(incl[1], incl[2], v)


def _dense(q, k, v, scale=None):
    """o_t = softmax(s_{≤t}) · v_{≤t}, one row at a time."""
    cd = compute_dtype(v.dtype)
    s = scores(q.to(cd), k.to(cd), default_scale(q.shape[-1]) if scale is None else scale)  # [B, H, T]
    vc = v.to(cd).transpose(1, 2)  # [B, H, T, V]
    rows = [torch.softmax(s[..., :t + 1], -1)[..., None, :] @ vc[..., :t + 1, :] for t in range(s.shape[-1])]
    if not rows:
        return v.new_zeros(v.shape)
    return torch.cat(rows, -2).transpose(1, 2).to(v.dtype)


def with_varlen(dense):
    """The canonical signature: dense [B, T] evaluation, or one packed sequence at a time (B = 1, all reading q[0])."""

    def fn(q, k, v, scale=None, cu_seqlens=None):
        if cu_seqlens is None:
            return dense(q, k, v, scale=scale)
        if q.shape[0] != 1:
            raise ValueError(f"varlen needs batch size 1, got q {tuple(q.shape)}")
        return varlen_stateless(lambda k_, v_: dense(q, k_, v_, scale=scale), [k, v], cu_seqlens)

    fn.__doc__ = dense.__doc__
    return fn


sequential = with_varlen(_sequential)
scan_hillis_steele = with_varlen(_hillis_steele)
scan_blelloch = with_varlen(_blelloch)
dense = with_varlen(_dense)

# layout_dependent: torch's CPU kernels pick their path by the operands' strides (vectorised vs scalar exp, BLAS
# variants), so non-contiguous views of the same inputs round differently (found by the strided-inputs property)
_TRAITS = Traits(accumulate="float32", cumsum="none", layout_dependent=True)
for _name, _fn, _comb, _doc in (
    ("sequential", sequential, combine, "python loop over t folding (s_t, 1, v_t) into (m, u, w) — the RNN"),
    ("scan-hillis-steele", scan_hillis_steele, combine, "Hillis–Steele inclusive scan of (m, u, w) summaries"),
    ("scan-blelloch", scan_blelloch, combine,
     "Blelloch up-sweep/down-sweep over T padded to a power of two with identities, then exclusive ∘ leaf"),
    ("dense", dense, None, "masked softmax row by row (float64-capable; the gradient reference)"),
):
    register_form(Target("aaren", _name, _fn, traits=_TRAITS, supports=STATELESS, combine=_comb, doc=_doc))
