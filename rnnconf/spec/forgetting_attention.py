"""``forgetting-attention`` — the attention of the Forgetting Transformer (Lin et al., "Forgetting Transformer:
Softmax Attention with a Forget Gate", arXiv 2503.02130), in flash-linear-attention's convention
(``fla.ops.forgetting_attn.parallel_forgetting_attn``):

    o_i = Σ_{j≤i} softmax_j( s·q_iᵀk_j + D_ij ) v_j,     D_ij = Σ_{l=j+1..i} g_l  (D_ii = 0),   s = scale or 1/√K

q, k: [B, T, H, K]; v: [B, T, H, V]; g: [B, T, H] the log forget gate log f_t ≤ 0 (fla requires it in float32 —
inputs here are drawn in the dtype under test and rounded, so a float32 g is exact in any case); o: [B, T, H, V].
D is *not* scaled by s.  The op is state-free (no carry); varlen packs sequences with ``cu_seqlens`` (B = 1).
g_0 never enters any D_ij: it shifts every cumulative sum c_i = Σ_{l≤i} g_l by the same amount, which cancels in
each softmax row (the "c_i cancels" fact).  Forms that build D as c_i − c_j from a cumulative sum lose ≈ u·|c_i| in
every exponent; the oracle sums D directly.

Error model: the shared softmax-attention model of :mod:`rnnconf.spec.softmax` (per-score ε_ij with the
|D_ij| term, cumsum forms charged c_log·depth·G_i).
"""
from __future__ import annotations

import torch

from . import softmax
from .base import Arg, Invariant, Output, Spec, register
from .domains import log_gate, real


def fox_grad_magnitudes(inputs: dict, h0, do, dht, cumsum: bool = False, scale=None) -> dict:
    """Gradient magnitudes for ``forgetting-attention`` (float64, layout [B, T, H, ·])."""
    q, k, v, g = (inputs[n].double() for n in ("q", "k", "v", "g"))
    P, eps, D, G, s = dense_weights(q, k, g, scale)
    tr = lambda x: x.transpose(1, 2)  # noqa: E731  [B, T, H, ·] <-> [B, H, T, ·]
    T = q.shape[1]
    depth = torch.arange(1, T + 1, dtype=torch.float64) if cumsum else None
    mags = softmax.grad_magnitudes(P, tr(q), tr(k), tr(v), tr(do.double()), eps, s,
                                   logmass=G.transpose(1, 2) if cumsum else None, cumsum_depth=depth)
    out = {}
    for name, (m, c) in mags.items():
        out[name] = (tr(m), tr(c)) if name != "g" else (m.transpose(1, 2), c.transpose(1, 2))
    return out


def dense_weights(q, k, g, scale=None):
    """Float64 P [B, H, T, T], ε [B, H, T, T] (units of u), D, G [B, T, H] and s — for magnitudes, not as truth."""
    B, T, H, K = q.shape
    s = softmax.default_scale(K) if scale is None else scale
    qh, kh = q.transpose(1, 2), k.transpose(1, 2)
    gh = g.transpose(1, 2)  # [B, H, T]
    c = torch.cumsum(gh, -1)
    D = c[..., :, None] - c[..., None, :]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    z = torch.where(causal, s * qh @ kh.transpose(-1, -2) + D, torch.tensor(-torch.inf, dtype=torch.float64))
    P = torch.softmax(z, -1) if T else z
    a = s * qh.abs() @ kh.abs().transpose(-1, -2)
    m = z.max(-1, keepdim=True).values if T else z
    eps = torch.where(causal, (K + 2) * a + 3 * (z - m).abs() + 2 * D.abs() + 4, torch.zeros_like(a))
    G = torch.cumsum(g.abs(), 1)
    return P, eps, D, G, s


SPEC = register(Spec(
    id="forgetting-attention",
    title="Forgetting Transformer attention (softmax attention with a forget-gate decay bias)",
    paper="arXiv:2503.02130",
    version="1",
    math="o_i = Σ_{j≤i} softmax_j(s·q_iᵀk_j + Σ_{l=j+1..i} g_l) v_j",
    signature="fn(q, k, v, g, scale=None, cu_seqlens=None) -> o",
    dims=softmax.ATTENTION_DIMS,
    args=(
        Arg("q", ("B", "T", "H", "K"), real(1.0, edges=(0.0, 4.0, -4.0)), doc="queries"),
        Arg("k", ("B", "T", "H", "K"), real(1.0, edges=(0.0, 4.0, -4.0)), doc="keys"),
        Arg("v", ("B", "T", "H", "V"), real(1.0, edges=(0.0, 1e3, -1e3)), doc="values"),
        Arg("g", ("B", "T", "H"), log_gate(), doc="log forget gate g_t = log f_t ≤ 0 (float32 in fla)"),
    ),
    outputs=(Output("o", ("B", "T", "H", "V"), "attention output"),),
    forms=("dense", "tiled", "triton"),
    invariants=(
        Invariant("fox-zero-gate-is-softmax", "g ≡ 0 ⇒ causal softmax attention (checked against a separate mpmath "
                  "softmax with no decay term)"),
        Invariant("fox-strong-decay-is-identity", "g ≡ −1e4 ⇒ o_i = v_i (every off-diagonal weight is exp(−1e4) = "
                  "0)"),
        Invariant("fox-first-gate-irrelevant", "g_0 shifts every cumulative sum by a constant that cancels per row: "
                  "any g_0 gives the same output (cumsum-difference forms lose u·|g_0| here)"),
        Invariant("causality", "o_i depends only on q_i and k, v, g at j ≤ i", checked_by="causality-perturb"),
    ),
    error_model=softmax.ATTENTION_ERROR,
    has_state=False,
    extra={"reference_form": "dense", "family": "attention", "independent_axes": ("B", "H"),
           "grad_magnitudes": fox_grad_magnitudes},
))


