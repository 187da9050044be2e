"""``aaren`` — attention as a many-to-one RNN with a fixed query (Feng et al., "Attention as an RNN",
arXiv 2405.13956).

With scores s_j = scale·qᵀk_j for one query q per (batch, head) (Aaren's learned token, not input-dependent):

    o_t = Σ_{j≤t} softmax_j(s_1..s_t) v_j,     scale = 1/√K unless given.

``fn(q, k, v, scale=None, cu_seqlens=None) -> o`` with q: [B, H, K] (no time axis), k: [B, T, H, K], v: [B, T, H, V],
o: [B, T, H, V].  State-free; varlen packs sequences with ``cu_seqlens`` (B = 1, N + 1 offsets), every sequence
restarting and all reading the one query q[0].

SET SUMMARY.  A set A of positions is summarised by (m_A, u_A, w_A): m = max s_j, u = Σ e^{s_j−m}, w = Σ e^{s_j−m} v_j;
a leaf is (s_j, 1, v_j) and o_t = w_{1..t}/u_{1..t}.  Two summaries combine as

    m = max(m_A, m_B),  u = u_A e^{m_A−m} + u_B e^{m_B−m},  w = w_A e^{m_A−m} + w_B e^{m_B−m}

(:func:`combine`).  Φ(m, u, w) = (u e^m, w e^m) maps it to addition, so it is associative and commutative, with
identity (−∞, 0, 0); e^{−∞−(−∞)} is never formed (:func:`combine` subtracts from a finite stand-in for a −∞ max).
The many-to-one RNN is the left fold  m_k = max(m_{k−1}, s_k),  u_k = u_{k−1}e^{m_{k−1}−m_k} + e^{s_k−m_k}, w_k likewise
with v_k; the largest score contributes exactly e⁰ = 1, so 1 ≤ u_k ≤ k.  Parallel forms are prefix scans of the
same combine (Hillis–Steele, Blelloch).  Aaren is FoX's attention (:mod:`rnnconf.spec.forgetting_attention`) with
g ≡ 0 and q_i ≡ q.

ERROR MODEL.  The softmax-attention model of :mod:`rnnconf.spec.softmax` (per-score ε_ij = (K+2)a_ij + 3|z_ij − m_i|
+ 4, no decay term, charged through the oracle's ``cond``; c_out = 3) applies to the score and to each weight's
exp, with c_step raised from 2 to 12 for the recurrence.  Why: in any combine tree (the RNN is a chain, the scans
are trees) the contribution of leaf j to output t passes through d ≤ t − 1 combines.  At each, the side holding the
max keeps its factor e⁰ = 1 exactly; the other side pays the exp's rounding (≤ 2 ulp = 4u: CUDA's expf; torch's and
numpy's are within 1 ulp, measured ≤ 1.06u for torch float32), one product and, on both sides, one add — in u and in
w separately.  The exps multiply u and w by the *same* rounded factor, so they only perturb leaf j's weight
(≤ 4d·u relative, costing ≤ 8d·u·m_t in o = w/u, as a weight error does through the model's ε̄ term); the
arguments' roundings telescope to ≤ u·|z_tj − m_t| (inside the 3|z − m| term).  The product-and-add chains cost
≤ 2d·u in w (relative to the magnitude shadow m_t = Σ P_tj|v_j|) and 2d·u in u (relative to |o_t| ≤ m_t).  So
12d ≤ 12(t+1) u·m_t, i.e. c_step = 12 in place of the dense evaluation's 2 (one add chain in each of ℓ and P·V).
Gradients (the softmax model's magnitudes, :func:`aaren_grad_magnitudes`): the scan forms' autograd (leaves from
:func:`leaf`) and the Triton kernel's reversed-time scan multiply each summand by the same kind of rounded rescale
factors (≤ 4d·u) and accumulate it through ≤ T products and adds (≤ 2T·u), within c_step·(T+1).
Half inputs accumulate in float32 (``Traits(accumulate="float32")``).  The combine on its own (the ``aaren-combine``
and ``aaren-prefix-count`` properties) is judged by :func:`fold_bound`, the same count (C_NODE = 6 roundings per
node: exp 4, product, add) for an explicit tree.
"""
from __future__ import annotations

import math
from dataclasses import replace

import torch

from . import softmax
from .base import Arg, Invariant, Output, Spec, register
from .domains import real
from .errors import tiny, unit_roundoff

IDENTITY = (-math.inf, 0.0, 0.0)
EXP_U = 4  # exp's relative error in units of u: ≤ 2 ulp (CUDA's expf; torch's and numpy's are within 1 ulp)
C_NODE = EXP_U + 2  # roundings per combine node on the side without the max: exp, product, add


def combine(p1, p2):
    """(m₁, u₁, w₁) ∘ (m₂, u₂, w₂) = (max, u₁e^{m₁−m} + u₂e^{m₂−m}, w₁e^{m₁−m} + w₂e^{m₂−m}).

    m, u: tensors of any (broadcastable) shape; w: the same with a trailing value axis.  The side holding the max
    gets e⁰ = 1 exactly.  Identity guard: a −∞ max is replaced by 0 before subtracting, so (−∞, 0, 0) ∘ (−∞, 0, 0)
    forms −∞ − 0 (e^{−∞} = 0), never −∞ − (−∞) = NaN."""
    m1, u1, w1 = p1
    m2, u2, w2 = p2
    m = torch.maximum(m1, m2)
    ref = torch.where(torch.isneginf(m), torch.zeros_like(m), m)
    r1, r2 = torch.exp(m1 - ref), torch.exp(m2 - ref)
    return m, u1 * r1 + u2 * r2, w1 * r1[..., None] + w2 * r2[..., None]


def fold_bound(m_parts, c_parts, depth, m_out, dtype: torch.dtype):
    """Bound on |ĉ − c| for one component (u, or w per channel) of a combine tree evaluated in ``dtype``.

    ``m_parts``/``c_parts``: the inputs' m and that component, stacked on the leading axis (float64; ``c_parts`` may
    have one trailing value axis more); ``depth``: each input's number of combines up to the output (broadcastable to
    ``m_parts``); ``m_out``: the exact max (broadcastable too).  Returns the bound in the shape of ``c_parts[0]``.
    Input i's term c_i e^{m_i−m} is multiplied by rounded factors: its exponents' roundings telescope to
    ≤ u·|m_i − m| and each node costs ≤ C_NODE = 6 u (exp ≤ 4u, product, add), so its relative error is
    ≤ expm1(u(|m_i − m| + C_NODE·d_i)) (first order not assumed).  Subnormal factors and products add
    ≤ C_NODE·u·tiny·(1 + |c_i|) per node.  An identity input (m_i = −∞) contributes exactly 0."""
    u = unit_roundoff(dtype)
    depth = torch.as_tensor(depth, dtype=torch.float64).expand_as(m_parts)
    gap = (m_out - m_parts).abs()
    live = torch.isfinite(m_parts)
    gap = torch.where(live, gap, torch.zeros_like(gap))
    weight = torch.where(live, torch.exp(torch.where(live, m_parts - m_out, torch.zeros_like(gap))),
                         torch.zeros_like(gap))
    while weight.dim() < c_parts.dim():
        weight, gap, depth = weight[..., None], gap[..., None], depth[..., None]
    rel = torch.expm1(u * (gap + C_NODE * depth))
    floor = C_NODE * depth * u * tiny(dtype) * (1 + c_parts.abs())
    return (c_parts.abs() * weight * rel + floor).sum(0)


def leaf(s: torch.Tensor, v: torch.Tensor) -> tuple:
    """Leaves (s_j, 1, v_j) for forms that differentiate through the combine (autograd).

    Values are exactly (s, 1, v), built as (s̄, e^{s − s̄}, v·e^{s − s̄}) with s̄ = s detached: every m is then a
    constant to autograd and each score's gradient flows only through its own u and w.  The output does not depend
    on the choice of m (it cancels in w/u), but differentiating through the max does so by cancellation — terms of
    the size of a whole sub-summary's gradient that cancel exactly only in exact arithmetic (measured: 4·10⁻⁴
    relative error on one dk in float64 through the Hillis–Steele scan, a score that was the max of an inner node,
    against the softmax gradient model's bound of 10⁻¹³ relative).  With s̄ detached, ∂L/∂s_j = Σ_t P_tj do_t·(v_j − o_t)
    is formed as in the dense backward."""
    sd = s.detach()
    e = torch.exp(s - sd)
    return sd, e, v * e[..., None]


AAREN_ERROR = replace(softmax.ATTENTION_ERROR, c_step=2.0 + 2.0 + 2 * EXP_U,
                      doc=__doc__.split("ERROR MODEL.")[1].strip())


def scores(q: torch.Tensor, k: torch.Tensor, scale=None) -> torch.Tensor:
    """s [B, H, T] = scale·qᵀk_t (elementwise products and a sum over K: batch and head rows stay independent)."""
    s = softmax.default_scale(q.shape[-1]) if scale is None else scale
    return s * (q[:, None] * k).sum(-1).transpose(1, 2)


def dense_weights(q, k, scale=None):
    """Float64 P [B, H, T, T] and ε [B, H, T, T] (units of u) of the fixed-query softmax — for magnitudes only."""
    B, T, H, K = k.shape
    s = softmax.default_scale(K) if scale is None else scale
    z = scores(q, k, s)  # [B, H, T]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    zz = torch.where(causal, z[..., None, :].expand(B, H, T, T), torch.tensor(-math.inf, dtype=torch.float64))
    P = torch.softmax(zz, -1) if T else zz
    a = s * (q[:, None].abs() * k.abs()).sum(-1).transpose(1, 2)  # [B, H, T]
    m = zz.max(-1, keepdim=True).values if T else zz
    eps = torch.where(causal, (K + 2) * a[..., None, :] + 3 * (zz - m).abs() + 4, torch.zeros_like(zz))
    return P, eps, s