# ---- Adaptive Computation Pruning ------------------------------------------------------------------------------
ACP_LOG_EPS = -10.0


def acp_delta_error(q, k, g, log_eps: float, u: float, c_log_depth: bool = True):
    """Relative error budget (an additive error in the exponent) of a computed ACP decision, per row [B, T, H]:
    the threshold δ = −(2U + ln N) + ln ε in the form's precision (U through two K-long norms and a product: ≈
    (K + 3)·2U·u; ln N and ln ε one rounding each) plus the decay bias D_{i₀,j} of a cumsum form (c_log·depth·G_i)."""
    B, T, H, K = q.shape
    s = softmax.default_scale(K)
    U = s * q.double().norm(dim=-1).amax(1) * k.double().norm(dim=-1).amax(1)  # [B, H]
    G = torch.cumsum(g.double().abs(), 1)  # [B, T, H]
    depth = torch.arange(1, T + 1, dtype=torch.float64).view(1, T, 1)
    err = (2 * (K + 3) * U)[:, None] + abs(log_eps) + (torch.log(torch.tensor(float(max(T, 1)))).item())
    return u * (err + (softmax.ATTENTION_ERROR.c_log * depth * G if c_log_depth else 0))


ACP_SPEC = register(Spec(
    id="forgetting-attention-acp",
    title="FoX attention with Adaptive Computation Pruning (tiles whose decay bias is below δ are skipped)",
    paper="arXiv:2504.06949",
    version="1",
    math="FoX attention, except tiles with max D < δ = −(2U + ln N) + ln ε are skipped (U = s·max‖q‖·max‖k‖)",
    signature="fn(q, k, v, g, scale=None, log_eps=-10.0, return_pruning=False) -> o | (o, {'pruned', 'block_m', "
              "'block_n'})",
    dims=softmax.ATTENTION_DIMS,
    args=(
        Arg("q", ("B", "T", "H", "K"), real(0.5, edges=(0.0, 2.0, -2.0)), doc="queries"),
        Arg("k", ("B", "T", "H", "K"), real(0.5, edges=(0.0, 2.0, -2.0)), doc="keys"),
        Arg("v", ("B", "T", "H", "V"), real(1.0, edges=(0.0, 1e3, -1e3)), doc="values"),
        Arg("g", ("B", "T", "H"), log_gate(), doc="log forget gate ≤ 0 — ACP's guarantee needs it (monotone D)"),
    ),
    outputs=(Output("o", ("B", "T", "H", "V"), "attention output"),),
    forms=("tiled", "triton"),
    invariants=(
        Invariant("acp-pruned-mass", "per query, the exact attention weight on pruned tiles is < ε (times the "
                  "exponent's own rounding budget)"),
        Invariant("acp-output-bound", "|o − o_FoX| ≤ 2ε·max_{j≤i}|v_j| + FoX's own rounding bound (the 'oracle' "
                  "property of this spec: its oracle carries that slack)"),
        Invariant("acp-tile-shape", "pruned tiles are whole tiles strictly left of the diagonal, a prefix of each "
                  "block row, the prefix non-decreasing across query blocks", tolerance="exact"),
        Invariant("acp-eps-zero", "ln ε = −∞ (δ = −∞) prunes nothing and is bitwise the unpruned kernel",
                  tolerance="exact"),
        Invariant("acp-precondition", "with a log-gate > 0 the guarantee is void: the property notices and says "
                  "so instead of failing or crashing"),
    ),
    error_model=softmax.ATTENTION_ERROR,
    has_state=False,
    supports_varlen=False,
    notes="Not causal: U and N are taken over the whole sequence, so pruning of early rows depends on later inputs "
          "(within the ε guarantee); causality properties do not apply.  ε = exp(log_eps), default ln ε = −10.",
    extra={"family": "attention", "independent_axes": ("B", "H"), "causal": False, "log_eps": ACP_LOG_EPS},
))