def aaren_grad_magnitudes(inputs: dict, h0, do, dht, cumsum: bool = False, scale=None) -> dict:
    """(magnitude, cond) per gradient, float64 in the inputs' layouts: the softmax model's
    (:func:`rnnconf.spec.softmax.grad_magnitudes`) with q_t ≡ q expanded over t.  dq = Σ_t dq_t: both of its terms
    are summed over t, and the T-long sum adds T·(summed magnitude) to the cond."""
    q, k, v = (inputs[n].double() for n in ("q", "k", "v"))
    B, T, H, K = k.shape
    P, eps, s = dense_weights(q, k, scale)
    tr = lambda x: x.transpose(1, 2)  # noqa: E731  [B, T, H, ·] <-> [B, H, T, ·]
    qe = q[:, None].expand(B, T, H, K)
    mags = softmax.grad_magnitudes(P, tr(qe), tr(k), tr(v), tr(do.double()), eps, s)
    mq, cq = mags["q"]  # [B, H, T, K]
    return {
        "q": (mq.sum(2), cq.sum(2) + T * mq.sum(2)),
        "k": tuple(tr(x) for x in mags["k"]),
        "v": tuple(tr(x) for x in mags["v"]),
    }


SPEC = register(Spec(
    id="aaren",
    title="Aaren: attention as a many-to-one RNN (softmax attention with a fixed query)",
    paper="arXiv:2405.13956",
    version="1",
    math="o_t = Σ_{j≤t} softmax_j(scale·qᵀk_j) v_j  =  w_t/u_t of the (m, u, w) prefix summary",
    signature="fn(q, k, v, scale=None, cu_seqlens=None) -> o",
    dims=softmax.ATTENTION_DIMS,
    args=(
        Arg("q", ("B", "H", "K"), real(1.0, edges=(0.0, 4.0, -4.0)), kind="param",
            doc="the fixed query (Aaren's learned token), one per (batch, head); no time axis"),
        Arg("k", ("B", "T", "H", "K"), real(1.0, edges=(0.0, 4.0, -4.0)), doc="keys"),
        Arg("v", ("B", "T", "H", "V"), real(1.0, edges=(0.0, 1e3, -1e3)), doc="values"),
    ),
    outputs=(Output("o", ("B", "T", "H", "V"), "o_t = w_t/u_t: attention of q over k_1..k_t"),),
    forms=("sequential", "scan-hillis-steele", "scan-blelloch", "dense", "triton-scan"),
    invariants=(
        Invariant("rnn-is-attention", "the (m, u, w) left fold gives w_t/u_t = causal softmax attention with the "
                  "fixed query (two independent oracle paths agree)",
                  checked_by="tests/oracles/test_aaren_oracle.py::test_rnn_path_equals_attention_path"),
        Invariant("aaren-combine", "the target's combine is the spec's (m, u, w) combine: (p∘q)∘r = p∘(q∘r) and "
                  "p∘q = q∘p (exact in mpmath; within :func:`fold_bound` in floats, m exact), and (−∞, 0, 0) ∘ p = "
                  "p ∘ (−∞, 0, 0) = p, (−∞, 0, 0) ∘ (−∞, 0, 0) the identity, exactly and never NaN"),
        Invariant("aaren-prefix-count", "1 ≤ u_k ≤ k (the max contributes e⁰ = 1, every other term ≤ 1): exactly on "
                  "the oracle's u; the target's combine run as the RNN's left fold in the dtype stays in [1, k] and "
                  "matches the exact u_k within :func:`fold_bound`"),
        Invariant("equal-scores-mean", "all scores equal (e.g. q = 0) ⇒ o_t = mean(v_1..v_t)",
                  checked_by="tests/oracles/test_aaren_oracle.py::test_equal_scores_give_running_mean"),
        Invariant("single-step", "T = 1 ⇒ o = v (one key has weight 1)",
                  checked_by="tests/oracles/test_aaren_oracle.py::test_single_step_is_v"),
        Invariant("aaren-convex-hull", "o_t lies in [min, max] of v_1..v_t per channel (the weights are a probability "
                  "vector)", checked_by="tests/oracles/test_aaren_oracle.py::test_output_in_convex_hull_of_values"),
        Invariant("causality", "o_t depends only on q and k, v at j ≤ t", checked_by="causality-perturb"),
    ),
    error_model=AAREN_ERROR,
    has_state=False,
    extra={"reference_form": "dense", "family": "attention", "independent_axes": ("B", "H"),
           "grad_magnitudes": aaren_grad_magnitudes, "combine": combine, "identity": IDENTITY},
))
